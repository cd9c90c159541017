"""Power of a seed-level t-test: the minimum detectable effect and the seeds an effect needs.

A primary test estimates an effect with standard error ``sd_seed / √n`` over n seeds and
``dof_factor · (n − 1)`` degrees of freedom (1 for a one-sample test over seeds; for the trend
contrast, the Welch–Satterthwaite factor of its scenarios, up to their number). Power is the
probability that the two-sided t-test at level ``alpha`` rejects when the true effect is δ,
from the noncentral t distribution.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy import stats as sps

MAX_SEEDS = 500
SD_CI_LEVEL = 0.8  # the seeds-needed range: the seed SD's 80 % interval (an SD from 6 seeds is rough)


def power(effect: float, sd_seed: float, n: float, alpha: float, dof_factor: float = 1.0) -> float:
    """P(two-sided t-test at ``alpha`` rejects | true effect) with ``n`` seeds."""
    if n < 2 or not np.isfinite(sd_seed) or sd_seed <= 0:
        return math.nan
    dof = dof_factor * (n - 1)
    critical = sps.t.ppf(1 - alpha / 2, dof)
    ncp = abs(effect) * math.sqrt(n) / sd_seed
    # the far tail is negligible, and scipy's nct.cdf can return NaN there
    return float(sps.nct.sf(critical, dof, ncp) + np.nan_to_num(sps.nct.cdf(-critical, dof, ncp)))


def minimum_detectable_effect(sd_seed: float, n: float, alpha: float, target_power: float,
                              dof_factor: float = 1.0) -> float:
    """The smallest |effect| detected with ``target_power`` at ``n`` seeds (NaN if untestable)."""
    if n < 2 or not np.isfinite(sd_seed) or sd_seed <= 0:
        return math.nan
    high = sd_seed
    while power(high, sd_seed, n, alpha, dof_factor) < target_power:
        high *= 2
    return float(optimize.brentq(lambda d: power(d, sd_seed, n, alpha, dof_factor) - target_power,
                                 0.0, high, xtol=1e-6 * sd_seed))


def seeds_needed(effect: float, sd_seed: float, alpha: float, target_power: float,
                 dof_factor: float = 1.0) -> float:
    """The fewest seeds (≥ 3) at which ``effect`` is detected with ``target_power``; inf past
    MAX_SEEDS, NaN without a seed SD."""
    if not np.isfinite(sd_seed) or sd_seed <= 0 or effect == 0:
        return math.nan
    for n in range(3, MAX_SEEDS + 1):
        if power(effect, sd_seed, n, alpha, dof_factor) >= target_power:
            return n
    return math.inf


def sd_interval(sd_seed: float, dof: float, level: float = SD_CI_LEVEL) -> tuple[float, float]:
    """Two-sided ``level`` interval of a standard deviation estimated with ``dof`` degrees of
    freedom: dof·s²/σ² ~ χ²(dof). NaN without an SD."""
    if not (np.isfinite(sd_seed) and np.isfinite(dof) and dof > 0):
        return math.nan, math.nan
    tail = (1 - level) / 2
    return (float(sd_seed * math.sqrt(dof / sps.chi2.ppf(1 - tail, dof))),
            float(sd_seed * math.sqrt(dof / sps.chi2.ppf(tail, dof))))


def seeds_needed_range(effect: float, sd_seed: float, sd_dof: float, alpha: float, target_power: float,
                       dof_factor: float = 1.0, level: float = SD_CI_LEVEL) -> tuple[float, float]:
    """The seeds ``effect`` needs at either end of the SD's ``level`` interval: (fewest, most)."""
    low, high = sd_interval(sd_seed, sd_dof, level)
    return (seeds_needed(effect, low, alpha, target_power, dof_factor),
            seeds_needed(effect, high, alpha, target_power, dof_factor))


def format_seed_count(n: float) -> str:
    """'11', '> 500' (past MAX_SEEDS) or '–' (no SD)."""
    return "–" if n != n else (f"> {MAX_SEEDS}" if math.isinf(n) else str(int(n)))


def power_table(sd_seeds: dict[str, float], seed_counts, alpha: float, target_power: float,
                target_effect: float) -> list[dict]:
    """Per label and seed count: the 95 % half-width, the MDE at ``alpha`` and the power for
    ``target_effect``; for docs/statistics.md#power (`kdsd power`)."""
    rows = []
    for label, sd in sd_seeds.items():
        for n in seed_counts:
            rows.append({"label": label, "sd_seed": sd, "seeds": n,
                         "ci95_half_width": float(sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)),
                         "mde": minimum_detectable_effect(sd, n, alpha, target_power),
                         "power_at_target": power(target_effect, sd, n, alpha)})
    return rows
