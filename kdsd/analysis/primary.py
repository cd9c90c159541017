"""The pre-registered primary family (config `analysis.primary`): four tests decide the headline.

Per baseline b (default `none` and `sp2step`), with the training seed as the unit and
d[c, t, s] = gain(cosine) − gain(b) in scenario c, test set t, seed s, each gain the mean ΔSI-SDR
over the one utterance set of c × t that every run shares (:func:`kdsd.analysis.claim.retained_runs`):

- **level**: per seed, L_s = mean of d over every scenario × test set; a one-sample t-test over the
  seeds that have every cell (df = n − 1).
- **trend** (the paper's claim): the retained gap G[c, s] = mean of d / teacher gain over the test
  sets where the teacher gains ≥ `min_teacher_gain_db`, regressed on log2 compression. Default
  `contrast`: the least-squares slope of the scenario means, Σ w_c·mean_s G[c, s], with its standard
  error from each scenario's own seed variance and Welch–Satterthwaite df. The per-seed slopes
  (`per_seed_slope`) estimate the same slope, but their t-test has n − 1 df where the contrast
  has up to C·(n − 1): in simulation (`kdsd power --trend`) the contrast has more power at
  3–8 seeds at the same error rate. A seed effect shared by every scenario cancels in a
  contrast (Σ w_c = 0), so treating scenarios as independent errs on the conservative side.

Holm over the finite p-values of the family. Each test's interval is taken at the level Holm
tested it at (α/(m − k + 1) at step k; after Holm stops, the level of the step where it stopped),
so "better" or "worse" ⇔ that interval excludes 0 ⇔ the Holm-adjusted p < α. Equivalence (the
whole interval inside ±margin) is checked first.

The claim against b is "supported" only when its trend is "better" **and** cosine leads at the
most compressed scenario (mean of d over test sets there, 95 % t interval over seeds above 0):
an intersection–union test, so the second condition needs no multiplicity correction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from kdsd.analysis.claim import MIN_SCENARIOS
from kdsd.analysis.power import minimum_detectable_effect, seeds_needed
from kdsd.analysis.seeds import (
    BETTER, DESCRIPTIVE, EQUIVALENT, MIN_SEEDS_FOR_TEST, WORSE, classify, holm, seed_test)
from kdsd.analysis.settings import AnalysisSettings
from kdsd.analysis.stats import CI_LEVEL, t_half_width

LEVEL, TREND = "level", "trend"
PRIMARY_COLUMNS = ["baseline", "test", "unit", "n_seeds", "estimate", "se", "dof", "sd_seed", "p", "p_holm",
                   "ci_level", "ci_low", "ci_high", "verdict", "mde", "target", "seeds_for_target",
                   "per_seed", "status"]
# claim categories (column `claim` of claim.csv), from the trend verdict and the lead at the
# most compressed scenario
SUPPORTED = "supported"
STILL_BEHIND = "gap narrows, cosine still behind"
TREND_ONLY = "gap narrows, lead not shown"
REVERSED = "reversed"
NO_TREND = "no trend (equivalent)"
NOT_TESTABLE = "not testable"


@dataclass
class CellGains:
    """One baseline's paired differences: d[c, t, s] (scenarios × test sets × seeds), the teacher
    gain per scenario × test set on the same utterances, and log2 compression per scenario."""

    diffs: np.ndarray
    teacher_gain: np.ndarray
    log2_compression: np.ndarray
    scenarios: list
    test_sets: list
    seeds: list


def cell_gains(runs: pd.DataFrame, method: str, baseline: str) -> CellGains | None:
    """From :func:`retained_runs`' table; None when either method has no runs."""
    rows = runs[runs["method"].isin([method, baseline])]
    if not {method, baseline} <= set(rows["method"]):
        return None
    wide = rows.set_index(["scenario", "test_set", "method", "seed"])["gain"].unstack(["method", "seed"])
    scenarios, test_sets = sorted(rows["scenario"].unique()), sorted(rows["test_set"].unique())
    cells = pd.MultiIndex.from_product([scenarios, test_sets], names=["scenario", "test_set"])
    diff = (wide[method] - wide[baseline]).reindex(cells)  # seeds on one side only: NaN
    seeds = sorted(diff.columns)
    teacher = rows.groupby(["scenario", "test_set"])["teacher_gain"].first().reindex(cells)
    compression = rows.groupby("scenario")["compression"].first().reindex(scenarios)
    shape = (len(scenarios), len(test_sets))
    return CellGains(diffs=diff[seeds].to_numpy(dtype=float).reshape(*shape, len(seeds)),
                     teacher_gain=teacher.to_numpy(dtype=float).reshape(shape),
                     log2_compression=np.log2(compression.to_numpy(dtype=float)),
                     scenarios=scenarios, test_sets=test_sets, seeds=seeds)


def level_per_seed(cells: CellGains) -> np.ndarray:
    """L_s: the mean over every scenario × test set; NaN for a seed missing any cell."""
    d = cells.diffs.reshape(-1, cells.diffs.shape[-1])
    return np.where(np.isfinite(d).all(axis=0), d.mean(axis=0) if d.size else np.nan, np.nan)


def retained_gap(cells: CellGains, min_teacher_gain_db: float) -> np.ndarray:
    """G[c, s]: the mean over eligible test sets of d / teacher gain (NaN if none is eligible)."""
    eligible = cells.teacher_gain >= min_teacher_gain_db
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = cells.diffs / cells.teacher_gain[..., None]
    ratio = np.where(eligible[..., None], ratio, 0.0)  # a NaN difference in an eligible cell stays NaN
    counts = eligible.sum(axis=1)[:, None]
    return ratio.sum(axis=1) / np.where(counts > 0, counts, np.nan)


def most_compressed(cells: CellGains) -> int | None:
    """Index of the most compressed scenario (None without compression figures, e.g. no teacher)."""
    x = cells.log2_compression
    return int(np.nanargmax(x)) if np.isfinite(x).any() else None


def lead_at_most_compressed(cells: CellGains) -> np.ndarray:
    """Per seed, the mean of d over test sets at the most compressed scenario."""
    index = most_compressed(cells)
    if index is None:
        return np.full(cells.diffs.shape[-1], np.nan)
    d = cells.diffs[index]
    return np.where(np.isfinite(d).all(axis=0), d.mean(axis=0), np.nan)


def _t_test(estimate: float, se: float, dof: float) -> float:
    if not (np.isfinite(se) and np.isfinite(dof)):
        return math.nan
    if se == 0:  # identical per-seed values: no spread, t is 0/0 or infinite
        return 1.0 if estimate == 0 else 0.0
    return float(2 * sps.t.sf(abs(estimate / se), dof))


def _result(estimate, sd_seed, n, dof_factor, per_seed, status="ok") -> dict:
    testable = n >= MIN_SEEDS_FOR_TEST and status == "ok"
    se = sd_seed / math.sqrt(n) if n >= 2 else math.nan
    dof = dof_factor * (n - 1) if n >= 2 else math.nan
    return {"estimate": estimate, "se": se, "dof": dof, "dof_factor": dof_factor, "sd_seed": sd_seed,
            "n_seeds": n, "p": _t_test(estimate, se, dof) if testable else math.nan,
            "per_seed": " ".join(f"{v:+.4f}" for v in per_seed), "status": status}


def level_test(per_seed: np.ndarray) -> dict:
    d = per_seed[np.isfinite(per_seed)]
    n = len(d)
    status = "ok" if n >= MIN_SEEDS_FOR_TEST else f"descriptive only: {n} complete seeds"
    return _result(float(d.mean()) if n else math.nan, float(d.std(ddof=1)) if n >= 2 else math.nan,
                   n, 1.0, d, status)


def _slope_weights(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean()
    return centred / (centred ** 2).sum()


def _trend_status(gap: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, str]:
    """Scenarios that take part (a finite gap for some seed), and why there is no test if so."""
    keep = np.isfinite(gap).sum(axis=1) >= 2
    if np.unique(np.round(x[keep], 6)).size < MIN_SCENARIOS:
        return keep, (f"not testable: needs ≥ {MIN_SCENARIOS} scenarios of different compression where "
                      f"the teacher gains enough; has {np.unique(np.round(x[keep], 6)).size}")
    return keep, "ok"


def trend_contrast(gap: np.ndarray, x: np.ndarray) -> dict:
    """Least-squares slope of scenario means on x; SE from per-scenario variances, Welch df."""
    keep, status = _trend_status(gap, x)
    if status != "ok":
        return _result(math.nan, math.nan, 0, 1.0, [], status)
    gap, x = gap[keep], x[keep]
    n_c = np.isfinite(gap).sum(axis=1)
    w = _slope_weights(x)
    means, variances = np.nanmean(gap, axis=1), np.nanvar(gap, axis=1, ddof=1)
    a = w ** 2 * variances / n_c  # each scenario's share of the contrast's variance
    se2 = a.sum()
    dof = se2 ** 2 / (a ** 2 / (n_c - 1)).sum() if se2 > 0 else math.inf
    n = int(n_c.min())  # the seed count every scenario has; the SE uses each scenario's own
    complete = np.isfinite(gap).all(axis=0)  # per-seed slopes, shown beside the contrast
    return _result(float(w @ means), math.sqrt(se2 * n), n, dof / (n - 1) if n >= 2 else 1.0,
                   w @ gap[:, complete], "ok" if n >= MIN_SEEDS_FOR_TEST else
                   f"descriptive only: {n} seeds per scenario")


def trend_per_seed(gap: np.ndarray, x: np.ndarray) -> dict:
    """The slope of each seed that has every scenario, t-tested over seeds (df = n − 1)."""
    keep, status = _trend_status(gap, x)
    if status != "ok":
        return _result(math.nan, math.nan, 0, 1.0, [], status)
    slopes = _slope_weights(x[keep]) @ gap[keep][:, np.isfinite(gap[keep]).all(axis=0)]
    return level_test(slopes)


TREND_TESTS = {"contrast": trend_contrast, "per_seed_slope": trend_per_seed}


def holm_levels(pvalues, alpha: float) -> np.ndarray:
    """The per-test level Holm used: α/(m − k + 1) at step k, and after the first step that
    fails, that step's level (NaN where p is NaN). Rejected ⇔ p ≤ its level."""
    p = np.asarray(pvalues, dtype=float)
    levels = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m, stopped = len(finite), None
    for rank, idx in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        level = alpha / (m - rank) if stopped is None else stopped
        if stopped is None and p[idx] > level:
            stopped = level
        levels[idx] = level
    return levels


def decide(tests: list[dict], alpha: float) -> list[dict]:
    """Holm over the family; each test's interval at its Holm level and its verdict category.

    A test needs ``margin`` (its equivalence margin, in its unit). Without a p-value (fewer than
    three seeds) the interval is the unadjusted 95 % one and the verdict "descriptive only"."""
    p = [t["p"] for t in tests]
    adjusted, levels = holm(p), holm_levels(p, alpha)
    out = []
    for test, p_holm, level in zip(tests, adjusted, levels):
        ci_level = 1 - level if np.isfinite(level) else CI_LEVEL
        half = t_half_width(test["sd_seed"], test["n_seeds"], ci_level, test["dof"]) if test["n_seeds"] >= 2 else math.nan
        low, high = test["estimate"] - half, test["estimate"] + half
        verdict = (classify(low, high, test["margin"]) if np.isfinite(level) else
                   NOT_TESTABLE if test["status"].startswith(NOT_TESTABLE) else DESCRIPTIVE)
        out.append({**test, "p_holm": p_holm, "ci_level": ci_level, "ci_low": low, "ci_high": high,
                    "verdict": verdict})
    return out


def primary_family(per_baseline: dict[str, CellGains], settings: AnalysisSettings,
                   with_power: bool = True) -> list[dict]:
    """The level and trend test of every baseline, decided together (Holm), with power figures
    (``with_power=False`` leaves them out, for simulations)."""
    primary = settings.primary
    tests = []
    for base, cells in per_baseline.items():
        gap = retained_gap(cells, settings.min_teacher_gain_db)
        eligible = cells.teacher_gain[cells.teacher_gain >= settings.min_teacher_gain_db]
        # the trend's target: the lead changing by target_effect_db over the study's compression
        # range, per doubling and as a fraction of the teacher's mean gain
        doublings = np.ptp(cells.log2_compression)
        trend_target = (primary.target_effect_db / doublings / eligible.mean()
                        if eligible.size and doublings > 0 else math.nan)
        tests.append({"baseline": base, "test": LEVEL, "unit": "dB", "margin": settings.equivalence_margin_db,
                      "target": primary.target_effect_db, **level_test(level_per_seed(cells))})
        tests.append({"baseline": base, "test": TREND, "unit": "fraction per doubling",
                      "margin": primary.trend_equivalence_margin, "target": trend_target,
                      **TREND_TESTS[primary.trend_test](gap, cells.log2_compression)})
    decided = decide(tests, primary.alpha)
    if not with_power:
        return decided
    m = max(1, sum(np.isfinite(t["p"]) for t in decided))
    for test in decided:  # power at α/m: the level of Holm's first step, which every test may face
        args = (primary.alpha / m, primary.power, test["dof_factor"])
        test["mde"] = minimum_detectable_effect(test["sd_seed"], test["n_seeds"], *args)
        test["seeds_for_target"] = seeds_needed(test["target"], test["sd_seed"], *args)
    return decided


def primary_table(runs: pd.DataFrame, settings: AnalysisSettings) -> pd.DataFrame:
    """The primary family as a table (PRIMARY_COLUMNS), one row per baseline × test."""
    per_baseline = {base: cells for base in settings.primary.baselines
                    if (cells := cell_gains(runs, settings.primary.method, base)) is not None}
    rows = primary_family(per_baseline, settings) if per_baseline else []
    return pd.DataFrame(rows, columns=PRIMARY_COLUMNS + ["margin", "dof_factor"])


def claim_table(runs: pd.DataFrame, primary: pd.DataFrame, settings: AnalysisSettings) -> pd.DataFrame:
    """Per baseline: the trend verdict, cosine's lead at the most compressed scenario (95 % t
    interval over seeds) and the claim category (see the module docstring)."""
    rows = []
    for _, trend in primary[primary["test"] == TREND].iterrows():
        cells = cell_gains(runs, settings.primary.method, trend["baseline"])
        lead = seed_test(lead_at_most_compressed(cells))
        index = most_compressed(cells)
        scenario = cells.scenarios[index] if index is not None else ""
        rows.append({"baseline": trend["baseline"], "trend_verdict": trend["verdict"],
                     "most_compressed": scenario, "lead_db": lead["mean_diff"], "lead_n_seeds": lead["n_seeds"],
                     "lead_ci95_low": lead["ci95_low"], "lead_ci95_high": lead["ci95_high"],
                     "claim": claim_category(trend["verdict"], lead["ci95_low"], lead["ci95_high"])})
    return pd.DataFrame(rows, columns=["baseline", "trend_verdict", "most_compressed", "lead_db", "lead_n_seeds",
                                       "lead_ci95_low", "lead_ci95_high", "claim"])


def claim_category(trend_verdict: str, lead_low: float, lead_high: float) -> str:
    if trend_verdict == BETTER:
        if lead_low > 0:
            return SUPPORTED
        return STILL_BEHIND if lead_high < 0 else TREND_ONLY
    return {WORSE: REVERSED, EQUIVALENT: NO_TREND}.get(trend_verdict, trend_verdict)
