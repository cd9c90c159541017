"""Method comparisons with the training seed as the unit of replication.

"Method A trains better students than method B" is a claim about training runs, so one seed is one
observation. Runs of the same seed share initial weights and data order across methods, so the
comparison is paired by seed: d_s = gain_A(s) − gain_B(s), each gain the mean over one utterance
set shared by every run of the comparison. Utterance-level tests would answer a different question
(these checkpoints on these utterances) and are never used for a verdict.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

from kdsd.analysis.settings import AnalysisSettings
from kdsd.analysis.stats import (
    BASELINES, CI_LEVEL, HEADLINE, METRICS, method_rank, method_sort_key, t_half_width)

PROPOSED = "cosine"
MIN_SEEDS_FOR_TEST = 3  # below this the summary is descriptive only: no p-values
MIN_SEEDS_FOR_SIGNFLIP = 6  # 2 / 2**6 = 0.031: the exact sign-flip p can first reach < 0.05
MAX_ENUMERATED_SIGNS = 16  # 65,536 sign patterns in one matrix
EXPLORATORY = "exploratory"
# What an interval says, as a category: the primary tests word these as verdicts; exploratory
# rows only describe their unadjusted interval (READINGS), never as a verdict.
BETTER, WORSE, EQUIVALENT, NOT_RESOLVED, DESCRIPTIVE = (
    "better", "worse", "equivalent", "not resolved", "descriptive only")
READINGS = {BETTER: "above 0", WORSE: "below 0", EQUIVALENT: "inside ±margin",
            NOT_RESOLVED: "spans 0", DESCRIPTIVE: "descriptive only"}
COMPARISON_COLUMNS = ["scenario", "test_set", "metric", "method", "baseline", "family", "n_seeds",
                      "mean_diff", "sd_diff", "ci95_low", "ci95_high", "p_t", "p_signflip", "reading",
                      "seeds", "unpaired_seeds", "diff_per_seed", "n_utts", "n_dropped_utts"]


def seed_test(diffs) -> dict:
    """Mean of per-seed differences, their SD, 95 % t interval (df = n − 1), t-test p, sign-flip p.

    Only finite differences count (``n_seeds``). The interval needs 2 seeds, the t-test 3 and the
    exact sign-flip test 6; below that the value is NaN.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    out = {"n_seeds": n, "mean_diff": math.nan, "sd_diff": math.nan, "ci95_low": math.nan,
           "ci95_high": math.nan, "p_t": math.nan, "p_signflip": math.nan}
    if n == 0:
        return out
    out["mean_diff"] = float(d.mean())
    if n >= 2:
        out["sd_diff"] = float(d.std(ddof=1))
        half = t_half_width(out["sd_diff"], n, CI_LEVEL)
        out["ci95_low"], out["ci95_high"] = out["mean_diff"] - half, out["mean_diff"] + half
    if n >= MIN_SEEDS_FOR_TEST:
        out["p_t"] = _t_pvalue(d)
    if n >= MIN_SEEDS_FOR_SIGNFLIP:
        out["p_signflip"] = sign_flip_p(d)
    return out


def sign_flip_p(d) -> float:
    """Exact two-sided sign-flip p of the mean of ``d``: the share of the 2^n sign patterns whose
    |sum| reaches the observed one (no normality assumed). With n values it cannot go below
    :func:`sign_flip_floor` (n)."""
    d = np.asarray(d, dtype=float)
    if len(d) > MAX_ENUMERATED_SIGNS:  # scipy enumerates them too, in slices
        return float(sps.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                          alternative="two-sided").pvalue)
    signs = 1 - 2 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)
    sums = np.abs(signs @ d)
    observed = abs(d.sum())
    return float(np.mean(sums >= observed - 1e-9 * max(1.0, observed)))


def sign_flip_floor(n: int) -> float:
    """The smallest exact two-sided sign-flip p that n values can give: 2 / 2^n."""
    return 2.0 / 2 ** n if n >= 1 else math.nan


def _t_pvalue(d: np.ndarray) -> float:
    if np.ptp(d) == 0:  # identical differences: t is 0/0 (no difference) or infinite
        return 1.0 if d[0] == 0 else 0.0
    return float(sps.ttest_1samp(d, 0.0).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order; NaN entries are not in the family."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    running = 0.0
    for rank, idx in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (len(finite) - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted


def classify(low: float, high: float, margin: float | None = None) -> str:
    """The category an interval supports; equivalence is checked first, so a small difference
    whose whole interval lies inside ±margin is "equivalent" even when it also excludes 0."""
    if pd.isna(low) or pd.isna(high):
        return DESCRIPTIVE
    if margin and -margin <= low and high <= margin:
        return EQUIVALENT
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return NOT_RESOLVED


def interval_reading(test: dict, margin: float | None = None) -> str:
    """An exploratory row's description of its unadjusted interval (no test decides it)."""
    if test["n_seeds"] < MIN_SEEDS_FOR_TEST:
        return READINGS[DESCRIPTIVE]
    reading = READINGS[classify(test["ci95_low"], test["ci95_high"], margin)]
    return reading.replace("margin", f"{margin:g}") if margin else reading


def comparison_pairs(methods, controls: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(method, baseline) for every student method against each baseline ranked before it, and
    (method, its budget control) for each control in ``controls`` ({control: method}) that ran."""
    controls = controls or {}
    methods = sorted(set(methods), key=lambda m: method_sort_key(m, controls))
    rank = {m: method_rank(controls.get(m, m)) for m in methods}
    pairs = [(m, base) for base in BASELINES if base in methods for m in methods if rank[m] > rank[base]]
    return pairs + [(of, control) for control, of in controls.items() if {control, of} <= set(methods)]


def paired_differences(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Per-seed mean differences over the utterances finite in every run of both methods.

    ``a``, ``b``: utterances × seeds (one column per run) of one metric's improvement.
    """
    a, b = a.loc[:, a.notna().any()], b.loc[:, b.notna().any()]  # runs not scored on the metric
    seeds = sorted(set(a.columns) & set(b.columns))
    unpaired = sorted(set(a.columns) ^ set(b.columns))
    x, y = a[seeds].to_numpy(dtype=float), b[seeds].to_numpy(dtype=float)
    keep = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1) if seeds else np.zeros(len(a), bool)
    diffs = (x[keep] - y[keep]).mean(axis=0) if keep.any() else np.array([])
    return {"seeds": seeds if keep.any() else [], "diffs": diffs, "unpaired": unpaired,
            "n_utts": int(keep.sum()), "n_dropped_utts": int((~keep).sum())}


def _comparison_row(scenario, test_set, metric, method, base, paired, margin) -> dict:
    test = seed_test(paired["diffs"])
    return {
        "scenario": scenario, "test_set": test_set, "metric": metric, "method": method,
        "baseline": base, "family": EXPLORATORY, **test,
        "reading": interval_reading(test, margin if metric == HEADLINE else None),
        "seeds": " ".join(str(s) for s in paired["seeds"]),
        "unpaired_seeds": " ".join(str(s) for s in paired["unpaired"]),
        "diff_per_seed": " ".join(f"{d:+.3f}" for d in paired["diffs"]),
        "n_utts": paired["n_utts"], "n_dropped_utts": paired["n_dropped_utts"],
    }


def comparisons(scores: pd.DataFrame, settings: AnalysisSettings = AnalysisSettings(),
                metrics=METRICS) -> pd.DataFrame:
    """One row per scenario × test set × metric × (method, baseline) with the seed-level test.

    Every row is exploratory (the headline is the primary family, :mod:`kdsd.analysis.primary`):
    n_seeds (finite paired seeds), mean_diff, sd_diff, the unadjusted 95 % interval, p_t,
    p_signflip (≥ 6 seeds), ``reading`` (what the unadjusted interval shows, not a verdict), the
    paired seeds, per-seed differences, unpaired seeds (a run missing on one side), n_utts and
    n_dropped_utts (NaN in any run).
    """
    students = scores[scores["kind"] == "student"]
    gains = [f"{m}_i" for m in metrics]
    rows = []
    for (scenario, test_set), group in students.groupby(["scenario", "test_set"], sort=True):
        wide = group.set_index(["utt_id", "method", "seed"])[gains].unstack(["method", "seed"])
        # unstack makes every method × seed column; keep only the runs that exist
        seeds_of = group.groupby("method")["seed"].unique().map(sorted)
        for method, base in comparison_pairs(seeds_of.index, dict(settings.budget_controls)):
            for metric in metrics:
                block = wide[f"{metric}_i"]
                paired = paired_differences(block[method][seeds_of[method]], block[base][seeds_of[base]])
                rows.append(_comparison_row(scenario, test_set, metric, method, base, paired,
                                            settings.equivalence_margin_db))
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    return table.sort_values(["test_set", "scenario"], kind="stable", ignore_index=True)


def missing_runs(scores: pd.DataFrame, expected) -> pd.DataFrame:
    """Expected (scenario, method, seed) runs without scores on a test set the report covers."""
    students = scores[scores["kind"] == "student"]
    present = set(zip(students["scenario"], students["method"], students["seed"], students["test_set"]))
    rows = [(c, m, s, t) for c, m, s in expected for t in sorted(scores["test_set"].unique())
            if (c, m, s, t) not in present]
    return pd.DataFrame(rows, columns=["scenario", "method", "seed", "test_set"])
