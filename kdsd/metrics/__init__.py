"""Speech-quality metrics. ``METRICS`` is the one list every score table and report follows;
``METRIC_INFO`` says how to label, round and read each one (analysis code looks them up here
instead of naming metrics one by one)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str
    group: str                     # the switch under evaluation.metrics (always_on: no switch)
    secondary: bool                # input, teacher, references and first seeds only
    higher_is_better: bool = True  # <name>_i is signed so that a positive value is always better
    digits: int = 2
    unit: str = ""


_INFO = (
    MetricInfo("pesq_wb", "PESQ-WB", "always_on", False),
    MetricInfo("pesq_nb", "PESQ-NB", "always_on", True),
    MetricInfo("stoi", "STOI", "always_on", False, digits=3),
    MetricInfo("estoi", "ESTOI", "always_on", False, digits=3),
    MetricInfo("si_sdr", "SI-SDR", "always_on", False, unit="dB"),
    MetricInfo("dnsmos_sig", "DNSMOS SIG", "always_on", True),
    MetricInfo("dnsmos_bak", "DNSMOS BAK", "always_on", True),
    MetricInfo("dnsmos_ovrl", "DNSMOS OVRL", "always_on", True),
    MetricInfo("dnsmos_p808", "DNSMOS P.808", "dnsmos_p808", True),
    MetricInfo("csig", "CSIG", "composite", True),
    MetricInfo("cbak", "CBAK", "composite", True),
    MetricInfo("covl", "COVL", "composite", True),
    MetricInfo("ssnr", "SSNR", "composite", True, unit="dB"),
    MetricInfo("lsd", "LSD", "lsd", True, higher_is_better=False),
    MetricInfo("wer", "WER", "wer", True, higher_is_better=False, digits=3),
    MetricInfo("spk_sim", "SpkSim", "speaker_similarity", True, digits=3),
)
METRIC_INFO: dict[str, MetricInfo] = {info.name: info for info in _INFO}
METRICS: tuple[str, ...] = tuple(METRIC_INFO)
# The costly part of a score (PESQ-NB, DNSMOS, the composite measures, the recogniser and the
# speaker encoder). Students of seeds beyond `evaluation.secondary_metric_seeds` leave these
# columns empty: the seed-level statistics use SI-SDR, and the core metrics cover every run.
SECONDARY_METRICS: tuple[str, ...] = tuple(m for m, info in METRIC_INFO.items() if info.secondary)
CORE_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m not in SECONDARY_METRICS)
# The primary test's one metric (kdsd.analysis.primary): all that seeds past
# evaluation.core_metric_seeds are scored on.
PRIMARY_METRICS: tuple[str, ...] = ("si_sdr",)
# The metrics without a switch (PESQ, STOI, ESTOI, SI-SDR, DNSMOS P.835): what the input, teacher
# and references get on test sets outside evaluation.secondary_metric_test_sets, where the
# switchable groups (WER above all) would cost the most and no student is scored on them.
BASE_METRICS: tuple[str, ...] = tuple(m for m, info in METRIC_INFO.items() if info.group == "always_on")
# Which metrics a score table holds, most to fewest: every one, the base ones, the core ones, or
# the primary one.
METRIC_TIERS: dict[str, tuple[str, ...]] = {"all": METRICS, "base": BASE_METRICS, "core": CORE_METRICS,
                                            "primary": PRIMARY_METRICS}
# Switches under evaluation.metrics (schema): a group turned off leaves its columns empty.
METRIC_GROUPS: tuple[str, ...] = tuple(dict.fromkeys(
    info.group for info in _INFO if info.group != "always_on"))


def group_columns(group: str) -> tuple[str, ...]:
    return tuple(m for m, info in METRIC_INFO.items() if info.group == group)


def improvement(metric: str, estimate, noisy_input):
    """``<metric>_i``: estimate minus input, sign-flipped where lower is better (WER, LSD)."""
    gain = estimate - noisy_input
    return gain if METRIC_INFO[metric].higher_is_better else -gain


def metric_label(metric: str) -> str:
    return METRIC_INFO[metric].label if metric in METRIC_INFO else metric.upper()
