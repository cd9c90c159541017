"""The paper's claim: cosine students keep more of the teacher's improvement as mismatch grows.

Per run: retained fraction = student gain / teacher gain on the headline metric, both over one
utterance set per scenario × test set (finite for the teacher and every student run), and only
where the teacher gains at least ``min_teacher_gain_db`` (a ratio to a near-zero gain explodes or
flips sign). Scenarios are placed on a compression axis (teacher params / student params).

The claim is decided by the primary family (:mod:`kdsd.analysis.primary`: the trend over all test
sets together). Here, per test set and exploratory: the per-seed least-squares slopes of the
(cosine − baseline) retained gap against log2 compression, their mean and unadjusted 95 % t interval.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kdsd.analysis.seeds import MIN_SEEDS_FOR_TEST, PROPOSED, interval_reading, seed_test
from kdsd.analysis.settings import AnalysisSettings
from kdsd.analysis.stats import BASELINES, HEADLINE

GAIN = f"{HEADLINE}_i"
MIN_SCENARIOS = 3  # a slope through two points has no residual: the claim needs a trend
RUN_COLUMNS = ["test_set", "scenario", "method", "seed", "compression", "teacher_gain", "cell_teacher_gain",
               "gain", "retained", "n_utts", "n_dropped_utts"]


def _teacher_params(scores: pd.DataFrame) -> float:
    params = scores.loc[scores["kind"] == "teacher", "params"]
    return float(params.median()) if len(params) else math.nan


def retained_runs(scores: pd.DataFrame, settings: AnalysisSettings = AnalysisSettings()) -> pd.DataFrame:
    """One row per student run: compression, teacher gain, student gain, retained fraction.

    With several teacher seeds in the scores (``teacher.per_seed``) student seed k distilled from
    teacher seed k, so its ``teacher_gain`` is teacher k's; with one teacher, that teacher's for
    every seed. ``cell_teacher_gain``: the mean over the cell's teachers. ``retained`` = gain /
    the run's own teacher gain, NaN where the cell's teacher gains < ``settings.min_teacher_gain_db``
    on that test set (or where nothing was scorable).
    """
    teacher_params = _teacher_params(scores)
    teachers = scores[scores["kind"] == "teacher"].groupby(["test_set", "utt_id", "seed"])[GAIN].mean().unstack("seed")
    teacher_of = teacher_seed_matcher(teachers.columns)
    students = scores[scores["kind"] == "student"]
    frames = []
    for (test_set, scenario), group in students.groupby(["test_set", "scenario"], sort=True):
        wide = group.set_index(["utt_id", "method", "seed"])[GAIN].unstack(["method", "seed"])
        runs = list(dict.fromkeys(zip(group["method"], group["seed"])))
        wide = wide[runs]
        own = [teacher_of(seed) for _, seed in runs]
        used = [t for t in dict.fromkeys(own) if t is not None]
        teacher = (teachers.loc[test_set] if test_set in teachers.index.get_level_values(0)
                   else pd.DataFrame(columns=teachers.columns)).reindex(index=wide.index, columns=used)
        scored = wide.loc[:, wide.notna().any()]  # a run with no finite score drops out, not the cell
        # the teachers' utterances too; a teacher with no score at all drops out like a run
        keep = scored.notna().all(axis=1) & teacher.loc[:, teacher.notna().any()].notna().all(axis=1)
        teacher_gain = teacher.loc[keep].mean(axis=0) if keep.any() else pd.Series(math.nan, index=used)
        cell_gain = float(teacher_gain.mean()) if teacher_gain.notna().any() else math.nan
        frame = pd.DataFrame({"method": [m for m, _ in runs], "seed": [s for _, s in runs],
                              "gain": wide.loc[keep].mean(axis=0).to_numpy() if keep.any() else math.nan,
                              "teacher_gain": [teacher_gain.get(t, math.nan) for t in own]})
        frame["test_set"], frame["scenario"] = test_set, scenario
        frame["compression"] = teacher_params / float(group["params"].median())
        frame["cell_teacher_gain"] = cell_gain
        eligible = cell_gain >= settings.min_teacher_gain_db
        frame["retained"] = frame["gain"] / frame["teacher_gain"] if eligible else math.nan
        frame["n_utts"], frame["n_dropped_utts"] = int(keep.sum()), int((~keep).sum())
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=RUN_COLUMNS)
    return pd.concat(frames, ignore_index=True)[RUN_COLUMNS]


def teacher_seed_matcher(teacher_seeds):
    """student seed → the seed of the teacher it distilled from: its own (k → k) when there are
    several teacher seeds, else the one teacher (None without teacher scores)."""
    seeds = sorted(teacher_seeds)
    if len(seeds) > 1:
        return lambda seed: seed if seed in seeds else None
    return lambda seed: seeds[0] if seeds else None


def retained_table(runs: pd.DataFrame, settings: AnalysisSettings = AnalysisSettings()) -> pd.DataFrame:
    """Per test set × scenario × method: retained fraction mean with its 95 % t interval over seeds,
    the teacher gain and headroom (teacher gain − mean gain of the `none` students), and a status
    ("ok" or why there is no number)."""
    rows = []
    for (test_set, scenario, method), group in runs.groupby(["test_set", "scenario", "method"], sort=True):
        test = seed_test(group["retained"])
        teacher_gain = group["cell_teacher_gain"].iloc[0]
        rows.append({"test_set": test_set, "scenario": scenario, "method": method,
                     "compression": group["compression"].iloc[0], "teacher_gain": teacher_gain,
                     "gain_mean": group["gain"].mean(), "n_seeds": int(group["gain"].notna().sum()),
                     "retained_mean": test["mean_diff"], "retained_ci95_low": test["ci95_low"],
                     "retained_ci95_high": test["ci95_high"],
                     "status": retained_status(teacher_gain, settings),
                     "n_utts": group["n_utts"].iloc[0], "n_dropped_utts": group["n_dropped_utts"].iloc[0]})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    none_gain = table[table["method"] == "none"].set_index(["test_set", "scenario"])["gain_mean"]
    key = pd.MultiIndex.from_frame(table[["test_set", "scenario"]])
    table["headroom"] = table["teacher_gain"].to_numpy() - none_gain.reindex(key).to_numpy()
    return table


def retained_status(teacher_gain: float, settings: AnalysisSettings) -> str:
    """"ok", or why the retained fraction is not given."""
    if pd.isna(teacher_gain):
        return "n/a: no teacher scores"
    if teacher_gain < settings.min_teacher_gain_db:
        return f"n/a: teacher gain < {settings.min_teacher_gain_db:g} dB"
    return "ok"


def _seed_slopes(gaps: pd.DataFrame, log_compression: pd.Series) -> np.ndarray:
    """Least-squares slope of each seed's gap (rows: scenarios, columns: seeds) on log compression.

    Only seeds with every scenario present take part."""
    complete = gaps.dropna(axis=1)
    x = log_compression.reindex(complete.index).to_numpy()
    return np.array([np.polyfit(x, complete[s].to_numpy(), 1)[0] for s in complete.columns])


def _slope_row(runs: pd.DataFrame, test_set: str, base: str, settings: AnalysisSettings) -> dict:
    row = {"test_set": test_set, "method": PROPOSED, "baseline": base}
    eligible = runs[(runs["test_set"] == test_set) & runs["retained"].notna()]
    retained = eligible.pivot_table(index="scenario", columns=["method", "seed"], values="retained")
    compression = eligible.groupby("scenario")["compression"].first()
    if PROPOSED in retained.columns.get_level_values(0) and base in retained.columns.get_level_values(0):
        gaps = (retained[PROPOSED] - retained[base]).dropna(axis=0, how="all")
    else:
        gaps = pd.DataFrame()
    n_scen = int(np.log2(compression.reindex(gaps.index)).round(6).nunique()) if len(gaps) else 0
    row["scenarios"] = " ".join(gaps.index)
    row["n_scenarios"] = n_scen
    if n_scen < MIN_SCENARIOS:
        return {**row, **seed_test([]), "slope_per_seed": "", "status": _untestable(runs, test_set, n_scen, settings)}
    slopes = _seed_slopes(gaps, np.log2(compression))
    test = seed_test(slopes)
    status = "ok" if test["n_seeds"] >= MIN_SEEDS_FOR_TEST else (
        f"descriptive only: {test['n_seeds']} complete seeds (a test needs ≥ {MIN_SEEDS_FOR_TEST})")
    return {**row, **test, "slope_per_seed": " ".join(f"{s:+.4f}" for s in slopes), "status": status}


def _untestable(runs: pd.DataFrame, test_set: str, n_scen: int, settings: AnalysisSettings) -> str:
    teacher_gain = runs.loc[runs["test_set"] == test_set, "cell_teacher_gain"]
    if n_scen == 0 and (teacher_gain < settings.min_teacher_gain_db).all():
        return f"not testable: teacher gain < {settings.min_teacher_gain_db:g} dB"
    return (f"not testable: needs ≥ {MIN_SCENARIOS} scenarios of different compression where the teacher "
            f"gains ≥ {settings.min_teacher_gain_db:g} dB; has {n_scen}")


def slope_tests(runs: pd.DataFrame, settings: AnalysisSettings = AnalysisSettings()) -> pd.DataFrame:
    """Per test set × baseline, exploratory: slopes of the retained gap (fraction per doubling of
    compression), their mean with unadjusted 95 % interval and what it shows (``reading``)."""
    rows = [_slope_row(runs, test_set, base, settings)
            for test_set in sorted(runs["test_set"].unique())
            for base in BASELINES if base in set(runs["method"])]
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["reading"] = [interval_reading(row) if row["status"] == "ok" else row["status"]
                        for _, row in table.iterrows()]
    return table


def with_retained(table: pd.DataFrame, retained: pd.DataFrame) -> pd.DataFrame:
    """The summary table with each student row's compression, retained fraction (95 % interval,
    status) and its scenario's headroom, all on the headline metric."""
    columns = {"compression": "compression", "retained_mean": f"retained_{HEADLINE}",
               "retained_ci95_low": f"retained_{HEADLINE}_ci95_low",
               "retained_ci95_high": f"retained_{HEADLINE}_ci95_high",
               "status": f"retained_{HEADLINE}_status", "headroom": f"headroom_{HEADLINE}"}
    keys = ["test_set", "scenario", "method"]
    if retained.empty:
        return table.assign(**{name: math.nan for name in columns.values()})
    extra = retained[keys + list(columns)].rename(columns=columns).assign(kind="student")
    return table.merge(extra, on=["kind", *keys], how="left")
