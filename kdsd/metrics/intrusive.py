"""Intrusive metrics on one utterance: PESQ (ITU-T P.862.2 wide band and P.862 narrow band,
reference `pesq` package), STOI and extended STOI (`pystoi`'s computation, its clean side shared
across estimates: kdsd.metrics.intelligibility), SI-SDR.

Every function takes ``(reference, estimate)`` 1-D float arrays at 16 kHz and returns a float;
a signal the metric cannot score gives NaN plus a reason (see :func:`score_utterance`).
"""
from __future__ import annotations

import numpy as np
from pesq import PesqError, pesq

from kdsd.metrics.intelligibility import intelligibility

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
    return intelligibility(reference, estimate, SAMPLE_RATE, ("stoi",))["stoi"]


def estoi_score(reference: np.ndarray, estimate: np.ndarray) -> float:
    return intelligibility(reference, estimate, SAMPLE_RATE, ("estoi",))["estoi"]


METRIC_FUNCTIONS = {"pesq_wb": pesq_wb, "pesq_nb": pesq_nb, "stoi": stoi_score,
                    "estoi": estoi_score, "si_sdr": si_sdr}
# STOI and ESTOI share one front end: one call computes both (kdsd.metrics.intelligibility).
JOINT_METRICS = ("stoi", "estoi")


def _metric_calls(metrics) -> list[tuple[str, ...]]:
    """``metrics`` in order, the wanted ones of ``JOINT_METRICS`` as one entry."""
    joint = tuple(m for m in JOINT_METRICS if m in metrics)
    return list(dict.fromkeys(joint if m in joint else (m,) for m in metrics))


def _score_call(names: tuple[str, ...], reference, estimate) -> dict:
    if set(names) <= set(JOINT_METRICS):
        return intelligibility(reference, estimate, SAMPLE_RATE, names)
    return {names[0]: METRIC_FUNCTIONS[names[0]](reference, estimate)}


def score_utterance(reference: np.ndarray, estimate: np.ndarray,
                    metrics=INTRUSIVE_METRICS) -> tuple[dict, str]:
    """All ``metrics`` for one pair, and a reason string ('' when every metric scored)."""
    if len(reference) != len(estimate):
        raise ValueError(f"length mismatch: reference {len(reference)}, estimate {len(estimate)}")
    if is_silent(reference):
        return {name: float("nan") for name in metrics}, "silent reference: nothing to score against"
    values, reasons = {}, []
    for names in _metric_calls(metrics):
        try:
            values.update(_score_call(names, reference, estimate))
        except (PesqError, ValueError) as exc:  # silent/too-short references cannot be scored
            values.update(dict.fromkeys(names, float("nan")))
            reasons += [f"{name}: {type(exc).__name__}: {exc}".splitlines()[0] for name in names]
    return values, "; ".join(reasons)
