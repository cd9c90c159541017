"""STOI and ESTOI as pystoi 0.4.1 computes them, with the work shared where pystoi repeats it.

``pystoi.stoi(x, y, fs, extended)`` redoes the whole front end for every call: resampling to
10 kHz, silent-frame removal (decided by the clean signal ``x`` alone), STFT, one-third-octave
envelopes and 30-frame segments. Here the same steps are composed from pystoi's own pieces
(``pystoi.utils``: its resampler's window, ``_overlap_and_add``, ``vect_two_norm``, ``EPS``;
``pystoi.stoi``'s constants and band matrix) so that

- the clean side of an utterance is computed once per process and reused for every estimate
  scored against it (a small cache keyed by the clean samples' content), and
- STOI and ESTOI of one pair share one front end.

Three of pystoi's Python loops (its STFT, the segment stacking, and the per-segment diagonal
matrices of ``row_col_normalize``) are written as array operations on the same numbers: the same
arithmetic, bit-identical on the tested signals (a product with a diagonal matrix adds only exact
zeros). ESTOI adds ``EPS``-scaled random noise in ``row_col_normalize`` (pystoi draws it from
numpy's global generator; so does :func:`row_col_normalize` here, in the same order), so ESTOI
matches pystoi to about 1e-16, not bit for bit: tests/test_intelligibility.py holds both to 1e-12.
"""
from __future__ import annotations

import hashlib
import importlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from pystoi import stoi as reference_stoi
from pystoi import utils
from scipy.signal import resample_poly

_STOI = importlib.import_module("pystoi.stoi")  # the module (the package re-exports its function)
FS, N_FRAME, NFFT, N, BETA, DYN_RANGE, OBM = (_STOI.FS, _STOI.N_FRAME, _STOI.NFFT, _STOI.N, _STOI.BETA,
                                              _STOI.DYN_RANGE, _STOI.OBM)
HOP = N_FRAME // 2  # pystoi: remove_silent_frames(..., int(N_FRAME / 2)) and stft(..., overlap=2)
WINDOW = np.hanning(N_FRAME + 2)[1:-1]  # pystoi's (= MATLAB's hanning(N_FRAME))
CLIP = 1 + 10 ** (-BETA / 20)
TOO_FEW_FRAMES = ("Not enough STFT frames to compute intermediate intelligibility measure after "
                  "removing silent frames. Returning 1e-5. Please check you wav files")
# Clean sides kept per process: scoring goes utterance by utterance through a group's models, so
# a handful suffice (each holds about 3 MB per 3 s of speech).
CACHE_SIZE = 8


def _resampler(sample_rate: int):
    """pystoi's ``resample_oct(x, FS, sample_rate)`` with its filter window built once."""
    window = utils._resample_window_oct(FS, sample_rate)
    window = window / np.sum(window)
    return lambda wave: resample_poly(wave, FS, sample_rate, window=window)


def _frames(wave: np.ndarray, count: int, hop: int) -> np.ndarray:
    """``np.array([wave[i:i + N_FRAME] for i in range(0, count * hop, hop)])`` without the loop."""
    return np.lib.stride_tricks.sliding_window_view(wave, N_FRAME)[:count * hop:hop]


def _frame_count(length: int, hop: int) -> int:
    return len(range(0, length - N_FRAME, hop))


def _segments(wave: np.ndarray) -> np.ndarray:
    """(segments, bands, N) one-third-octave envelopes of a silence-removed signal, as pystoi
    builds them: STFT (``utils.stft``, one batched FFT), band energies, sliding 30-frame segments
    (none when fewer than N frames)."""
    spectrum = np.fft.rfft(WINDOW * _frames(wave, _frame_count(len(wave), HOP), HOP), n=NFFT, axis=1).T
    envelopes = np.sqrt(np.matmul(OBM, np.square(np.abs(spectrum))))
    if envelopes.shape[1] < N:
        return np.empty((0, len(OBM), N))
    windows = np.lib.stride_tricks.sliding_window_view(envelopes, N, axis=1)
    return np.ascontiguousarray(windows.transpose(1, 0, 2))


def row_col_normalize(segments: np.ndarray) -> np.ndarray:
    """``pystoi.utils.row_col_normalize`` with its diagonal-matrix products as broadcast products
    (equal bits for equal random draws; a third less time)."""
    normed = segments + utils.EPS * np.random.standard_normal(segments.shape)
    normed -= np.mean(normed, axis=-1, keepdims=True)
    normed = normed * (1.0 / np.sqrt(utils.vect_two_norm(normed)))
    normed += utils.EPS * np.random.standard_normal(normed.shape)
    normed -= np.mean(normed, axis=1, keepdims=True)
    return normed * (1.0 / np.sqrt(utils.vect_two_norm(normed, axis=1)))


def _unit_rows(segments: np.ndarray) -> np.ndarray:
    centred = segments - np.mean(segments, axis=2, keepdims=True)
    return centred / (np.linalg.norm(centred, axis=2, keepdims=True) + utils.EPS)


@dataclass
class CleanSide:
    """What pystoi computes from the clean signal alone, for one utterance and sample rate."""
    keep: np.ndarray                    # frames kept by silent-frame removal
    count: int                          # frames of the 10 kHz signal
    segments: np.ndarray | None         # (J, bands, N); None: fewer than N frames kept
    _stoi: tuple | None = field(default=None, repr=False)
    _estoi: np.ndarray | None = field(default=None, repr=False)

    def stoi_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(segment norms, clipping ceiling, centred unit rows) of the clean segments."""
        if self._stoi is None:
            norms = np.linalg.norm(self.segments, axis=2, keepdims=True)
            self._stoi = (norms, self.segments * CLIP, _unit_rows(self.segments))
        return self._stoi

    def estoi_terms(self) -> np.ndarray:
        if self._estoi is None:
            self._estoi = row_col_normalize(self.segments)
        return self._estoi


def _silence_removed(wave: np.ndarray, keep: np.ndarray, count: int) -> np.ndarray:
    return utils._overlap_and_add(WINDOW * _frames(wave, count, HOP)[keep], HOP)


def _clean_side(clean10: np.ndarray) -> CleanSide | None:
    """None where the 10 kHz clean signal has no whole frame (pystoi fails on it)."""
    count = _frame_count(len(clean10), HOP)
    if count == 0:
        return None
    frames = WINDOW * _frames(clean10, count, HOP)
    energies = 20 * np.log10(np.linalg.norm(frames, axis=1) + utils.EPS)
    keep = (np.max(energies) - DYN_RANGE - energies) < 0
    segments = _segments(utils._overlap_and_add(frames[keep], HOP))
    return CleanSide(keep, count, segments if len(segments) else None)


class Intelligibility:
    """STOI and ESTOI of signals at one sample rate, clean sides cached by content."""

    def __init__(self, sample_rate: int):
        self.rate = sample_rate
        self.resample = _resampler(sample_rate) if sample_rate != FS else np.asarray
        self.cache: OrderedDict[bytes, CleanSide | None] = OrderedDict()

    def clean_side(self, clean: np.ndarray) -> CleanSide | None:
        key = hashlib.blake2b(clean.tobytes(), digest_size=16, person=str(clean.dtype).encode()).digest()
        side = self.cache.pop(key) if key in self.cache else _clean_side(self.resample(clean))
        self.cache[key] = side
        while len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)
        return side

    def scores(self, clean: np.ndarray, estimate: np.ndarray, metrics=("stoi", "estoi")) -> dict:
        """``{"stoi": …, "estoi": …}`` (those named in ``metrics``) of one (clean, estimate) pair."""
        if np.shape(clean) != np.shape(estimate):
            raise ValueError(f"x and y should have the same length, found {np.shape(clean)} and "
                             f"{np.shape(estimate)}")
        clean, estimate = np.ascontiguousarray(clean), np.ascontiguousarray(estimate)
        side = self.clean_side(clean) if clean.ndim == 1 else None
        if side is None:  # nothing to frame: pystoi's own path, and its error
            return {m: float(reference_stoi(clean, estimate, self.rate, extended=m == "estoi")) for m in metrics}
        if side.segments is None:
            warnings.warn(TOO_FEW_FRAMES, RuntimeWarning)
            return dict.fromkeys(metrics, 1e-5)
        segments = _segments(_silence_removed(self.resample(estimate), side.keep, side.count))
        scorers = {"stoi": _stoi, "estoi": _estoi}
        return {m: float(scorers[m](side, segments)) for m in metrics}


_BY_RATE: dict[int, Intelligibility] = {}


def intelligibility(clean: np.ndarray, estimate: np.ndarray, sample_rate: int, metrics=("stoi", "estoi")) -> dict:
    """STOI and/or ESTOI (``metrics``) of one pair, equal to ``pystoi.stoi(clean, estimate,
    sample_rate, extended=False/True)``; the clean side is reused across calls in this process."""
    if sample_rate not in _BY_RATE:
        _BY_RATE[sample_rate] = Intelligibility(sample_rate)
    return _BY_RATE[sample_rate].scores(clean, estimate, metrics)


def _stoi(clean: CleanSide, segments: np.ndarray) -> float:
    """pystoi's ``extended=False`` branch on the shared front end."""
    norms, ceiling, clean_rows = clean.stoi_terms()
    normalised = segments * (norms / (np.linalg.norm(segments, axis=2, keepdims=True) + utils.EPS))
    primes = _unit_rows(np.minimum(normalised, ceiling))
    return np.sum(primes * clean_rows) / (clean_rows.shape[0] * clean_rows.shape[1])


def _estoi(clean: CleanSide, segments: np.ndarray) -> float:
    """pystoi's ``extended=True`` branch on the shared front end."""
    clean_rows = clean.estoi_terms()
    return np.sum(clean_rows * row_col_normalize(segments) / N) / clean_rows.shape[0]
