"""Synthetic speakers, in three disjoint pools, and a measurable voice signature.

A speaker is one point of engine x accent x variant x pitch x rate:

* **Piper** (``en_US-joe-medium``, the only bundled neural voice). Speakers differ by a
  resampling pitch shift, which moves F0 *and* every formant by the same ratio: a different
  vocal-tract length, not just a different note. ``rate`` sets the speaking rate.
* **eSpeak NG** (formant synthesis). The voice name is ``<accent>+<variant>``: the accent (a
  language file: ``en`` = British, ``en-us``, ``en-gb-x-rp``, ``en-gb-scotland``, ``en-029``
  Caribbean, ``en-us-nyc``, ``en-gb-x-gbcwmd`` West Midlands, ``en-gb-x-gbclan`` Lancaster)
  changes the phonemes and rhythm; the variant changes the glottal source and formant
  frequencies/bandwidths (``m1``..``m8``, ``f1``..``f5``: the classic synthesiser; ``klatt``..
  ``klatt6``: the Klatt synthesiser with its own voicing source). ``pitch`` scales the whole
  F0 contour, ``rate`` the speaking rate.

Pools (``POOLS``):

* ``train`` - used by the train and valid splits: Piper and eSpeak (accents ``en``, ``en-us``,
  ``en-gb-x-rp``; classic variants m1, m3, m5-m8, f1, f2, f4, f5).
* ``test`` - used by test_matched / test_noise / test_snr / test_reverb: unseen speakers from
  the same engines and voice families (Piper at new pitches; classic eSpeak variants m2, m4, f3
  that no train speaker uses, with ``en`` / ``en-us`` accents).
* ``test_speaker`` - out-of-distribution voices: the Klatt synthesiser (no train speaker uses a
  Klatt variant) with five accents no train speaker uses. No (engine, voice name) - hence no
  (engine, accent, variant) - of this pool appears in ``train``.

Whisper / croak / robot-style variants are left out: they have no usable F0 or are barely
intelligible, which would make a denoising target ill-defined.

Distinctness. ``voice_signature`` measures (i) the median F0 of the voiced frames (YIN) in
semitones and (ii) the cepstrally smoothed mean log-mel spectral envelope (level removed), and
``distinguishable`` calls two speakers different when, on the same sentence, their median F0
differs by at least ``MIN_F0_SEMITONES`` *or* their envelopes differ by at least
``MIN_ENVELOPE_DB`` (RMS over 40 mel bands). ``tests/test_speakers.py`` checks every pair of
``SPEAKERS``. Pitches are set so that speakers whose envelopes are alike (e.g. the classic male
variants m1-m6, or two Piper pitch shifts less than 3 semitones apart) sit at least ~1.7
semitones apart in F0.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kdsd import SAMPLE_RATE
from kdsd.corpus.tts import PIPER_VOICE, Voice
from kdsd.errors import KdsdError

POOLS: tuple[str, ...] = ("train", "test", "test_speaker")


@dataclass(frozen=True)
class Speaker:
    speaker_id: str
    voice: Voice
    pool: str  # one of POOLS


def _piper(pitch: float, rate: float) -> Voice:
    return Voice("piper", PIPER_VOICE, pitch=pitch, rate=rate)


def _espeak(name: str, pitch: float, rate: float) -> Voice:
    return Voice("espeak", name, pitch=pitch, rate=rate)


# Median F0 on the signature sentence is given in the comments (Hz, measured by voice_signature).
SPEAKERS: tuple[Speaker, ...] = (
    # ---- train: 5 Piper + 13 eSpeak (classic variants, accents en / en-us / en-gb-x-rp)
    Speaker("piper_joe_m7", _piper(-7.0, 1.0), "train"),                          # 61
    Speaker("piper_joe_m3", _piper(-3.0, 0.95), "train"),                         # 78
    Speaker("piper_joe_p0", _piper(0.0, 1.0), "train"),                           # 94
    Speaker("piper_joe_p4", _piper(4.0, 1.05), "train"),                          # 117
    Speaker("piper_joe_p7", _piper(7.0, 0.95), "train"),                          # 135
    Speaker("espeak_rp_m1", _espeak("en-gb-x-rp+m1", -6.0, 0.9), "train"),        # 67
    Speaker("espeak_en_m5", _espeak("en+m5", -3.5, 1.05), "train"),               # 86
    Speaker("espeak_us_m1", _espeak("en-us+m1", 0.0, 1.0), "train"),              # 95
    Speaker("espeak_en_m3", _espeak("en+m3", 2.25, 1.1), "train"),                # 121
    Speaker("espeak_us_m6", _espeak("en-us+m6", 5.0, 0.95), "train"),             # 136
    Speaker("espeak_rp_m8", _espeak("en-gb-x-rp+m8", -3.5, 1.0), "train"),        # 71
    Speaker("espeak_us_m8", _espeak("en-us+m8", 0.0, 1.15), "train"),             # 87
    Speaker("espeak_rp_m7", _espeak("en-gb-x-rp+m7", 0.0, 0.9), "train"),         # 108
    Speaker("espeak_en_m7", _espeak("en+m7", 3.5, 1.0), "train"),                 # 132
    Speaker("espeak_en_f1", _espeak("en+f1", -2.0, 1.1), "train"),                # 162
    Speaker("espeak_us_f4", _espeak("en-us+f4", 0.0, 1.0), "train"),              # 181
    Speaker("espeak_us_f2", _espeak("en-us+f2", 2.5, 0.95), "train"),             # 228
    Speaker("espeak_rp_f5", _espeak("en-gb-x-rp+f5", 3.5, 1.05), "train"),        # 252
    # ---- test: unseen speakers, same engines and voice families as train
    Speaker("piper_joe_m5", _piper(-5.0, 1.1), "test"),                           # 68
    Speaker("piper_joe_p2", _piper(2.0, 0.9), "test"),                            # 105
    Speaker("espeak_us_m4", _espeak("en-us+m4", -4.0, 1.0), "test"),              # 75
    Speaker("espeak_us_m2", _espeak("en-us+m2", 1.0, 0.9), "test"),               # 108
    Speaker("espeak_us_f3", _espeak("en-us+f3", -6.75, 0.95), "test"),            # 146
    Speaker("espeak_en_f3", _espeak("en+f3", -1.0, 1.05), "test"),                # 202
    # ---- test_speaker: out-of-distribution voices (Klatt synthesiser, accents unseen in train)
    Speaker("espeak_nyc_klatt3", _espeak("en-us-nyc+klatt3", -4.0, 1.05), "test_speaker"),   # 83
    Speaker("espeak_sc_klatt", _espeak("en-gb-scotland+klatt", -3.0, 1.0), "test_speaker"),  # 88
    Speaker("espeak_wm_klatt4", _espeak("en-gb-x-gbcwmd+klatt4", 0.0, 0.9), "test_speaker"),  # 103
    Speaker("espeak_wi_klatt2", _espeak("en-029+klatt2", 3.0, 0.95), "test_speaker"),        # 123
    Speaker("espeak_lan_klatt5", _espeak("en-gb-x-gbclan+klatt5", 4.0, 1.0), "test_speaker"),  # 129
    Speaker("espeak_sc_klatt6", _espeak("en-gb-scotland+klatt6", 7.0, 1.1), "test_speaker"),  # 155
)


def speakers_in(pool: str) -> list[Speaker]:
    if pool not in POOLS:
        raise KdsdError(f"unknown speaker pool {pool!r}; valid pools: {', '.join(POOLS)}")
    return [s for s in SPEAKERS if s.pool == pool]


# ---------------------------------------------------------------- voice signature

# Two speakers are distinguishable when, on the same sentence, their median F0 differs by at
# least MIN_F0_SEMITONES or their smoothed spectral envelopes by at least MIN_ENVELOPE_DB.
#
# 1.5 semitones (a 9 % F0 ratio) is several times the ~0.3-1 semitone just-noticeable difference
# for the pitch of speech, so the two voices are heard at clearly different pitches.
#
# MIN_ENVELOPE_DB was calibrated on what *changing the sentence* does to one voice: 7 voices
# (Piper at 0 and -4 semitones, eSpeak en-us+m1, en-us+f2, en+m3, en-us+klatt4,
# en-gb-scotland+m5) x 5 sentences gave within-speaker envelope distances of median 2.4 dB,
# 90th percentile 3.6 dB, max 5.0 dB. Requiring 4.0 dB between two speakers *on the same
# sentence* thus asks for a timbre difference larger than nearly all of the variation the words
# themselves cause. For scale: Piper shifted by 3 semitones (formants moved 19 %) is 4.3 dB
# from unshifted Piper; eSpeak m1 vs m3 (formants a few % apart) is 2.4 dB; classic vs Klatt
# synthesiser is 7-15 dB.
MIN_F0_SEMITONES = 1.5
MIN_ENVELOPE_DB = 4.0

_F0_RANGE = (50.0, 500.0)   # Hz searched by YIN
_YIN_THRESHOLD = 0.25       # cumulative-mean-normalised difference below which a frame is voiced
_N_MELS, _N_CEPS = 40, 12


def voice_signature(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``[median F0 in semitones re 100 Hz, c1 .. c12]``: pitch and smoothed spectral envelope.

    ``c`` are the orthonormal DCT coefficients 1-12 of the mean log-mel spectrum (40 bands,
    60-7600 Hz, dB, over frames within 30 dB of the loudest), divided by sqrt(40) so that the
    Euclidean distance of two ``c`` vectors is the RMS dB difference, across bands, of the two
    cepstrally smoothed envelopes with the overall level removed. F0 is NaN if fewer than 5
    frames are voiced.
    """
    f0 = yin_f0(wave, sample_rate)
    pitch = 12.0 * np.log2(np.median(f0) / 100.0) if len(f0) >= 5 else np.nan
    return np.concatenate([[pitch], _envelope(wave, sample_rate)])


def signature_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(|F0 difference| in semitones, envelope distance in dB) between two voice signatures."""
    return float(abs(a[0] - b[0])), float(np.linalg.norm(a[1:] - b[1:]))


def distinguishable(a: np.ndarray, b: np.ndarray) -> bool:
    df0, denv = signature_distance(a, b)
    return bool(df0 >= MIN_F0_SEMITONES or denv >= MIN_ENVELOPE_DB)


def yin_f0(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """F0 (Hz) of the voiced 10 ms frames, by YIN (de Cheveigne & Kawahara 2002).

    30 ms integration window; frames more than 30 dB below the loudest are skipped; a frame is
    voiced when the cumulative-mean-normalised difference dips below ``_YIN_THRESHOLD``; the
    first such dip's local minimum, refined by parabolic interpolation, gives the period.
    """
    x = np.asarray(wave, dtype=np.float64)
    win = int(0.03 * sample_rate)
    tau_max = int(np.ceil(sample_rate / _F0_RANGE[0]))
    tau_min = int(sample_rate / _F0_RANGE[1])
    frames = _frames(x, win + tau_max, sample_rate // 100)
    frames = frames - frames.mean(axis=1, keepdims=True)
    rms = np.sqrt((frames[:, :win] ** 2).mean(axis=1))
    frames = frames[rms > rms.max() * 10 ** (-30 / 20)] if rms.max() > 0 else frames[:0]
    if len(frames) == 0:
        return np.zeros(0)
    nfft = 1 << int(np.ceil(np.log2(2 * (win + tau_max))))
    # r[t] = sum_{j < win} x[j] x[j + t], all lags at once
    r = np.fft.irfft(np.fft.rfft(frames, nfft) * np.conj(np.fft.rfft(frames[:, :win], nfft)),
                     nfft)[:, : tau_max + 1]
    energy = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)
    lags = np.arange(tau_max + 1)
    diff = energy[:, [win]] + (energy[:, win + lags] - energy[:, lags]) - 2.0 * r
    diff[:, 0] = 0.0
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * lags[1:] / np.maximum(np.cumsum(diff[:, 1:], axis=1), 1e-12)
    f0 = []
    for row in cmnd:
        below = np.flatnonzero(row[tau_min:tau_max] < _YIN_THRESHOLD)
        if below.size == 0:
            continue
        t = tau_min + int(below[0])
        while t + 1 < tau_max and row[t + 1] < row[t]:
            t += 1
        a, b, c = row[t - 1], row[t], row[t + 1]
        curvature = a - 2.0 * b + c
        shift = 0.5 * (a - c) / curvature if curvature > 0 else 0.0
        f0.append(sample_rate / (t + shift))
    return np.asarray(f0)


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    if len(x) < size:
        x = np.pad(x, (0, size - len(x)))
    return np.lib.stride_tricks.sliding_window_view(x, size)[::hop]


def _envelope(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    nfft = 512 * sample_rate // 16000
    frames = _frames(np.asarray(wave, dtype=np.float64), nfft, sample_rate // 100)
    power = np.abs(np.fft.rfft(frames * np.hanning(nfft), axis=1)) ** 2
    total = power.sum(axis=1)
    power = power[total >= total.max() * 1e-3]  # all frames if silent
    mel_db = 10.0 * np.log10(power @ _mel_filterbank(sample_rate, nfft).T + 1e-10)
    return (_dct_matrix() @ mel_db.mean(axis=0))[1: _N_CEPS + 1] / np.sqrt(_N_MELS)


@lru_cache(maxsize=4)
def _mel_filterbank(sample_rate: int, nfft: int, low: float = 60.0, high: float = 7600.0
                    ) -> np.ndarray:
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(low), mel(min(high, sample_rate / 2)), _N_MELS + 2)
                            / 2595.0) - 1.0)
    freqs = np.arange(nfft // 2 + 1) * sample_rate / nfft
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II."""
    n = np.arange(_N_MELS)
    m = np.cos(np.pi / _N_MELS * (n[None, :] + 0.5) * n[:, None]) * np.sqrt(2.0 / _N_MELS)
    m[0] /= np.sqrt(2.0)
    return m
