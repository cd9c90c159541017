"""Per-utterance scores → per-run means → per-model summary with the spread over seeds.

Aggregation is two-level on purpose: utterances are averaged within a run (one seed), and the
spread (std, CI) is taken over seeds, so the error bars describe training variability rather
than the (much larger, and not independent across models) utterance variability.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

from kdsd.errors import KdsdError
from kdsd.metrics import METRICS  # one list for scoring and reporting: input_<m>, <m>, <m>_i

HEADLINE = "si_sdr"
BASELINES: tuple[str, ...] = ("none", "sp2step")
CI_LEVEL = 0.95

RUN_KEYS = ["kind", "method", "scenario", "seed", "test_set"]
GROUP_KEYS = ["kind", "method", "scenario", "test_set"]
KINDS = ("teacher", "student", "reference")  # reference = an external, off-the-shelf denoiser
KIND_ORDER = {"input": 0, "teacher": 1, "reference": 2, "student": 3}
ID_COLUMNS = ("utt_id", "model", "kind", "method", "scenario", "seed", "test_set", "params")
# pandas' default NA strings include "None"/"null"; "none" is a method name, so everything is read
# verbatim and only these tokens mean "missing" in the numeric columns we use.
_NA_TOKENS = {"", "nan", "NaN", "NA", "N/A", "n/a", "null", "NULL", "None", "<NA>", "-nan", "-NaN"}


def metric_columns(metrics: Iterable[str] = METRICS) -> list[str]:
    """The three score columns of every metric: input, estimate, improvement."""
    return [c for m in metrics for c in (f"input_{m}", m, f"{m}_i")]


def required_columns() -> list[str]:
    return [*ID_COLUMNS, *metric_columns()]


def _read_one(path: str | os.PathLike) -> pd.DataFrame:
    if not os.path.isfile(path):
        raise KdsdError(f"{path}: score file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise KdsdError(f"{path}: unreadable score CSV ({err})") from None
    missing = [c for c in required_columns() if c not in df.columns]
    if missing:
        raise KdsdError(f"{path}: missing required columns: {', '.join(missing)}")
    for col in ("seed", "params", *metric_columns()):
        df[col] = _to_numeric(df[col], path, col)
    if "snr_db" in df.columns:
        df["snr_db"] = _to_numeric(df["snr_db"], path, "snr_db")
    for col in ("seed", "params"):
        if df[col].isna().any():
            raise KdsdError(f"{path}: column {col!r} has empty values")
        df[col] = df[col].astype("int64")
    bad_kind = sorted(set(df["kind"]) - set(KINDS))
    if bad_kind:
        raise KdsdError(f"{path}: unknown kind {bad_kind}; expected one of {list(KINDS)}")
    df["_source"] = str(path)
    return df


def _to_numeric(col: pd.Series, path, name: str) -> pd.Series:
    col = col.str.strip().mask(col.str.strip().isin(_NA_TOKENS))
    try:
        return pd.to_numeric(col)
    except (ValueError, TypeError):
        bad = col[pd.to_numeric(col, errors="coerce").isna() & col.notna()].iloc[0]
        raise KdsdError(f"{path}: column {name!r} has a non-numeric value {bad!r}") from None


def _check_duplicates(df: pd.DataFrame) -> None:
    # A file listed twice would silently double-weight its utterances.
    dup = df.duplicated(RUN_KEYS + ["utt_id"], keep=False)
    if dup.any():
        rows = df[dup]
        first = rows.iloc[0]
        sources = sorted(set(rows.loc[rows["utt_id"] == first["utt_id"], "_source"]))
        raise KdsdError(f"{sources[0]}: utterance {first['utt_id']!r} scored more than once for "
                        f"run {tuple(first[RUN_KEYS])} (files: {', '.join(sources)})")


def load_scores(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Read and concatenate per-utterance score CSVs, validating the column contract."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]  # a lone path would otherwise be iterated character by character
    frames = [_read_one(p) for p in paths]
    if not frames:
        raise KdsdError("load_scores: no score files given")
    df = pd.concat(frames, ignore_index=True)
    _check_duplicates(df)
    return df.drop(columns="_source")


def run_means(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per run (kind, method, scenario, seed, test_set): NaN-skipping utterance means.

    Adds ``n_utts`` (rows in the run) and ``n_nan_<col>`` for every metric column.
    """
    cols = [c for c in metric_columns() if c in scores.columns]
    grouped = scores.groupby(RUN_KEYS, sort=True, dropna=False)
    out = grouped[cols].mean()
    out["params"] = grouped["params"].first()
    out["n_utts"] = grouped.size()
    nan_counts = scores[cols].isna().groupby([scores[k] for k in RUN_KEYS], dropna=False).sum()
    out = out.join(nan_counts.add_prefix("n_nan_"))
    return out.reset_index()


def _input_pseudo_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """The noisy input as a deterministic pseudo-model (one 'seed') per test set."""
    inputs = [f"input_{m}" for m in METRICS]
    # Every model scores the same noisy file; the mean only absorbs float noise between CSVs.
    per_utt = scores.groupby(["test_set", "utt_id"], sort=True)[inputs].mean().reset_index()
    estimates = {m: per_utt[f"input_{m}"] for m in METRICS}
    gains = {f"{m}_i": value - value for m, value in estimates.items()}  # 0, or NaN where unscorable
    ids = dict.fromkeys(("kind", "method", "scenario", "model"), "input") | {"seed": 0, "params": np.nan}
    return per_utt.assign(**estimates, **gains, **ids)


def t_half_width(std, n, level: float = CI_LEVEL, dof=None):
    """Half-width of the two-sided Student-t interval of a mean: t(level, dof) · std / √n.

    The one t-interval of the package (model tables, comparisons, ablations, the primary tests).
    ``dof`` defaults to n − 1; NaN where there are fewer than two observations. Scalars or arrays.
    """
    n = np.asarray(n, dtype=float)
    dof = np.where(n >= 2, n - 1, np.nan) if dof is None else np.asarray(dof, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = sps.t.ppf(0.5 + np.asarray(level) / 2, dof) * np.asarray(std, dtype=float) / np.sqrt(n)
    return float(half) if np.ndim(half) == 0 else half


def _ci_half_width(std: pd.Series, n: pd.Series) -> pd.Series:
    """Student-t half-width over seeds; NaN with fewer than two seeds."""
    return pd.Series(t_half_width(std.to_numpy(dtype=float), n.to_numpy(dtype=float)), index=std.index)


def _seed_aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    grouped = runs.groupby(GROUP_KEYS, sort=False, dropna=False)
    columns = {"n_seeds": grouped.size(), "params": grouped["params"].first().astype("Int64")}
    for m in METRICS:  # built as one dict and joined once: a column at a time fragments the frame
        for c in (m, f"{m}_i"):
            mean, std, n = grouped[c].mean(), grouped[c].std(ddof=1), grouped[c].count()
            nan = grouped[f"n_nan_{c}"].sum()
            columns.update({f"{c}_mean": mean, f"{c}_std": std, f"{c}_ci95": _ci_half_width(std, n),
                            f"{c}_n_seeds": n,
                            f"{c}_n_utts": grouped["n_utts"].sum() - nan,  # finite scores, pooled over seeds
                            f"{c}_n_nan": nan})
    return pd.DataFrame(columns).reset_index()


def method_rank(method: str) -> int:
    """Baselines first (in BASELINES order), then every other method."""
    return BASELINES.index(method) if method in BASELINES else len(BASELINES)


def method_sort_key(method: str, controls: Mapping[str, str] | None = None) -> tuple:
    """Display order: baselines first, then the other methods by name; a budget control
    (``controls``: {control: method}) right after the method whose budget it matches."""
    target = (controls or {}).get(method, method)
    return method_rank(target), target, method != target, method


def _sort(table: pd.DataFrame, controls: Mapping[str, str] | None = None) -> pd.DataFrame:
    methods = {m: i for i, m in enumerate(sorted(set(table["method"]), key=lambda m: method_sort_key(m, controls)))}
    key = pd.DataFrame({
        "test_set": table["test_set"],
        "kind": table["kind"].map(KIND_ORDER),
        "scenario": table["scenario"],
        "method": table["method"].map(methods),
    })
    order = key.sort_values(list(key.columns), kind="stable").index
    return table.loc[order].reset_index(drop=True)


def summary_table(scores: pd.DataFrame, controls: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per (kind, method, scenario, test_set), plus a ``kind == "input"`` row per test set.

    Per metric column c in (m, m_i): c_mean / c_std / c_ci95 (half-width of the 95 % t interval)
    over seed run means, c_n_seeds, c_n_utts (finite utterance scores pooled over seeds), c_n_nan.
    Method comparisons live in :mod:`kdsd.analysis.seeds`, the retained fraction in
    :mod:`kdsd.analysis.claim`.
    """
    combined = pd.concat([_input_pseudo_scores(scores), scores], ignore_index=True)
    return _sort(_seed_aggregate(run_means(combined)), controls)


def format_mean_std(mean: float, std: float, digits: int = 2) -> str:
    """'2.31 ± 0.05', or '2.31' without a spread, or '–' without a value."""
    if mean is None or pd.isna(mean):
        return "–"
    if std is None or pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
