"""summary.md: per-test-set headlines stated honestly, the tables, and provenance."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from kdsd.analysis.stats import ALPHA, HEADLINE, METRICS
from kdsd.analysis.tables import format_pvalue, markdown_tables, metric_label
from kdsd.atomic import write_text

PROPOSED = "cosine"
COMPARED = ("sp2step", "none")
DELTA_UNITS = {"si_sdr": " dB"}


def _delta(row: pd.Series, metric: str) -> str:
    value = row[f"{metric}_i_mean"]
    return "n/a" if pd.isna(value) else f"{value:+.2f}{DELTA_UNITS.get(metric, '')}"


def _teacher_line(rows: pd.DataFrame) -> str:
    teacher = rows[rows["kind"] == "teacher"]
    if teacher.empty:
        return "- Teacher: no teacher scores on this test set."
    row = teacher.iloc[0]
    return (f"- Teacher: Δ{metric_label(HEADLINE)} {_delta(row, HEADLINE)}, "
            f"ΔPESQ-WB {_delta(row, 'pesq_wb')} over the noisy input.")


def _comparison(me: pd.Series, other: pd.Series, base: str) -> str:
    """One honest clause: direction of the mean difference, then whether the test supports it."""
    diff = me[f"{HEADLINE}_i_mean"] - other[f"{HEADLINE}_i_mean"]
    p = me.get(f"p_vs_{base}_{HEADLINE}", float("nan"))
    if pd.isna(diff):
        return f"vs {base}: not comparable (missing scores)"
    shift = f"{diff:+.2f}{DELTA_UNITS.get(HEADLINE, '')}"
    if pd.isna(p):
        verdict = "untested (too few paired utterances)"
    elif p < ALPHA:
        verdict = "significant" if diff > 0 else "reversed: significantly worse"
    else:
        verdict = "not significant"
    if diff <= 0:
        direction = "does not beat"
    else:  # only claim "beats" when the paired test backs the mean difference
        direction = "beats" if verdict == "significant" else "is nominally ahead of"
    return f"{PROPOSED} {direction} {base} ({shift}, p = {format_pvalue(p)}; {verdict})"


def _best_method(rows: pd.DataFrame) -> str:
    gains = rows[f"{HEADLINE}_i_mean"]
    if gains.isna().all():
        return "undetermined (no scores)"
    best = rows.loc[gains.idxmax()]
    return f"`{best['method']}` ({_delta(best, HEADLINE)})"


def _scenario_line(scenario: str, rows: pd.DataFrame) -> str:
    head = f"- {scenario}: best student method by Δ{metric_label(HEADLINE)} is {_best_method(rows)}"
    by_method = rows.set_index("method")
    if PROPOSED not in by_method.index:
        return f"{head}; {PROPOSED} was not run."
    clauses = [_comparison(by_method.loc[PROPOSED], by_method.loc[base], base)
               for base in COMPARED if base in by_method.index]
    return f"{head}; " + ("; ".join(clauses) if clauses else f"no baseline to compare {PROPOSED} with") + "."


def headlines(table: pd.DataFrame) -> str:
    """A short block of bullet points per test set."""
    blocks = []
    for test_set, rows in table.groupby("test_set", sort=False):
        students = rows[rows["kind"] == "student"]
        lines = [f"### {test_set}", "", _teacher_line(rows)]
        lines += [_scenario_line(scen, srows) for scen, srows in students.groupby("scenario", sort=False)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _provenance(provenance: Mapping[str, object]) -> str:
    return "\n".join(f"- {key}: {value}" for key, value in provenance.items()) or "- (none given)"


def unscored_section(scores: pd.DataFrame) -> str:
    """How many utterance scores are NaN (excluded from the means), per metric, and why."""
    lines = []
    for prefix, reason_col in (("", "nan_reason"), ("input_", "input_nan_reason")):
        for m in METRICS:
            n = int(scores[f"{prefix}{m}"].isna().sum())
            if n:
                lines.append(f"- `{prefix}{m}`: {n} of {len(scores)} utterance scores are NaN")
        if reason_col in scores.columns:
            reasons = scores[reason_col].replace("", np.nan).dropna().value_counts()
            lines += [f"  - reason ({count}×): {reason}" for reason, count in reasons.head(5).items()]
    return "\n".join(lines) or "- every utterance was scored by every metric"


def write_summary(table: pd.DataFrame, out_md: str | os.PathLike, *,
                  provenance: Mapping[str, object], unscored: str = "") -> Path:
    """Write summary.md: headlines per test set, the Markdown tables, unscorable utterances, provenance."""
    note = (f"Differences are in mean Δ{metric_label(HEADLINE)} over seeds; p-values are uncorrected "
            f"paired Wilcoxon signed-rank tests over utterances (scores averaged over seeds), "
            f"so they do not account for seed-to-seed variance.")
    text = "\n\n".join([
        "# Knowledge-distillation benchmark: summary",
        "## Headlines", note, headlines(table),
        "## Tables", markdown_tables(table).rstrip("\n"),
        *(["## Unscorable utterances", unscored] if unscored else []),
        "## Provenance", _provenance(provenance),
    ]) + "\n"
    return write_text(out_md, text)
