"""Intrusive metrics on one utterance: PESQ (ITU-T P.862.2 wide band, reference `pesq` package),
STOI (reference `pystoi`), SI-SDR.

Every function takes ``(reference, estimate)`` 1-D float arrays at 16 kHz and returns a float;
a signal the metric cannot score gives NaN plus a reason (see :func:`score_utterance`).
"""
from __future__ import annotations

import numpy as np
from pesq import PesqError, pesq
from pystoi import stoi

SAMPLE_RATE = 16_000
METRICS = ("pesq_wb", "stoi", "si_sdr")


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


def stoi_score(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(stoi(reference, estimate, SAMPLE_RATE, extended=False))


METRIC_FUNCTIONS = {"pesq_wb": pesq_wb, "stoi": stoi_score, "si_sdr": si_sdr}


def score_utterance(reference: np.ndarray, estimate: np.ndarray, metrics=METRICS) -> tuple[dict, str]:
    """All ``metrics`` for one pair, and a reason string ('' when every metric scored)."""
    if len(reference) != len(estimate):
        raise ValueError(f"length mismatch: reference {len(reference)}, estimate {len(estimate)}")
    values, reasons = {}, []
    for name in metrics:
        try:
            values[name] = METRIC_FUNCTIONS[name](reference, estimate)
        except (PesqError, ValueError) as exc:  # silent/too-short references cannot be scored
            values[name] = float("nan")
            reasons.append(f"{name}: {type(exc).__name__}: {exc}".splitlines()[0])
    return values, "; ".join(reasons)
