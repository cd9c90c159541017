"""summary.md: the paper's claim first, then every headline comparison worded from its interval,
the exploratory ones labelled so, missing runs, the tables and provenance. Every sentence is
generated from the numbers."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kdsd.analysis.claim import MIN_SCENARIOS
from kdsd.analysis.seeds import (
    ALPHA, EXPLORATORY, HEADLINE_FAMILY, MIN_SEEDS_FOR_SIGNFLIP, MIN_SEEDS_FOR_TEST, PROPOSED)
from kdsd.analysis.settings import AnalysisSettings
from kdsd.analysis.stats import BASELINES, HEADLINE, METRICS
from kdsd.analysis.tables import (
    COMPARISON_LEGEND, comparison_table, format_interval, format_pvalue, markdown_tables, metric_label,
    retained_markdown, slope_markdown)
from kdsd.atomic import write_text

GAIN = f"Δ{metric_label(HEADLINE)}"


@dataclass
class Analysis:
    """Everything the report states: model table, comparisons, retained fractions, claim tests."""

    table: pd.DataFrame
    comparisons: pd.DataFrame
    runs: pd.DataFrame  # one row per student run: gains, compression, retained fraction
    retained: pd.DataFrame
    slopes: pd.DataFrame
    missing: pd.DataFrame
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _claim_clause(rows: pd.DataFrame) -> str:
    """'against sp2step: supported on 1 of 5 test sets (test_a), inconclusive on 4'."""
    groups = {}
    for _, row in rows.iterrows():
        word, _, reason = (row["verdict"] if row["status"] == "ok" else row["status"]).partition(": ")
        key = word if row["status"] == "ok" else f"{word} ({reason})"  # 'not testable (teacher gain < 1 dB)'
        groups.setdefault(key, []).append(row["test_set"])
    order = ("supported", "reversed", "inconclusive")  # findings first, then what could not be tested
    keys = sorted(groups, key=lambda k: order.index(k) if k in order else len(order))
    parts = [f"{key} on {len(groups[key])} of {len(rows)} test sets ({', '.join(groups[key])})" for key in keys]
    return f"against `{rows.iloc[0]['baseline']}`: " + "; ".join(parts)


def _claim_verdict(slopes: pd.DataFrame) -> str:
    main = slopes[slopes["baseline"] == "sp2step"]
    rows = main if not main.empty else slopes
    verdicts = rows["verdict"]
    supported, reversed_ = verdicts.str.startswith("supported").sum(), verdicts.str.startswith("reversed").sum()
    testable = (rows["status"] == "ok").sum()
    if testable == 0:
        return "**Verdict: not testable in this run.**"
    if supported and not reversed_:
        return f"**Verdict: supported on {supported} of {len(rows)} test sets.**"
    if reversed_ and not supported:
        return f"**Verdict: contradicted (the gap shrinks) on {reversed_} of {len(rows)} test sets.**"
    if supported and reversed_:
        return f"**Verdict: mixed: supported on {supported}, reversed on {reversed_} test sets.**"
    return "**Verdict: not shown: every testable slope is inconclusive (no evidence for or against).**"


def claim_paragraph(analysis: Analysis) -> str:
    """The opening paragraph: the paper's claim, how it is tested here, and the verdict."""
    settings, slopes = analysis.settings, analysis.slopes
    claim = (f"The paper's claim is that students distilled with `{PROPOSED}` keep more of the teacher's "
             f"{GAIN} than the baseline's students as the teacher–student mismatch grows. Here mismatch is "
             f"compression (teacher parameters / student parameters), the retained fraction is student "
             f"{GAIN} / teacher {GAIN} (given only where the teacher gains ≥ "
             f"{settings.min_teacher_gain_db:g} dB), and the test takes, per training seed, the slope of "
             f"the retained-fraction gap ({PROPOSED} − baseline) against log2 compression across scenarios "
             f"(≥ {MIN_SCENARIOS} needed) and t-tests the slopes over seeds (≥ {MIN_SEEDS_FOR_TEST} needed), "
             f"Holm-corrected over baselines × test sets.")
    if slopes.empty:
        return claim + (f" This run has no `{PROPOSED}` students with a baseline ({', '.join(BASELINES)}) to "
                        f"compare against: **not testable.**")
    clauses = [_claim_clause(rows) for _, rows in slopes.groupby("baseline", sort=False)]
    return f"{claim} Result {'; '.join(clauses)}. {_claim_verdict(slopes)}"


def _teacher_line(test_set: str, analysis: Analysis) -> str:
    teacher = analysis.table[(analysis.table["kind"] == "teacher") & (analysis.table["test_set"] == test_set)]
    if teacher.empty:
        return "- Teacher: no teacher scores on this test set."
    row = teacher.iloc[0]
    return (f"- Teacher: {GAIN} {row[f'{HEADLINE}_i_mean']:+.2f} dB, ΔPESQ-WB "
            f"{row['pesq_wb_i_mean']:+.2f} over the noisy input.")


def comparison_sentence(row: pd.Series) -> str:
    """'cosine − none: +0.33 dB, 95 % CI [-0.10, +0.76] over 6 seeds (48 utterances), Holm p = 0.21
    → inconclusive: 95 % CI [-0.10, +0.76] dB'."""
    if row["n_seeds"] == 0:
        return f"{row['method']} − {row['baseline']}: not comparable (no paired seeds with scores)"
    text = (f"{row['method']} − {row['baseline']}: {row['mean_diff']:+.2f} dB, 95 % CI "
            f"{format_interval(row['ci95_low'], row['ci95_high'])} over {_count(row['n_seeds'], 'seed')} "
            f"({row['n_utts']} utterances{f', {row.n_dropped_utts} dropped' if row['n_dropped_utts'] else ''})")
    if row["n_seeds"] >= MIN_SEEDS_FOR_TEST:
        p_name = "Holm p" if row["family"] == HEADLINE_FAMILY else "uncorrected p"
        p = row["p_holm"] if row["family"] == HEADLINE_FAMILY else row["p_t"]
        text += f", {p_name} = {format_pvalue(p)}"
        if row["n_seeds"] >= MIN_SEEDS_FOR_SIGNFLIP:
            text += f" (sign-flip p = {format_pvalue(row['p_signflip'])})"
    if row["unpaired_seeds"]:
        text += f"; seeds {row['unpaired_seeds']} have a run on one side only and are left out"
    return f"{text} → {row['verdict']}"


def _scenario_line(scenario: str, rows: pd.DataFrame, retained: pd.DataFrame) -> str:
    head = f"- {scenario}"
    info = retained[retained["scenario"] == scenario]
    if not info.empty:
        first = info.iloc[0]
        head += f" (compression {first['compression']:.1f}×"
        head += "" if pd.isna(first["headroom"]) else f"; teacher headroom over `none` {first['headroom']:+.2f} dB"
        head += ")"
    return f"{head}: " + "; ".join(comparison_sentence(row) for _, row in rows.iterrows()) + "."


def headline_section(analysis: Analysis) -> str:
    comps = analysis.comparisons
    headline = comps[comps["family"] == HEADLINE_FAMILY]
    n_seeds = int(headline["n_seeds"].max()) if len(headline) else 0
    note = (f"The training seed is the unit: each comparison pairs runs by seed (same initial weights and "
            f"data order), takes the per-seed difference in mean {GAIN} over one utterance set, and gives "
            f"its mean with a 95 % t interval over seeds. Verdicts: better / worse when the Holm-corrected "
            f"t-test over the {len(headline)} headline comparisons ({PROPOSED} against "
            f"{' and '.join(BASELINES)}, every scenario and test set) rejects at {ALPHA}; \"equivalent "
            f"within ±{analysis.settings.equivalence_margin_db:g} dB\" when the whole interval lies inside "
            f"that margin; otherwise inconclusive, with the interval.")
    if headline.empty:
        note += f" **This run has no `{PROPOSED}` students with a baseline: no headline comparison.**"
    elif n_seeds < MIN_SEEDS_FOR_TEST:
        note += (f" **This run has at most {_count(n_seeds, 'paired seed')} per comparison, fewer than "
                 f"{MIN_SEEDS_FOR_TEST}: the comparisons below are descriptive only, and no p-values are "
                 f"given.**")
    blocks = [note]
    for test_set in sorted(analysis.table.loc[analysis.table["kind"] != "input", "test_set"].unique()):
        lines = [f"### {test_set}", "", _teacher_line(test_set, analysis)]
        rows = headline[headline["test_set"] == test_set]
        retained = analysis.retained[analysis.retained["test_set"] == test_set] if len(analysis.retained) else analysis.retained
        lines += [_scenario_line(scen, srows, retained) for scen, srows in rows.groupby("scenario", sort=True)]
        if rows.empty:
            lines.append(f"- no {PROPOSED} students with a baseline to compare on this test set")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def exploratory_section(comparisons: pd.DataFrame) -> str:
    rows = comparisons[(comparisons["family"] == EXPLORATORY) & (comparisons["metric"] == HEADLINE)]
    intro = (f"Other method pairs on {GAIN}, uncorrected for multiple comparisons: they suggest where to "
             f"look, and decide nothing. Other metrics: tables/comparisons.csv.")
    return f"{intro}\n\n{comparison_table(rows)}" if len(rows) else f"{intro}\n\n(no other method pairs)"


def missing_section(missing: pd.DataFrame) -> str:
    if missing.empty:
        return "- every expected run (scenarios × methods × seeds of the config) has scores on every test set"
    lines = ["Expected by the config (scenarios × methods × seeds) but without scores; nothing is averaged "
             "around them: model rows give their seed count, comparisons pair only seeds both sides have.", ""]
    for (scenario, method, seed), rows in missing.groupby(["scenario", "method", "seed"], sort=True):
        lines.append(f"- students/{scenario}/{method}/seed{seed}: no scores on {', '.join(rows['test_set'])}")
    return "\n".join(lines)


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


def summary_text(analysis: Analysis, *, provenance: Mapping[str, object], unscored: str = "") -> str:
    headline = analysis.comparisons[analysis.comparisons["family"] == HEADLINE_FAMILY]
    sections = [
        "# Knowledge-distillation benchmark: summary",
        claim_paragraph(analysis),
        "## The claim: retained fraction against compression",
        retained_markdown(analysis.retained),
        slope_markdown(analysis.slopes) if len(analysis.slopes) else "No claim test (no cosine and baseline students).",
        f"## Headline comparisons ({GAIN}, Holm-corrected)", headline_section(analysis),
        "### All headline comparisons", comparison_table(headline) if len(headline) else "(none)",
        COMPARISON_LEGEND,
        "## Exploratory comparisons", exploratory_section(analysis.comparisons),
        "## Missing runs", missing_section(analysis.missing),
        "## Models per test set", markdown_tables(analysis.table).rstrip("\n"),
        *(["## Unscorable utterances", unscored] if unscored else []),
        "## Provenance", _provenance(provenance),
    ]
    return "\n\n".join(sections) + "\n"


def write_summary(analysis: Analysis, out_md: str | os.PathLike, *,
                  provenance: Mapping[str, object], unscored: str = "") -> Path:
    """Write summary.md (see :func:`summary_text`)."""
    return write_text(out_md, summary_text(analysis, provenance=provenance, unscored=unscored))
