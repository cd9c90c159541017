"""Method comparisons with the training seed as the unit of replication.

"Method A trains better students than method B" is a claim about training runs, so one seed is one
observation. Runs of the same seed share initial weights and data order across methods, so the
comparison is paired by seed: d_s = gain_A(s) − gain_B(s), each gain the mean over one utterance
set shared by every run of the comparison. Utterance-level tests would answer a different question
(these checkpoints on these utterances) and are never used for a verdict.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from kdsd.analysis.settings import AnalysisSettings
from kdsd.analysis.stats import BASELINES, CI_LEVEL, HEADLINE, METRICS, method_rank

ALPHA = 0.05
PROPOSED = "cosine"
MIN_SEEDS_FOR_TEST = 3  # below this the summary is descriptive only: no p-values
MIN_SEEDS_FOR_SIGNFLIP = 6  # 2 / 2**6 = 0.031: the exact sign-flip p can first reach < 0.05
HEADLINE_FAMILY = "headline"
EXPLORATORY = "exploratory"
UNITS = {"si_sdr": " dB"}
COMPARISON_COLUMNS = ["scenario", "test_set", "metric", "method", "baseline", "family", "n_seeds",
                      "mean_diff", "ci95_low", "ci95_high", "p_t", "p_signflip", "p_holm", "verdict",
                      "seeds", "unpaired_seeds", "diff_per_seed", "n_utts", "n_dropped_utts"]


def seed_test(diffs) -> dict:
    """Mean of per-seed differences, its 95 % t interval (df = n − 1), t-test p, exact sign-flip p.

    The interval needs 2 seeds, the t-test 3 and the sign-flip test 6; below that the value is NaN.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    out = {"n_seeds": n, "mean_diff": math.nan, "ci95_low": math.nan, "ci95_high": math.nan,
           "p_t": math.nan, "p_signflip": math.nan}
    if n == 0:
        return out
    out["mean_diff"] = float(d.mean())
    if n >= 2:
        half = sps.t.ppf(0.5 + CI_LEVEL / 2, n - 1) * d.std(ddof=1) / math.sqrt(n)
        out["ci95_low"], out["ci95_high"] = out["mean_diff"] - float(half), out["mean_diff"] + float(half)
    if n >= MIN_SEEDS_FOR_TEST:
        out["p_t"] = _t_pvalue(d)
    if n >= MIN_SEEDS_FOR_SIGNFLIP:
        out["p_signflip"] = float(sps.permutation_test(
            (d,), np.mean, permutation_type="samples", n_resamples=np.inf,
            alternative="two-sided").pvalue)
    return out


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


def verdict(test: dict, p: float, *, margin: float | None = None, unit: str = "") -> str:
    """Wording from the test and the interval: better / worse / equivalent / inconclusive."""
    n = test["n_seeds"]
    if n < MIN_SEEDS_FOR_TEST:
        return f"descriptive only: {n} paired seed{'s' if n != 1 else ''} (a test needs ≥ {MIN_SEEDS_FOR_TEST})"
    if p < ALPHA:  # the t-test is on the mean, so its direction is the mean's
        return "better" if test["mean_diff"] > 0 else "worse"
    low, high = test["ci95_low"], test["ci95_high"]
    if margin and -margin <= low and high <= margin:
        return f"equivalent within ±{margin:g}{unit}"
    return f"inconclusive: 95 % CI [{low:+.2f}, {high:+.2f}]{unit}"


def comparison_pairs(methods) -> list[tuple[str, str]]:
    """(method, baseline) for every student method against each baseline ranked before it."""
    methods = sorted(set(methods), key=lambda m: (method_rank(m), m))
    return [(m, base) for base in BASELINES if base in methods
            for m in methods if method_rank(m) > method_rank(base)]


def _paired_differences(a: pd.DataFrame, b: pd.DataFrame) -> dict:
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


def _comparison_row(scenario, test_set, metric, method, base, paired) -> dict:
    test = seed_test(paired["diffs"])
    family = HEADLINE_FAMILY if (method == PROPOSED and metric == HEADLINE) else EXPLORATORY
    return {
        "scenario": scenario, "test_set": test_set, "metric": metric, "method": method,
        "baseline": base, "family": family, **test,
        "seeds": " ".join(str(s) for s in paired["seeds"]),
        "unpaired_seeds": " ".join(str(s) for s in paired["unpaired"]),
        "diff_per_seed": " ".join(f"{d:+.3f}" for d in paired["diffs"]),
        "n_utts": paired["n_utts"], "n_dropped_utts": paired["n_dropped_utts"],
    }


def comparisons(scores: pd.DataFrame, settings: AnalysisSettings = AnalysisSettings(),
                metrics=METRICS) -> pd.DataFrame:
    """One row per scenario × test set × metric × (method, baseline) with the seed-level test.

    Columns: family (headline = cosine vs a baseline on the headline metric, Holm-corrected
    together; everything else exploratory, uncorrected), n_seeds, mean_diff, ci95_low/high, p_t,
    p_signflip (≥ 6 seeds), p_holm (headline only), verdict, the paired seeds, per-seed differences,
    unpaired seeds (a run missing on one side), n_utts and n_dropped_utts (NaN in any run).
    """
    students = scores[scores["kind"] == "student"]
    gains = [f"{m}_i" for m in metrics]
    rows = []
    for (scenario, test_set), group in students.groupby(["scenario", "test_set"], sort=True):
        wide = group.set_index(["utt_id", "method", "seed"])[gains].unstack(["method", "seed"])
        # unstack makes every method × seed column; keep only the runs that exist
        seeds_of = group.groupby("method")["seed"].unique().map(sorted)
        for method, base in comparison_pairs(seeds_of.index):
            for metric in metrics:
                block = wide[f"{metric}_i"]
                paired = _paired_differences(block[method][seeds_of[method]],
                                             block[base][seeds_of[base]])
                rows.append(_comparison_row(scenario, test_set, metric, method, base, paired))
    table = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS if c not in ("p_holm", "verdict")])
    table = table.sort_values(["test_set", "scenario"], kind="stable", ignore_index=True)
    return _add_verdicts(table, settings)[COMPARISON_COLUMNS]


def _add_verdicts(table: pd.DataFrame, settings: AnalysisSettings) -> pd.DataFrame:
    headline = table["family"] == HEADLINE_FAMILY
    table["p_holm"] = math.nan
    table.loc[headline, "p_holm"] = holm(table.loc[headline, "p_t"])
    table["verdict"] = [_row_verdict(row, settings) for _, row in table.iterrows()]
    return table


def _row_verdict(row: pd.Series, settings: AnalysisSettings) -> str:
    headline = row["family"] == HEADLINE_FAMILY
    text = verdict(row, row["p_holm"] if headline else row["p_t"],
                   margin=settings.equivalence_margin_db if row["metric"] == HEADLINE else None,
                   unit=UNITS.get(row["metric"], ""))
    return text if headline or text not in ("better", "worse") else f"{text} (exploratory, uncorrected)"


def missing_runs(scores: pd.DataFrame, expected) -> pd.DataFrame:
    """Expected (scenario, method, seed) runs without scores on a test set the report covers."""
    students = scores[scores["kind"] == "student"]
    present = set(zip(students["scenario"], students["method"], students["seed"], students["test_set"]))
    rows = [(c, m, s, t) for c, m, s in expected for t in sorted(scores["test_set"].unique())
            if (c, m, s, t) not in present]
    return pd.DataFrame(rows, columns=["scenario", "method", "seed", "test_set"])
