"""summary.md: the four pre-registered primary tests first (with their own intervals, power and
what they are conditional on), then everything exploratory, labelled so. Every sentence is
generated from the numbers printed beside it."""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kdsd.analysis.budgets import unequal_budgets
from kdsd.analysis.primary import LEVEL, SUPPORTED
from kdsd.analysis.seeds import (
    BETTER, DESCRIPTIVE, EQUIVALENT, EXPLORATORY, MIN_SEEDS_FOR_TEST, NOT_RESOLVED, PROPOSED, WORSE)
from kdsd.analysis.settings import AnalysisSettings
from kdsd.analysis.stats import HEADLINE, METRICS
from kdsd.analysis.tables import (
    COMPARISON_LEGEND, comparison_table, format_interval, format_pvalue, markdown_tables, metric_label,
    retained_markdown, slope_markdown)
from kdsd.atomic import write_text

GAIN = f"Δ{metric_label(HEADLINE)}"


@dataclass
class Analysis:
    """Everything the report states: the primary family and the claim, the model table, the
    exploratory comparisons, retained fractions and per-test-set slopes, budgets, missing runs."""

    table: pd.DataFrame
    comparisons: pd.DataFrame
    runs: pd.DataFrame  # one row per student run: gains, compression, retained fraction
    retained: pd.DataFrame
    slopes: pd.DataFrame
    missing: pd.DataFrame
    primary: pd.DataFrame = field(default_factory=pd.DataFrame)
    claim: pd.DataFrame = field(default_factory=pd.DataFrame)
    budgets: pd.DataFrame = field(default_factory=pd.DataFrame)
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _level_text(level: float) -> str:
    return f"{100 * level:.2f}".rstrip("0").rstrip(".") + " %"


def _scale(row) -> tuple[float, str]:
    """Level tests print dB; trend tests print percentage points of the teacher's gain per doubling."""
    return (1.0, " dB") if row["test"] == LEVEL else (100.0, " pp per doubling")


def _value(row, value: float, digits: int = 2) -> str:
    scale, unit = _scale(row)
    return "–" if pd.isna(value) else f"{scale * value:+.{digits}f}{unit}"


def _magnitude(row, value: float) -> str:
    scale, unit = _scale(row)
    return "–" if pd.isna(value) else f"{scale * value:.2f}{unit}"


def _interval(row) -> str:
    scale, unit = _scale(row)
    return format_interval(row["ci_low"], row["ci_high"], 2, scale) + unit


def _ci_name(row) -> str:
    return (f"unadjusted {_level_text(row['ci_level'])} CI" if row["verdict"] == DESCRIPTIVE
            else f"{_level_text(row['ci_level'])} CI")


def primary_sentence(row: pd.Series) -> str:
    """One primary test in words that say exactly what its interval and Holm p say."""
    name = f"{row['test']} against `{row['baseline']}`"
    verdict = row["verdict"]
    if row["status"] != "ok" and verdict != DESCRIPTIVE:
        return f"{name}: {row['status']}"
    if verdict == DESCRIPTIVE:
        return (f"{name}: descriptive only ({_count(row['n_seeds'], 'complete seed')}; a test needs ≥ "
                f"{MIN_SEEDS_FOR_TEST}): {_value(row, row['estimate'])}, {_ci_name(row)} {_interval(row)}")
    ci = f"{_ci_name(row)} {_interval(row)}, Holm p = {format_pvalue(row['p_holm'])}"
    if verdict == EQUIVALENT:
        return (f"{name}: **equivalent** within ±{_magnitude(row, row['margin'])}: the whole {_ci_name(row)} "
                f"{_interval(row)} lies inside the margin (estimate {_value(row, row['estimate'])}, Holm p = "
                f"{format_pvalue(row['p_holm'])})")
    if verdict in (BETTER, WORSE):
        return f"{name}: **{PROPOSED} {verdict}**, {_value(row, row['estimate'])}, {ci}"
    return (f"{name}: **not resolved**: effects from {_value(row, row['ci_low'])} to "
            f"{_value(row, row['ci_high'])} remain possible ({ci}; estimate {_value(row, row['estimate'])}); "
            f"this is not evidence of no effect")


CLAIM_WORDS = {
    SUPPORTED: "supported",
    "gap narrows, cosine still behind": "not supported: the gap narrows with compression, but cosine is still behind at the most compressed scenario",
    "gap narrows, lead not shown": "not shown: the gap narrows with compression, but cosine is not shown ahead at the most compressed scenario",
    "reversed": "contradicted: cosine's gap shrinks with compression",
    "no trend (equivalent)": "not supported: no trend (equivalent within the margin)",
    NOT_RESOLVED: "not resolved (the trend test could not decide)",
    DESCRIPTIVE: "not testable with fewer than 3 seeds",
}


def claim_words(claim: str) -> str:
    return CLAIM_WORDS.get(claim, claim)


def claim_line(row: pd.Series) -> str:
    lead = (f"lead at the most compressed scenario (`{row['most_compressed']}`) "
            f"{row['lead_db']:+.2f} dB, 95 % CI {format_interval(row['lead_ci95_low'], row['lead_ci95_high'])} "
            f"over {_count(row['lead_n_seeds'], 'seed')}") if pd.notna(row["lead_db"]) else "no lead measured"
    return (f"- against `{row['baseline']}`: trend {row['trend_verdict']}; {lead} → "
            f"**{claim_words(row['claim'])}**")


def opening_paragraph(analysis: Analysis) -> str:
    """What was asked (pre-registered), how it was tested, and what this run found."""
    primary, settings = analysis.primary, analysis.settings.primary
    bases = " and ".join(f"`{b}`" for b in settings.baselines)
    question = (f"Primary question (pre-registered in `analysis.primary`): do `{settings.method}` students "
                f"beat {bases} students on {GAIN} averaged over every scenario and test set (**level**), "
                f"and does the lead grow with compression (**trend**, the paper's claim: the gap in retained "
                f"fraction of the teacher's {GAIN} per doubling of compression)? The training seed is the "
                f"unit; {_count(len(primary), 'test')}, Holm-corrected at α = {settings.alpha:g}.")
    if primary.empty:
        return question + f" This run has no `{settings.method}` students with a baseline: **Verdict: not testable.**"
    found = "\n".join(f"- {primary_sentence(row)}." for _, row in primary.iterrows())
    claims = "; ".join(f"against `{r['baseline']}` {claim_words(r['claim'])}"
                       for _, r in analysis.claim.iterrows())
    return (f"{question} **Verdict on the claim: {claims or 'not testable'}.** The four tests:\n\n{found}"
            + budget_caveat(analysis.budgets, settings.method, settings.baselines))


def budget_caveat(budgets: pd.DataFrame, method: str, baselines) -> str:
    """A line per baseline whose students train a different number of epochs than ``method``'s."""
    epochs = budgets.groupby("method")["epochs"].max() if len(budgets) else pd.Series(dtype=int)
    lines = [f"\n- Unequal budgets: `{base}` students train {epochs[base]} epochs, `{method}` students "
             f"{epochs[method]}: the comparison with `{base}` compares methods and budgets together."
             for base in baselines if {base, method} <= set(epochs.index) and epochs[base] != epochs[method]]
    return "".join(lines)


def primary_markdown(primary: pd.DataFrame, alpha: float) -> str:
    m = max(1, int(primary["p"].notna().sum()))
    head = ["Baseline", "Test", "Seeds", "Estimate", "Interval (level)", "p (Holm)", "Verdict", "Seed SD",
            f"MDE (80 %, α/{m})", "Seeds for target (target)"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---:|---:|---|---:|---|---:|---:|---:|"]
    for _, row in primary.iterrows():
        needed = row["seeds_for_target"]
        needed = "–" if pd.isna(needed) else ("> 500" if math.isinf(needed) else str(int(needed)))
        lines.append("| " + " | ".join([
            f"`{row['baseline']}`", row["test"], str(row["n_seeds"]), _value(row, row["estimate"]),
            f"{_interval(row)} ({_level_text(row['ci_level'])})", format_pvalue(row["p_holm"]),
            row["verdict"] if row["status"] == "ok" or row["verdict"] == DESCRIPTIVE else row["status"],
            _magnitude(row, row["sd_seed"]), _magnitude(row, row["mde"]),
            f"{needed} ({_magnitude(row, row['target'])})"]) + " |")
    return "\n".join(lines)


def power_paragraph(analysis: Analysis) -> str:
    primary, settings = analysis.primary, analysis.settings.primary
    m = max(1, int(primary["p"].notna().sum()))
    lines = [f"Power: for each test, the seed SD observed here, the smallest effect the test detects with "
             f"{100 * settings.power:.0f} % power at this run's seed count and at level α/{m} = "
             f"{settings.alpha / m:.4g} (the level of Holm's first step, which any test may face), and the "
             f"seeds a {settings.target_effect_db:g} dB effect would need (for the trend: cosine's lead "
             f"changing by {settings.target_effect_db:g} dB from the least to the most compressed scenario, "
             f"as a fraction of the teacher's mean {GAIN} per doubling). An effect smaller than the MDE may well exist: a \"not resolved\" test is silent "
             f"about it."]
    for _, row in primary.iterrows():
        if pd.isna(row["mde"]):
            continue
        needed = row["seeds_for_target"]
        needed_text = "more than 500 seeds" if math.isinf(needed) else _count(int(needed), "seed")
        lines.append(f"- {row['test']} against `{row['baseline']}`: seed SD {_magnitude(row, row['sd_seed'])}; "
                     f"with {_count(row['n_seeds'], 'seed')} the MDE is {_magnitude(row, row['mde'])}; "
                     f"{_magnitude(row, row['target'])} needs {needed_text}.")
    return "\n".join(lines)


def conditions_paragraph(analysis: Analysis, config: Mapping | None) -> str:
    """What every verdict is conditional on: one teacher, one corpus draw, fixed utterances."""
    config = config or {}
    corpus, teacher = config.get("corpus") or {}, config.get("teacher") or {}
    utts = analysis.runs.groupby("test_set")["n_utts"].max() if len(analysis.runs) else pd.Series(dtype=int)
    sets = ", ".join(f"{t} ({int(n)} utterances)" for t, n in utts.items()) or "no student runs"
    return (f"What these verdicts are conditional on: one teacher run (teacher seed "
            f"{teacher.get('seed', 'unknown')}), one corpus draw (corpus seed {corpus.get('seed', 'unknown')}, "
            f"source {corpus.get('source', 'unknown')}) and fixed utterance sets ({sets}). Seeds vary the "
            f"students' initial weights and data order only, so \"better\" means better students of this "
            f"teacher on these conditions; it says nothing about new utterances, new corpora or new teachers.")


def budgets_paragraph(budgets: pd.DataFrame) -> str:
    if budgets.empty:
        return "Training budgets: no student histories."
    cols = [c for c in budgets.columns if c not in ("scenario", "method")]
    head = "| Scenario | Method | " + " | ".join(c.replace("_", " ") for c in cols) + " |"
    lines = [head, "|---|---|" + "---:|" * len(cols)]
    for _, row in budgets.iterrows():
        cells = ["–" if pd.isna(row[c]) else f"{row[c]:g}" for c in cols]
        lines.append(f"| {row['scenario']} | {row['method']} | " + " | ".join(cells) + " |")
    unequal = unequal_budgets(budgets)
    note = ("Every method trains the same number of epochs." if not unequal else
            "Methods train unequal budgets (" + ", ".join(f"`{m}` {e} epochs" for m, e in unequal.items())
            + "): a comparison between them compares methods and budgets together.")
    table = "\n".join(lines)
    return f"Training budgets (epochs per student, medians over seeds; KD epochs run the teacher):\n\n{table}\n\n{note}"


def _teacher_line(test_set: str, analysis: Analysis) -> str:
    teacher = analysis.table[(analysis.table["kind"] == "teacher") & (analysis.table["test_set"] == test_set)]
    if teacher.empty:
        return "- Teacher: no teacher scores on this test set."
    row = teacher.iloc[0]
    return (f"- Teacher: {GAIN} {row[f'{HEADLINE}_i_mean']:+.2f} dB, ΔPESQ-WB "
            f"{row['pesq_wb_i_mean']:+.2f} over the noisy input.")


def comparison_sentence(row: pd.Series) -> str:
    """'cosine − none: +0.33 dB, unadjusted 95 % CI [-0.10, +0.76] over 6 seeds (48 utterances):
    spans 0'. Exploratory: no p-value, no verdict word."""
    if row["n_seeds"] == 0:
        return f"{row['method']} − {row['baseline']}: not comparable (no paired seeds with scores)"
    text = (f"{row['method']} − {row['baseline']}: {row['mean_diff']:+.2f} dB, unadjusted 95 % CI "
            f"{format_interval(row['ci95_low'], row['ci95_high'])} over {_count(row['n_seeds'], 'seed')} "
            f"({row['n_utts']} utterances{f', {row.n_dropped_utts} dropped' if row['n_dropped_utts'] else ''})")
    if row["unpaired_seeds"]:
        text += f"; seeds {row['unpaired_seeds']} have a run on one side only and are left out"
    return f"{text}: {row['reading']}"


def _scenario_line(scenario: str, rows: pd.DataFrame, retained: pd.DataFrame) -> str:
    head = f"- {scenario}"
    info = retained[retained["scenario"] == scenario]
    if not info.empty:
        first = info.iloc[0]
        head += f" (compression {first['compression']:.1f}×"
        head += "" if pd.isna(first["headroom"]) else f"; teacher headroom over `none` {first['headroom']:+.2f} dB"
        head += ")"
    return f"{head}: " + "; ".join(comparison_sentence(row) for _, row in rows.iterrows()) + "."


def cells_section(analysis: Analysis) -> str:
    """cosine against each baseline per scenario × test set: exploratory, unadjusted."""
    comps = analysis.comparisons
    bases = analysis.settings.primary.baselines
    cells = comps[(comps["method"] == analysis.settings.primary.method) & comps["baseline"].isin(bases)
                  & (comps["metric"] == HEADLINE)]
    n_seeds = int(cells["n_seeds"].max()) if len(cells) else 0
    note = (f"Per scenario × test set, {PROPOSED} against each baseline: the per-seed paired difference in "
            f"mean {GAIN} over one utterance set, its mean and unadjusted 95 % t interval over seeds. These "
            f"{_count(len(cells), 'cell')} show where the primary result comes from; no test is applied "
            f"to them, and \"above 0\" / \"below 0\" / \"spans 0\" describe the unadjusted interval only.")
    if n_seeds and n_seeds < MIN_SEEDS_FOR_TEST:
        note += f" With {_count(n_seeds, 'seed')} they are descriptive only."
    blocks = [note]
    for test_set in sorted(analysis.table.loc[analysis.table["kind"] != "input", "test_set"].unique()):
        lines = [f"### {test_set}", "", _teacher_line(test_set, analysis)]
        rows = cells[cells["test_set"] == test_set]
        retained = analysis.retained[analysis.retained["test_set"] == test_set] if len(analysis.retained) else analysis.retained
        lines += [_scenario_line(scen, srows, retained) for scen, srows in rows.groupby("scenario", sort=True)]
        if rows.empty:
            lines.append(f"- no {PROPOSED} students with a baseline to compare on this test set")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def exploratory_section(analysis: Analysis) -> str:
    comps, primary = analysis.comparisons, analysis.settings.primary
    cells = (comps["method"] == primary.method) & comps["baseline"].isin(primary.baselines)
    rows = comps[(comps["family"] == EXPLORATORY) & (comps["metric"] == HEADLINE) & ~cells]
    intro = (f"Other method pairs on {GAIN}, unadjusted: they suggest where to look and decide nothing. "
             f"Other metrics: tables/comparisons.csv.")
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
    config = provenance.get("config") if isinstance(provenance.get("config"), Mapping) else None
    primary = analysis.primary
    sections = [
        "# Knowledge-distillation benchmark: summary",
        opening_paragraph(analysis),
        "## Primary tests (pre-registered, Holm-corrected)",
        primary_markdown(primary, analysis.settings.primary.alpha) if len(primary) else "(none)",
        "Verdicts: each test's interval is taken at the level Holm tested it at, so \"better\" or "
        "\"worse\" appears exactly when that interval excludes 0; \"equivalent\" (checked first) when the "
        "whole interval lies inside the margin (level: ±analysis.equivalence_margin_db; trend: "
        "±analysis.primary.trend_equivalence_margin); otherwise \"not resolved\", with the effects the "
        "interval still allows. The claim is supported against a baseline only if its trend is better "
        f"**and** {PROPOSED}'s lead at the most compressed scenario has a 95 % interval above 0:",
        "\n".join(claim_line(row) for _, row in analysis.claim.iterrows()) or "- (no claim test)",
        power_paragraph(analysis) if len(primary) else "",
        conditions_paragraph(analysis, config),
        budgets_paragraph(analysis.budgets),
        "## Exploratory: retained fraction against compression",
        retained_markdown(analysis.retained),
        "Per test set, the per-seed slopes of the retained gap (unadjusted; the trend test above pools "
        "the test sets):",
        slope_markdown(analysis.slopes) if len(analysis.slopes) else "No slopes (no cosine and baseline students).",
        f"## Exploratory: {PROPOSED} against the baselines per scenario and test set ({GAIN}, unadjusted)",
        cells_section(analysis),
        "## Exploratory: other comparisons", exploratory_section(analysis),
        COMPARISON_LEGEND,
        "## Missing runs", missing_section(analysis.missing),
        "## Models per test set", markdown_tables(analysis.table).rstrip("\n"),
        *(["## Unscorable utterances", unscored] if unscored else []),
        "## Provenance", _provenance(provenance),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def write_summary(analysis: Analysis, out_md: str | os.PathLike, *,
                  provenance: Mapping[str, object], unscored: str = "") -> Path:
    """Write summary.md (see :func:`summary_text`)."""
    return write_text(out_md, summary_text(analysis, provenance=provenance, unscored=unscored))
