"""Speech-quality metrics. ``METRICS`` is the one list every score table and report follows."""
from kdsd.metrics.dnsmos import DNSMOS_COLUMNS
from kdsd.metrics.intrusive import INTRUSIVE_METRICS

METRICS: tuple[str, ...] = INTRUSIVE_METRICS + DNSMOS_COLUMNS
