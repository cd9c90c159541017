"""Composite measures, segmental SNR and LSD on real TTS speech, against pysepm-evo's port of
Loizou's MATLAB code (an independent implementation: per-frame loops, scipy STFT)."""
import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from kdsd.corpus.tts import Voice, synthesize
from kdsd.metrics import composite as comp
from kdsd.metrics.intrusive import pesq_wb

SR = 16_000
TEXT = "She opened the window and the cold air came into the room."
# Sub-measures agree to float rounding (same frames, same formulas); the composites then to 1e-6.
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def clean():
    return synthesize(Voice("piper", "en_US-joe-medium"), TEXT).astype(np.float64)


def _at_snr(clean, snr_db, seed=1):
    noise = np.random.default_rng(seed).standard_normal(clean.size)
    return clean + noise * np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)


@pytest.fixture(scope="module")
def pysepm():
    """pysepm_evo.qualityMeasures without its package __init__ (that imports srmrpy, absent) and
    with scipy's kaiser window under its pre-1.13 name (pysepm_evo.util imports it from there)."""
    spec = importlib.util.find_spec("pysepm_evo")
    if spec is None:
        pytest.skip("pysepm-evo (test extra) not installed")
    package = types.ModuleType("pysepm_evo")
    package.__path__ = [str(Path(spec.origin).parent)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scipy.signal, "kaiser", scipy.signal.windows.kaiser, raising=False)
        patch.setitem(sys.modules, "pysepm_evo", package)
        patch.delitem(sys.modules, "pysepm_evo.util", raising=False)
        return importlib.import_module("pysepm_evo.qualityMeasures")


def _pysepm_composite(pysepm, clean, processed):
    wss = pysepm.wss(clean, processed, SR)
    llr = pysepm.llr(clean, processed, SR, used_for_composite=True)
    ssnr = pysepm.SNRseg(clean, processed, SR)
    pesq = pesq_wb(clean, processed)  # pysepm-evo's composite lost its PESQ call; the formulas are composite.m's
    scores = {"csig": 3.093 - 1.029 * llr + 0.603 * pesq - 0.009 * wss,
              "cbak": 1.634 + 0.478 * pesq - 0.007 * wss + 0.063 * ssnr,
              "covl": 1.594 + 0.805 * pesq - 0.512 * llr - 0.007 * wss}
    return {k: float(np.clip(v, 1, 5)) for k, v in scores.items()} | {"ssnr": ssnr}, wss, llr


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_agrees_with_pysepm(pysepm, clean, snr_db):
    noisy = _at_snr(clean, snr_db)
    expected, wss, llr = _pysepm_composite(pysepm, clean, noisy)
    clean_frames, noisy_frames = comp._frames(clean + comp.EPS, SR), comp._frames(noisy + comp.EPS, SR)
    assert comp._trimmed_mean(comp.weighted_spectral_slope_frames(clean_frames, noisy_frames, SR)) == \
        pytest.approx(wss, rel=TOLERANCE)
    assert comp._trimmed_mean(comp.log_likelihood_ratio_frames(clean_frames, noisy_frames)) == \
        pytest.approx(llr, rel=TOLERANCE)
    assert comp.composite(clean, noisy) == pytest.approx(expected, rel=TOLERANCE)


def test_a_given_pesq_term_is_used_as_is(clean):
    """Scoring passes the PESQ-WB it already has: the same numbers without a second PESQ run."""
    noisy = _at_snr(clean, 5.0)
    assert comp.composite(clean, noisy, pesq_mos=pesq_wb(clean, noisy)) == comp.composite(clean, noisy)
    low, high = comp.composite(clean, noisy, pesq_mos=2.5), comp.composite(clean, noisy, pesq_mos=3.5)
    assert high["covl"] - low["covl"] == pytest.approx(0.805) and high["ssnr"] == low["ssnr"]


def test_identical_signals_reach_the_ceiling(clean):
    scores = comp.composite(clean, clean)
    assert {k: scores[k] for k in ("csig", "cbak", "covl")} == {"csig": 5.0, "cbak": 5.0, "covl": 5.0}
    # Frames of the TTS clip's digital-silence edges sit at snr.m's -10 dB floor even here.
    assert 34.0 < scores["ssnr"] <= 35.0
    # URGENT's eps terms make digital silence (the TTS clip's edges) count even against itself;
    # with a -100 dBFS dither the distance of a signal to itself vanishes.
    dithered = clean + 1e-5 * np.random.default_rng(0).standard_normal(clean.size)
    assert comp.log_spectral_distance(dithered, dithered) < 1e-3


def _urgent_lsd(ref, inf, fs, nfft=0.032, hop=0.016, p=2, eps=1.0e-08):
    """URGENT 2024 challenge evaluation script's lsd_metric, verbatim but for names (librosa STFT)."""
    import librosa
    scaling_factor = np.sum(ref * inf) / (np.sum(inf**2) + eps)
    inf = inf * scaling_factor
    nfft, hop = int(fs * nfft), int(fs * hop)
    ref_spec = np.abs(librosa.stft(ref, hop_length=hop, n_fft=nfft)).T
    inf_spec = np.abs(librosa.stft(inf, hop_length=hop, n_fft=nfft)).T
    lsd = np.log(ref_spec**p / ((inf_spec + eps) ** p) + eps) ** 2
    return np.mean(np.mean(lsd, axis=1) ** 0.5, axis=0)


@pytest.mark.parametrize("snr_db", [0.0, 20.0])
def test_lsd_agrees_with_the_urgent_script(clean, snr_db):
    noisy = _at_snr(clean, snr_db)
    assert comp.log_spectral_distance(clean, noisy) == pytest.approx(_urgent_lsd(clean, noisy, SR), rel=1e-6)


def test_more_noise_scores_worse(clean):
    mild, strong = (comp.composite(clean, _at_snr(clean, snr)) for snr in (20.0, 0.0))
    for name in comp.COMPOSITE_METRICS:
        assert mild[name] > strong[name]
    assert mild["ssnr"] == pytest.approx(13.64, abs=0.05)  # white noise at 20 dB, silences included
    lsd_mild, lsd_strong = (comp.log_spectral_distance(clean, _at_snr(clean, snr)) for snr in (20.0, 0.0))
    assert 0 < lsd_mild < lsd_strong


def test_lsd_ignores_gain(clean):
    noisy = _at_snr(clean, 10.0)
    assert comp.log_spectral_distance(clean, 0.3 * noisy) == pytest.approx(
        comp.log_spectral_distance(clean, noisy), rel=1e-6)


def test_too_short_signal_is_refused():
    with pytest.raises(ValueError, match="shorter than one 30 ms frame"):
        comp.composite(np.ones(100), np.ones(100))
