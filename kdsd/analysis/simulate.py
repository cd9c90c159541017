"""Simulated studies for the primary family: its error rates, its power, and the choice of trend test.

A study has S seeds, C scenarios on a log2-compression axis and T test sets. Each student run
(method, scenario, seed) is good or bad as a whole (a run effect, SD ``sigma_run``, shared by its
test sets) and each test set adds its own noise (SD ``sigma_cell``); cosine's true advantage is
``level_effect + trend_effect_db · (x_c − mean x)`` dB in scenario c. The teacher gain is one number,
so the retained gap is the dB gap divided by it. Both baselines are compared with the same cosine
runs, as in a real study, so their tests are correlated.
"""
from __future__ import annotations

import numpy as np

from kdsd.analysis.primary import TREND_TESTS, CellGains, primary_family, retained_gap
from kdsd.analysis.seeds import BETTER, WORSE
from kdsd.analysis.settings import AnalysisSettings

DEFAULT_LOG2_COMPRESSION = (2.0, 4.0, 6.0)  # the default preset: 4×, 16×, 61×
DECIDED = (BETTER, WORSE)


def simulate_cells(rng: np.random.Generator, *, seeds: int, log2_compression=DEFAULT_LOG2_COMPRESSION,
                   test_sets: int = 5, teacher_gain: float = 8.0, sigma_run: float = 0.2,
                   sigma_cell: float = 0.2, sigma_seed: float = 0.0, level_effect: float = 0.0,
                   trend_effect_db: float = 0.0, baselines=("none", "sp2step")) -> dict[str, CellGains]:
    """One simulated study: the paired differences of cosine against each baseline.

    ``sigma_seed``: an effect of the seed (data order, say) shared by every scenario and test
    set of a comparison; it cancels in per-seed slopes and in the trend contrast alike."""
    x = np.asarray(log2_compression, dtype=float)
    shape = (len(x), test_sets, seeds)

    def runs() -> np.ndarray:
        return rng.normal(0.0, sigma_run, (len(x), 1, seeds)) + rng.normal(0.0, sigma_cell, shape)

    effect = level_effect + trend_effect_db * (x - x.mean())
    cosine = runs() + effect[:, None, None]
    def shared() -> np.ndarray:
        return rng.normal(0.0, sigma_seed, (1, 1, seeds))

    return {base: CellGains(diffs=cosine - runs() + shared(), teacher_gain=np.full(shape[:2], teacher_gain),
                            log2_compression=x, scenarios=[f"c{i}" for i in range(len(x))],
                            test_sets=[f"t{i}" for i in range(test_sets)], seeds=list(range(1, seeds + 1)))
            for base in baselines}


def level_seed_sd(*, sigma_run: float, sigma_cell: float, scenarios: int, test_sets: int) -> float:
    """The SD over seeds of the level difference this model implies (to match a measured one)."""
    return float(np.sqrt(2 * sigma_run ** 2 / scenarios + 2 * sigma_cell ** 2 / (scenarios * test_sets)))


def decision_rates(n_studies: int, seed: int = 0, settings: AnalysisSettings = AnalysisSettings(),
                   **study) -> dict:
    """Over ``n_studies`` simulated studies: how often any primary test said better/worse
    (family-wise), and how often each baseline's level and trend test did."""
    rng = np.random.default_rng(seed)
    any_decided, per_test = 0, {}
    for _ in range(n_studies):
        tests = primary_family(simulate_cells(rng, **study), settings, with_power_figures=False)
        any_decided += any(t["verdict"] in DECIDED for t in tests)
        for t in tests:
            key = f"{t['test']} vs {t['baseline']}"
            per_test[key] = per_test.get(key, 0) + (t["verdict"] in DECIDED)
    return {"any": any_decided / n_studies, **{k: v / n_studies for k, v in per_test.items()}}


def trend_test_rates(n_studies: int, seed: int = 0, alpha: float = 0.05, **study) -> dict[str, float]:
    """Rejection rate at ``alpha`` of each trend test on the same simulated studies (one
    baseline, no multiplicity): its size under no trend, its power under one."""
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(TREND_TESTS, 0)
    for _ in range(n_studies):
        cells = simulate_cells(rng, baselines=("b",), **study)["b"]
        gap = retained_gap(cells, 0.0)
        for name, test in TREND_TESTS.items():
            hits[name] += test(gap, cells.log2_compression)["p"] < alpha
    return {name: count / n_studies for name, count in hits.items()}




def print_power_report(sd_seeds: dict[str, float], seed_counts, *, alpha: float = 0.05, family_size: int = 4,
                       target_power: float = 0.8, target_effect: float = 0.3, trend_studies: int = 0,
                       seed: int = 0, measured_on: int = 6) -> None:
    """The power table of docs/statistics.md#power (level tests at α/family_size, Holm's first step), the seeds the
    target needs for each SD as a point and over the SD's 80 % interval (were it measured on
    ``measured_on`` seeds), and, with ``trend_studies``, the simulated size and power of the two
    trend tests."""
    from kdsd.analysis.power import (
        SD_CI_LEVEL, format_seed_count, power_table, sd_interval, seeds_needed, seeds_needed_range)

    level = alpha / family_size
    print(f"Level test: seed SD, seeds, 95 % half-width, MDE ({100 * target_power:.0f} % power, two-sided "
          f"α = {level:.4g}), power for {target_effect:g} dB")
    for row in power_table(sd_seeds, seed_counts, level, target_power, target_effect):
        print(f"  {row['label']:>12}  SD {row['sd_seed']:.3f}  seeds {row['seeds']:>3}  ±{row['ci95_half_width']:.3f}"
              f"  MDE {row['mde']:.3f}  power {row['power_at_target']:.2f}")
    print(f"Seeds needed for {target_effect:g} dB ({100 * target_power:.0f} % power, α = {level:.4g}), and their "
          f"range over the SD's {100 * SD_CI_LEVEL:.0f} % interval (chi-square, the SD measured on {measured_on} "
          f"seeds):")
    for label, sd in sd_seeds.items():
        low, high = sd_interval(sd, measured_on - 1)
        point = seeds_needed(target_effect, sd, level, target_power)
        fewest, most = seeds_needed_range(target_effect, sd, measured_on - 1, level, target_power)
        print(f"  {label:>12}  SD {sd:.3f} [{low:.3f}, {high:.3f}]  seeds {format_seed_count(point)}"
              f"  range {format_seed_count(fewest)}–{format_seed_count(most)}")
    if not trend_studies:
        return
    print(f"Trend tests on {trend_studies} simulated studies each (3 scenarios at log2 compression 2, 4, 6; "
          f"5 test sets; rejection rate at α = {alpha:g}, one test):")
    for seeds in seed_counts:
        for effect in (0.0, 0.15, 0.3):
            for sigma_seed in (0.0, 0.2):
                rates = trend_test_rates(trend_studies, seed=seed, alpha=alpha, seeds=seeds,
                                         trend_effect_db=effect, sigma_seed=sigma_seed)
                print(f"  seeds {seeds:>3}  trend {effect:.2f} dB/doubling  shared seed SD {sigma_seed:.1f}:  "
                      + "  ".join(f"{name} {rate:.3f}" for name, rate in rates.items()))
