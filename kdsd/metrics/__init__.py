"""Speech-quality metrics. ``METRICS`` is the one list every score table and report follows."""
from kdsd.metrics.dnsmos import DNSMOS_COLUMNS
from kdsd.metrics.intrusive import INTRUSIVE_METRICS

METRICS: tuple[str, ...] = INTRUSIVE_METRICS + DNSMOS_COLUMNS
# The costly part of a score (about 80 % of its CPU: DNSMOS loops each clip to 9 s and runs a
# network per window; narrow-band PESQ costs more than wide-band). Students of seeds beyond
# `evaluation.secondary_metric_seeds` leave these columns empty: the seed-level statistics use
# SI-SDR, and the other core metrics still cover every run.
SECONDARY_METRICS: tuple[str, ...] = ("pesq_nb",) + DNSMOS_COLUMNS
CORE_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m not in SECONDARY_METRICS)
