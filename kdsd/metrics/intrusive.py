"""Intrusive metrics on one utterance: PESQ (ITU-T P.862.2 wide band and P.862 narrow band,
reference `pesq` package), STOI and extended STOI (reference `pystoi`), SI-SDR.

Every function takes ``(reference, estimate)`` 1-D float arrays at 16 kHz and returns a float;
a signal the metric cannot score gives NaN plus a reason (see :func:`score_utterance`).
"""
from __future__ import annotations

import numpy as np
from pesq import PesqError, pesq
from pystoi import stoi

SAMPLE_RATE = 16_000
INTRUSIVE_METRICS = ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr")
# A reference quieter than this (RMS, full scale 1.0) carries no speech to compare against.
SILENCE_RMS = 1e-5


def is_silent(wave: np.ndarray) -> bool:
    return bool(np.sqrt(np.mean(np.square(wave, dtype=np.float64))) < SILENCE_RMS)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), both signals mean-removed."""
    reference = np.asarray(reference, np.float64) - np.mean(reference)
    estimate = np.asarray(estimate, np.float64) - np.mean(estimate)
    energy = np.dot(reference, reference)
    if energy == 0:
        return float("nan")
    target = np.dot(estimate, reference) / energy * reference
    noise = estimate - target
    return float(10 * np.log10(np.dot(target, target) / max(np.dot(noise, noise), 1e-20)))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(pesq(SAMPLE_RATE, reference, estimate, "wb"))


def pesq_nb(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(pesq(SAMPLE_RATE, reference, estimate, "nb"))


def stoi_score(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(stoi(reference, estimate, SAMPLE_RATE, extended=False))


def estoi_score(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(stoi(reference, estimate, SAMPLE_RATE, extended=True))


METRIC_FUNCTIONS = {"pesq_wb": pesq_wb, "pesq_nb": pesq_nb, "stoi": stoi_score,
                    "estoi": estoi_score, "si_sdr": si_sdr}


def score_utterance(reference: np.ndarray, estimate: np.ndarray,
                    metrics=INTRUSIVE_METRICS) -> tuple[dict, str]:
    """All ``metrics`` for one pair, and a reason string ('' when every metric scored)."""
    if len(reference) != len(estimate):
        raise ValueError(f"length mismatch: reference {len(reference)}, estimate {len(estimate)}")
    if is_silent(reference):
        return {name: float("nan") for name in metrics}, "silent reference: nothing to score against"
    values, reasons = {}, []
    for name in metrics:
        try:
            values[name] = METRIC_FUNCTIONS[name](reference, estimate)
        except (PesqError, ValueError) as exc:  # silent/too-short references cannot be scored
            values[name] = float("nan")
            reasons.append(f"{name}: {type(exc).__name__}: {exc}".splitlines()[0])
    return values, "; ".join(reasons)
