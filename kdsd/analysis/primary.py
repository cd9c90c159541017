"""The pre-registered primary family (config `analysis.primary`): four tests decide the headline.

Per baseline b (default `none` and `sp2step`), with the training seed as the unit and
d[c, t, s] = gain(cosine) − gain(b) in scenario c, test set t, seed s, each gain the mean ΔSI-SDR
over the one utterance set of c × t that every run shares (:func:`kdsd.analysis.claim.retained_runs`).
The test sets of `analysis.transfer_test_sets` (recorded speech) are not in it: they answer the
transfer question, a family of its own (:func:`transfer_table`).

- **level**: per seed, L_s = mean of d over every scenario × test set; a one-sample t-test over the
  seeds that have every cell (df = n − 1).
- **trend** (the paper's claim): the retained gap G[c, s] = mean of d / the seed's teacher gain over
  the test sets where the teacher gains ≥ `min_teacher_gain_db`, regressed on log2 compression.
  Default `contrast`: the least-squares slope of the scenario means, Σ w_c·mean_s G[c, s], with its
  standard error from each scenario's own seed variance and Welch–Satterthwaite df. The per-seed
  slopes (`per_seed_slope`) estimate the same slope, but their t-test has n − 1 df where the
  contrast has up to C·(n − 1): in simulation (`kdsd power --trend`) the contrast has more power at
  3–8 seeds at the same error rate. A seed effect shared by every scenario cancels in a contrast
  (Σ w_c = 0), so treating scenarios as independent errs on the conservative side. Its target and
  equivalence margin, set in dB over the study's compression range, are converted to a fraction
  per doubling with the harmonic mean of the teacher's gain: G averages ratios d / g.

Two pre-registered procedures per test:
- **difference** (better / worse): Holm over the finite p-values of the family. Each test's
  *decision interval* is taken at the level Holm tested it at (α/(m − k + 1) at step k; after
  Holm stops, the level of the step where it stopped), so "better" or "worse" ⇔ that interval
  excludes 0 ⇔ the Holm-adjusted p < α.
- **equivalence**: a TOST at α/m (Bonferroni over the family's m tests; 97.5 % interval for
  α = 0.05 and four tests): "equivalent" ⇔ that interval lies inside ±margin ⇔ ``p_tost`` < α/m.
  It is read first: a small difference sure to lie inside the margin is "equivalent".
Beside each t-test p: the exact sign-flip p of the per-seed values (no normality assumed), which
with n seeds cannot go below 2/2^n.

The claim against b is "supported" only when its trend is "better" **and** cosine leads at the
most compressed scenario (mean of d over test sets there, t interval over seeds above 0, at
α/number of baselines, since the headline speaks of every baseline at once): an
intersection–union test, so the second condition needs no further correction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from kdsd.analysis.claim import MIN_SCENARIOS
from kdsd.analysis.power import minimum_detectable_effect, sd_interval, seeds_needed
from kdsd.analysis.seeds import (
    BETTER, DESCRIPTIVE, EQUIVALENT, MIN_SEEDS_FOR_TEST, WORSE, classify, holm, interval_reading, seed_test,
    sign_flip_floor, sign_flip_p)
from kdsd.analysis.settings import AnalysisSettings, PrimarySettings
from kdsd.analysis.stats import CI_LEVEL, t_half_width

LEVEL, TREND = "level", "trend"
PRIMARY_COLUMNS = ["baseline", "test", "unit", "test_sets", "n_seeds", "estimate", "se", "dof", "sd_seed", "p",
                   "p_signflip", "p_signflip_floor", "p_holm", "decision_level", "decision_low", "decision_high",
                   "tost_level", "tost_low", "tost_high", "p_tost", "margin", "verdict", "mde", "target",
                   "seeds_for_target", "sd_seed_ci80_low", "sd_seed_ci80_high", "seeds_for_target_low",
                   "seeds_for_target_high", "gain_correlation", "sd_seed_method", "sd_seed_baseline",
                   "per_seed", "status", "dof_factor"]
# claim categories (column `claim` of claim.csv), from the trend verdict and the lead at the
# most compressed scenario
SUPPORTED = "supported"
STILL_BEHIND = "gap narrows, cosine still behind"
TREND_ONLY = "gap narrows, lead not shown"
REVERSED = "reversed"
WITHIN_MARGIN = "trend within the margin"
NOT_TESTABLE = "not testable"
CLAIM_COLUMNS = ["baseline", "trend_verdict", "trend_margin", "most_compressed", "lead_db", "lead_n_seeds",
                 "lead_level", "lead_low", "lead_high", "claim"]


@dataclass
class CellGains:
    """One baseline's paired differences: d[c, t, s] (scenarios × test sets × seeds), the teacher
    gain per scenario × test set on the same utterances (the mean over its teachers), and log2
    compression per scenario. ``seed_teacher_gain`` (c, t, s): each seed's own teacher's gain
    (None: ``teacher_gain`` for every seed); ``method_gains`` and ``baseline_gains`` (c, t, s): the
    two sides of d (None where only differences are known, as in simulations)."""

    diffs: np.ndarray
    teacher_gain: np.ndarray
    log2_compression: np.ndarray
    scenarios: list
    test_sets: list
    seeds: list
    seed_teacher_gain: np.ndarray | None = None
    method_gains: np.ndarray | None = None
    baseline_gains: np.ndarray | None = None

    def own_teacher_gain(self) -> np.ndarray:
        if self.seed_teacher_gain is not None:
            return self.seed_teacher_gain
        return np.broadcast_to(self.teacher_gain[..., None], self.diffs.shape)


def split_runs(runs: pd.DataFrame, settings: AnalysisSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the primary family's runs, the transfer family's runs): by `analysis.transfer_test_sets`."""
    transfer = runs["test_set"].isin(settings.transfer_test_sets)
    return runs[~transfer], runs[transfer]


def cell_gains(runs: pd.DataFrame, method: str, baseline: str) -> CellGains | None:
    """From :func:`retained_runs`' table; None when either method has no runs."""
    rows = runs[runs["method"].isin([method, baseline])]
    if not {method, baseline} <= set(rows["method"]):
        return None
    keys = ["scenario", "test_set", "method", "seed"]
    wide = rows.set_index(keys)[["gain", "teacher_gain"]].unstack(["method", "seed"])
    scenarios, test_sets = sorted(rows["scenario"].unique()), sorted(rows["test_set"].unique())
    cells = pd.MultiIndex.from_product([scenarios, test_sets], names=["scenario", "test_set"])
    gains = wide["gain"]
    diff = (gains[method] - gains[baseline]).reindex(cells)  # seeds on one side only: NaN
    seeds = sorted(diff.columns)
    shape = (len(scenarios), len(test_sets))

    def grid(frame: pd.DataFrame) -> np.ndarray:
        return frame.reindex(index=cells, columns=seeds).to_numpy(dtype=float).reshape(*shape, len(seeds))

    teacher = rows.groupby(["scenario", "test_set"])["cell_teacher_gain"].first().reindex(cells)
    compression = rows.groupby("scenario")["compression"].first().reindex(scenarios)
    # both students of a seed distil from the same teacher: the method's runs say which
    return CellGains(diffs=grid(diff), teacher_gain=teacher.to_numpy(dtype=float).reshape(shape),
                     log2_compression=np.log2(compression.to_numpy(dtype=float)),
                     scenarios=scenarios, test_sets=test_sets, seeds=seeds,
                     seed_teacher_gain=grid(wide["teacher_gain"][method]),
                     method_gains=grid(gains[method]), baseline_gains=grid(gains[baseline]))


def _complete_seeds(values: np.ndarray) -> np.ndarray:
    """Per seed, whether every scenario × test set has a value."""
    return np.isfinite(values.reshape(-1, values.shape[-1])).all(axis=0)


def level_per_seed(cells: CellGains, values: np.ndarray | None = None) -> np.ndarray:
    """L_s: the mean over every scenario × test set (of ``values``, default the differences);
    NaN for a seed missing any cell of the differences."""
    values = cells.diffs if values is None else values
    flat = values.reshape(-1, values.shape[-1])
    return np.where(_complete_seeds(cells.diffs), flat.mean(axis=0) if flat.size else np.nan, np.nan)


def pairing_figures(cells: CellGains) -> dict:
    """Over the seeds with every cell: the correlation of the two methods' level gains and each
    one's seed SD. Their difference's SD is √(s_m² + s_b² − 2 r s_m s_b): the higher r, the
    sharper the paired test (common random numbers)."""
    out = {"gain_correlation": math.nan, "sd_seed_method": math.nan, "sd_seed_baseline": math.nan}
    if cells.method_gains is None:
        return out
    complete = np.isfinite(level_per_seed(cells))
    a, b = (level_per_seed(cells, v)[complete] for v in (cells.method_gains, cells.baseline_gains))
    if len(a) >= 2:
        out["sd_seed_method"], out["sd_seed_baseline"] = float(a.std(ddof=1)), float(b.std(ddof=1))
    if len(a) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0:
        out["gain_correlation"] = float(np.corrcoef(a, b)[0, 1])
    return out


def retained_gap(cells: CellGains, min_teacher_gain_db: float) -> np.ndarray:
    """G[c, s]: the mean over eligible test sets of d / the seed's teacher gain (NaN if none is
    eligible). A cell is eligible where its teacher gain (over its teachers) ≥ the threshold."""
    eligible = cells.teacher_gain >= min_teacher_gain_db
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = cells.diffs / cells.own_teacher_gain()
    ratio = np.where(eligible[..., None], ratio, 0.0)  # a NaN difference in an eligible cell stays NaN
    counts = eligible.sum(axis=1)[:, None]
    return ratio.sum(axis=1) / np.where(counts > 0, counts, np.nan)


def trend_scale(cells: CellGains, min_teacher_gain_db: float) -> float:
    """dB of lead change over the study's compression range → retained fraction per doubling:
    1 / (doublings · harmonic mean of the teacher gains the gap divides by). The gap is a mean
    of ratios d / g, so a constant d moves it by d · mean(1 / g), not d / mean(g)."""
    eligible = cells.teacher_gain >= min_teacher_gain_db
    gains = cells.own_teacher_gain()[eligible]
    gains = gains[np.isfinite(gains)]
    doublings = np.ptp(cells.log2_compression) if np.isfinite(cells.log2_compression).all() else math.nan
    if not gains.size or not doublings > 0:
        return math.nan
    return float(np.mean(1.0 / gains) / doublings)


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
    per_seed = np.asarray(per_seed, dtype=float)
    exact = testable and len(per_seed) >= MIN_SEEDS_FOR_TEST
    return {"estimate": estimate, "se": se, "dof": dof, "dof_factor": dof_factor, "sd_seed": sd_seed,
            "n_seeds": n, "p": _t_test(estimate, se, dof) if testable else math.nan,
            "p_signflip": sign_flip_p(per_seed) if exact else math.nan,
            "p_signflip_floor": sign_flip_floor(len(per_seed)) if exact else math.nan,
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


def _interval(test: dict, level: float) -> tuple[float, float]:
    """The test's two-sided t interval at ``level`` (its own SE and df)."""
    if test["n_seeds"] < 2:
        return math.nan, math.nan
    half = t_half_width(test["sd_seed"], test["n_seeds"], level, test["dof"])
    return test["estimate"] - half, test["estimate"] + half


def tost_p(test: dict, margin: float) -> float:
    """The TOST p: the larger of the two one-sided t-test p-values against −margin and +margin."""
    estimate, se, dof = test["estimate"], test["se"], test["dof"]
    if not (margin > 0 and np.isfinite(se) and np.isfinite(dof)):
        return math.nan
    if se == 0:
        return 0.0 if abs(estimate) < margin else 1.0
    return float(max(sps.t.sf((estimate + margin) / se, dof), sps.t.cdf((estimate - margin) / se, dof)))


def decide(tests: list[dict], alpha: float) -> list[dict]:
    """The family's two procedures: Holm (decision intervals at each test's Holm level: better /
    worse / not resolved) and a TOST per test at α/m (equivalent, read first).

    A test needs ``margin`` (its equivalence margin, in its unit; 0: no equivalence test). Without
    a p-value (fewer than three seeds) the decision interval is the unadjusted 95 % one and the
    verdict "descriptive only"."""
    p = [t["p"] for t in tests]
    adjusted, levels = holm(p), holm_levels(p, alpha)
    tost_level = 1 - 2 * alpha / max(1, len(tests))  # Bonferroni over the family's equivalence tests
    out = []
    for test, p_holm, level in zip(tests, adjusted, levels):
        testable = bool(np.isfinite(level))
        decision_level = 1 - level if testable else CI_LEVEL
        low, high = _interval(test, decision_level)
        tost_low, tost_high = _interval(test, tost_level) if testable else (math.nan, math.nan)
        p_tost = tost_p(test, test["margin"]) if testable else math.nan
        if not testable:
            verdict = NOT_TESTABLE if test["status"].startswith(NOT_TESTABLE) else DESCRIPTIVE
        elif p_tost < alpha / max(1, len(tests)):  # ⇔ the TOST interval lies inside ±margin
            verdict = EQUIVALENT
        else:
            verdict = classify(low, high)
        out.append({**test, "p_holm": p_holm, "decision_level": decision_level, "decision_low": low,
                    "decision_high": high, "tost_level": tost_level if testable else math.nan,
                    "tost_low": tost_low, "tost_high": tost_high, "p_tost": p_tost, "verdict": verdict})
    return out


def _level_entry(base: str, cells: CellGains, settings: AnalysisSettings) -> dict:
    return {"baseline": base, "test": LEVEL, "unit": "dB", "test_sets": " ".join(cells.test_sets),
            "margin": settings.equivalence_margin_db, "target": settings.primary.target_effect_db,
            **pairing_figures(cells), **level_test(level_per_seed(cells))}


def _trend_entry(base: str, cells: CellGains, settings: AnalysisSettings) -> dict:
    primary = settings.primary
    gap = retained_gap(cells, settings.min_teacher_gain_db)
    # target and margin: the lead changing by so many dB over the study's compression range
    scale = trend_scale(cells, settings.min_teacher_gain_db)
    return {"baseline": base, "test": TREND, "unit": "fraction per doubling", "test_sets": " ".join(cells.test_sets),
            "margin": primary.trend_equivalence_margin_db * scale if np.isfinite(scale) else 0.0,
            "target": primary.target_effect_db * scale,
            **TREND_TESTS[primary.trend_test](gap, cells.log2_compression)}


def with_power(decided: list[dict], primary: PrimarySettings) -> list[dict]:
    """Each test's MDE and the seeds its target needs at α/m (the level of Holm's first step,
    which every test may face), the latter as a point and as a range over the seed SD's 80 %
    interval (an SD from a few seeds is rough)."""
    m = max(1, sum(np.isfinite(t["p"]) for t in decided))
    for test in decided:
        args = (primary.alpha / m, primary.power, test["dof_factor"])
        sd, target = test["sd_seed"], test["target"]
        test["mde"] = minimum_detectable_effect(sd, test["n_seeds"], *args)
        test["seeds_for_target"] = seeds_needed(target, sd, *args)
        low, high = sd_interval(sd, test["dof"])
        test["sd_seed_ci80_low"], test["sd_seed_ci80_high"] = low, high
        test["seeds_for_target_low"] = seeds_needed(target, low, *args)
        test["seeds_for_target_high"] = seeds_needed(target, high, *args)
    return decided


def primary_family(per_baseline: dict[str, CellGains], settings: AnalysisSettings,
                   with_power_figures: bool = True) -> list[dict]:
    """The level and trend test of every baseline, decided together (Holm and TOST), with power
    figures (``with_power_figures=False`` leaves them out, for simulations)."""
    tests = [entry(base, cells, settings) for base, cells in per_baseline.items()
             for entry in (_level_entry, _trend_entry)]
    decided = decide(tests, settings.primary.alpha)
    return with_power(decided, settings.primary) if with_power_figures else decided


def _per_baseline(runs: pd.DataFrame, settings: AnalysisSettings) -> dict[str, CellGains]:
    return {base: cells for base in settings.primary.baselines
            if (cells := cell_gains(runs, settings.primary.method, base)) is not None}


def _table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=PRIMARY_COLUMNS)


def primary_table(runs: pd.DataFrame, settings: AnalysisSettings) -> pd.DataFrame:
    """The primary family as a table (PRIMARY_COLUMNS), one row per baseline × test, on every test
    set but the transfer ones."""
    per_baseline = _per_baseline(split_runs(runs, settings)[0], settings)
    return _table(primary_family(per_baseline, settings) if per_baseline else [])


def transfer_table(runs: pd.DataFrame, settings: AnalysisSettings) -> pd.DataFrame:
    """The transfer family (`analysis.transfer_test_sets`, pre-registered beside the primary one):
    per baseline the level test on those test sets alone, Holm and TOST over its own tests."""
    per_baseline = _per_baseline(split_runs(runs, settings)[1], settings)
    tests = [_level_entry(base, cells, settings) for base, cells in per_baseline.items()]
    return _table(with_power(decide(tests, settings.primary.alpha), settings.primary) if tests else [])


def lead_level(primary: PrimarySettings) -> float:
    """The lead's interval level: α split over the baselines the headline speaks of."""
    return 1 - primary.alpha / max(1, len(primary.baselines))


def claim_table(runs: pd.DataFrame, primary: pd.DataFrame, settings: AnalysisSettings) -> pd.DataFrame:
    """Per baseline: the trend verdict, cosine's lead at the most compressed scenario (t interval
    over seeds at :func:`lead_level`) and the claim category (see the module docstring)."""
    runs, level = split_runs(runs, settings)[0], lead_level(settings.primary)
    rows = []
    for _, trend in primary[primary["test"] == TREND].iterrows():
        cells = cell_gains(runs, settings.primary.method, trend["baseline"])
        lead = lead_at_most_compressed(cells)
        lead = lead[np.isfinite(lead)]
        test = {"estimate": float(lead.mean()) if len(lead) else math.nan, "n_seeds": len(lead), "dof": None,
                "sd_seed": float(lead.std(ddof=1)) if len(lead) >= 2 else math.nan}
        low, high = _interval(test, level)
        index = most_compressed(cells)
        rows.append({"baseline": trend["baseline"], "trend_verdict": trend["verdict"], "trend_margin": trend["margin"],
                     "most_compressed": cells.scenarios[index] if index is not None else "",
                     "lead_db": test["estimate"], "lead_n_seeds": len(lead), "lead_level": level,
                     "lead_low": low, "lead_high": high, "claim": claim_category(trend["verdict"], low, high)})
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def claim_category(trend_verdict: str, lead_low: float, lead_high: float) -> str:
    if trend_verdict == BETTER:
        if lead_low > 0:
            return SUPPORTED
        return STILL_BEHIND if lead_high < 0 else TREND_ONLY
    return {WORSE: REVERSED, EQUIVALENT: WITHIN_MARGIN}.get(trend_verdict, trend_verdict)


BUDGET_CONTROL_COLUMNS = ["method", "control", "scenarios", "test_sets", "n_seeds", "mean_diff", "sd_diff",
                          "ci95_low", "ci95_high", "reading"]


def budget_control_table(runs: pd.DataFrame, settings: AnalysisSettings) -> pd.DataFrame:
    """Exploratory, per budget control c of a method X (`kd.<c>.train.epochs_of: X`): X − c, per
    seed the level over every scenario × test set of the primary family where the control ran
    (students.method_scenarios may run it in some scenarios only), with its unadjusted 95 %
    interval and what it shows. Not in any family: it decides nothing."""
    runs = split_runs(runs, settings)[0]
    rows = []
    for control, method in settings.budget_controls:
        where = runs[runs["scenario"].isin(runs.loc[runs["method"] == control, "scenario"].unique())]
        cells = cell_gains(where, method, control)
        test = seed_test(level_per_seed(cells) if cells is not None else [])
        rows.append({"method": method, "control": control, "scenarios": " ".join(cells.scenarios) if cells else "",
                     "test_sets": " ".join(cells.test_sets) if cells else "",
                     **{k: test[k] for k in ("n_seeds", "mean_diff", "sd_diff", "ci95_low", "ci95_high")},
                     "reading": interval_reading(test)})
    return pd.DataFrame(rows, columns=BUDGET_CONTROL_COLUMNS)
