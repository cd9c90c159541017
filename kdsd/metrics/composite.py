"""Composite measures CSIG / CBAK / COVL and segmental SNR (Hu & Loizou 2008), and LSD.

A port of Loizou's MATLAB ``composite.m`` (with ``wss.m``, ``llr.m``, ``snr.m``; *Speech
Enhancement: Theory and Practice*, 2nd ed.), vectorised over frames: 30 ms Hann frames
(``0.5 (1 - cos(2 pi n / (N + 1)))``, as there), quarter-frame hop, the lowest 95 % of the
per-frame WSS and LLR values averaged, segmental SNR clipped to [-10, 35] dB per frame.
The PESQ term is ITU-T P.862.2 wide band from the ``pesq`` package (0.0.4), as in the
MetricGAN+ / CMGAN evaluation scripts VoiceBank+DEMAND tables come from; the MATLAB original
used its own P.862 port. Each composite is clipped to the MOS range [1, 5].

LSD follows the URGENT challenge's ``lsd_metric``: the estimate is least-squares scaled to the
reference, 32 ms / 16 ms centred STFT, natural-log power ratio, RMS over frequency then mean
over frames (0 = identical spectra).
"""
from __future__ import annotations

import numpy as np

from kdsd.metrics.intrusive import SAMPLE_RATE, pesq_wb

COMPOSITE_METRICS = ("csig", "cbak", "covl", "ssnr")
SPECTRAL_METRICS = ("lsd",)
TRIM_SHARE = 0.95          # composite.m's alpha: the worst 5 % of frames are dropped
SSNR_RANGE = (-10.0, 35.0)
LPC_ORDER = 16             # llr.m: 16 above 10 kHz sampling
EPS = np.finfo(np.float64).eps
# wss.m: 25 critical bands (centre and bandwidth, Hz) and Klatt's weighting constants.
CENTRE_HZ = np.array([50.0, 120.0, 190.0, 260.0, 330.0, 400.0, 470.0, 540.0, 617.372, 703.378, 798.717,
                      904.128, 1020.38, 1148.30, 1288.72, 1442.54, 1610.70, 1794.16, 1993.93, 2211.08,
                      2446.71, 2701.97, 2978.04, 3276.17, 3597.63])
BANDWIDTH_HZ = np.array([70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 77.3724, 86.0056, 95.3398, 105.411,
                         116.256, 127.914, 140.423, 153.823, 168.154, 183.457, 199.776, 217.153, 235.631,
                         255.255, 276.072, 298.126, 321.465, 346.136])
K_MAX, K_LOCMAX = 20.0, 1.0


def _frames(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """(frames, window) Hann-weighted 30 ms frames, hop a quarter frame, as the MATLAB loops."""
    length = round(0.03 * sample_rate)
    hop = length // 4
    count = int(len(wave) / hop - length / hop)
    if count < 1:
        raise ValueError(f"signal of {len(wave)} samples is shorter than one 30 ms frame")
    starts = np.arange(count) * hop
    window = 0.5 * (1 - np.cos(2 * np.pi * np.arange(1, length + 1) / (length + 1)))
    return wave[starts[:, None] + np.arange(length)] * window


def _trimmed_mean(values: np.ndarray) -> float:
    return float(np.mean(np.sort(values)[:round(len(values) * TRIM_SHARE)]))


def segmental_snr_frames(clean_frames: np.ndarray, processed_frames: np.ndarray) -> np.ndarray:
    signal = np.sum(clean_frames**2, axis=1)
    noise = np.sum((clean_frames - processed_frames) ** 2, axis=1)
    return np.clip(10 * np.log10(signal / (noise + EPS) + EPS), *SSNR_RANGE)


def _critical_band_filters(n_fft: int, sample_rate: int) -> np.ndarray:
    half = n_fft // 2
    nyquist = sample_rate / 2
    centre = np.floor(CENTRE_HZ / nyquist * half)
    width = BANDWIDTH_HZ / nyquist * half
    norm = np.log(BANDWIDTH_HZ[0]) - np.log(BANDWIDTH_HZ)
    bins = np.arange(half)
    filters = np.exp(-11 * ((bins - centre[:, None]) / width[:, None]) ** 2 + norm[:, None])
    return filters * (filters > np.exp(-30.0 / (2.0 * 2.303)))  # cut below the -30 dB point


def _nearest_peaks(energy: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """wss.m's peak search per band, vectorised, its 1-based indexing kept: on a rise, the energy
    one band before the first non-rising slope; otherwise one band after the last rising slope."""
    bands = slope.shape[1]
    index = np.arange(bands)
    first_fall = np.minimum.accumulate(np.where(slope <= 0, index, bands)[:, ::-1], axis=1)[:, ::-1]
    last_rise = np.maximum.accumulate(np.where(slope > 0, index, -1), axis=1)
    rising_peak = np.take_along_axis(energy, first_fall - 1, axis=1)
    falling_peak = np.take_along_axis(energy, last_rise + 1, axis=1)
    return np.where(slope > 0, rising_peak, falling_peak)


def _band_weights(energy: np.ndarray, slope: np.ndarray) -> np.ndarray:
    peak = _nearest_peaks(energy, slope)
    w_max = K_MAX / (K_MAX + energy.max(axis=1, keepdims=True) - energy[:, :-1])
    w_locmax = K_LOCMAX / (K_LOCMAX + peak - energy[:, :-1])
    return w_max * w_locmax


def weighted_spectral_slope_frames(clean_frames, processed_frames, sample_rate: int) -> np.ndarray:
    """Klatt's WSS per frame, normalised by the weight sum (wss.m)."""
    n_fft = 2 ** int(np.ceil(np.log2(2 * clean_frames.shape[1])))
    filters = _critical_band_filters(n_fft, sample_rate)

    def band_db(frames):
        power = np.abs(np.fft.fft(frames, n_fft, axis=1)[:, : n_fft // 2]) ** 2
        return 10 * np.log10(np.maximum(power @ filters.T, 1e-10))

    clean_db, processed_db = band_db(clean_frames), band_db(processed_frames)
    clean_slope, processed_slope = np.diff(clean_db, axis=1), np.diff(processed_db, axis=1)
    weights = (_band_weights(clean_db, clean_slope) + _band_weights(processed_db, processed_slope)) / 2
    return np.sum(weights * (clean_slope - processed_slope) ** 2, axis=1) / np.sum(weights, axis=1)


def _autocorrelation(frames: np.ndarray, order: int) -> np.ndarray:
    length = frames.shape[1]
    return np.stack([np.sum(frames[:, : length - k] * frames[:, k:], axis=1) for k in range(order + 1)], 1)


def _lpc(r: np.ndarray, order: int) -> np.ndarray:
    """Levinson-Durbin per frame (lpcoeff.m): prediction polynomials [1, -a1, ..., -ap]."""
    a = np.zeros((r.shape[0], order))
    error = r[:, 0].copy()
    for i in range(order):
        reflection = (r[:, i + 1] - np.sum(a[:, :i] * r[:, i:0:-1], axis=1)) / error
        previous = a[:, :i].copy()
        a[:, :i] = previous - reflection[:, None] * previous[:, ::-1]
        a[:, i] = reflection
        error = (1 - reflection**2) * error
    return np.concatenate([np.ones((r.shape[0], 1)), -a], axis=1)


def _toeplitz_quadratic(poly: np.ndarray, r: np.ndarray) -> np.ndarray:
    """poly · toeplitz(r) · polyᵀ per frame."""
    lags = np.abs(np.arange(r.shape[1])[:, None] - np.arange(r.shape[1]))
    return np.einsum("fi,fij,fj->f", poly, r[:, lags], poly)


def log_likelihood_ratio_frames(clean_frames, processed_frames) -> np.ndarray:
    r_clean = _autocorrelation(clean_frames, LPC_ORDER)
    a_clean = _lpc(r_clean, LPC_ORDER)
    a_processed = _lpc(_autocorrelation(processed_frames, LPC_ORDER), LPC_ORDER)
    return np.log(_toeplitz_quadratic(a_processed, r_clean) / _toeplitz_quadratic(a_clean, r_clean))


def composite(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = SAMPLE_RATE,
              pesq_mos: float | None = None) -> dict:
    """CSIG, CBAK, COVL (MOS scale, clipped to [1, 5]) and SSNR (dB) of one pair. ``pesq_mos``:
    the pair's PESQ-WB where the caller already has it (``pesq_wb(reference, estimate)``)."""
    clean = np.asarray(reference, np.float64) + EPS  # composite.m adds eps to both signals
    processed = np.asarray(estimate, np.float64) + EPS
    clean_frames, processed_frames = _frames(clean, sample_rate), _frames(processed, sample_rate)
    wss = _trimmed_mean(weighted_spectral_slope_frames(clean_frames, processed_frames, sample_rate))
    llr = _trimmed_mean(log_likelihood_ratio_frames(clean_frames, processed_frames))
    ssnr = float(np.mean(segmental_snr_frames(clean_frames, processed_frames)))
    if pesq_mos is None:
        pesq_mos = pesq_wb(reference, estimate)
    scores = {"csig": 3.093 - 1.029 * llr + 0.603 * pesq_mos - 0.009 * wss,
              "cbak": 1.634 + 0.478 * pesq_mos - 0.007 * wss + 0.063 * ssnr,
              "covl": 1.594 + 0.805 * pesq_mos - 0.512 * llr - 0.007 * wss}
    return {name: float(np.clip(value, 1.0, 5.0)) for name, value in scores.items()} | {"ssnr": ssnr}


def _stft_magnitude(wave: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(frames, bins) like librosa.stft(center=True, pad_mode='constant'), periodic Hann."""
    padded = np.pad(wave, n_fft // 2)
    count = 1 + (len(padded) - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = padded[np.arange(count)[:, None] * hop + np.arange(n_fft)] * window
    return np.abs(np.fft.rfft(frames, axis=1))


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = SAMPLE_RATE,
                          eps: float = 1e-8) -> float:
    reference = np.asarray(reference, np.float64)
    estimate = np.asarray(estimate, np.float64)
    estimate = estimate * np.sum(reference * estimate) / (np.sum(estimate**2) + eps)
    n_fft, hop = int(0.032 * sample_rate), int(0.016 * sample_rate)
    ref_mag, est_mag = _stft_magnitude(reference, n_fft, hop), _stft_magnitude(estimate, n_fft, hop)
    log_ratio = np.log(ref_mag**2 / (est_mag + eps) ** 2 + eps) ** 2
    return float(np.mean(np.sqrt(np.mean(log_ratio, axis=1))))
