"""summary.md: the four pre-registered primary tests first (with their own intervals, power and
pairing), the pre-registered transfer question, what they are conditional on and the budgets, then
everything exploratory, labelled so. Every sentence is generated from the numbers printed beside it."""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kdsd.analysis.budgets import unequal_budgets
from kdsd.analysis.power import SD_CI_LEVEL, format_seed_count
from kdsd.analysis.primary import (
    LEVEL, REVERSED, STILL_BEHIND, SUPPORTED, TREND_ONLY, WITHIN_MARGIN, lead_level)
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
    """Everything the report states: the primary family and the claim, the transfer family, the
    model table, the exploratory comparisons, retained fractions and per-test-set slopes, budgets
    and budget controls, missing runs, and which teacher seeds were scored."""

    table: pd.DataFrame
    comparisons: pd.DataFrame
    runs: pd.DataFrame  # one row per student run: gains, compression, retained fraction
    retained: pd.DataFrame
    slopes: pd.DataFrame
    missing: pd.DataFrame
    primary: pd.DataFrame = field(default_factory=pd.DataFrame)
    claim: pd.DataFrame = field(default_factory=pd.DataFrame)
    transfer: pd.DataFrame = field(default_factory=pd.DataFrame)
    budgets: pd.DataFrame = field(default_factory=pd.DataFrame)
    budget_controls: pd.DataFrame = field(default_factory=pd.DataFrame)
    teacher_seeds: tuple = ()
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


def _interval(row, prefix: str = "decision") -> str:
    scale, unit = _scale(row)
    return format_interval(row[f"{prefix}_low"], row[f"{prefix}_high"], 2, scale) + unit


def _decision_name(row) -> str:
    return ("unadjusted 95 % interval" if row["verdict"] == DESCRIPTIVE
            else f"{_level_text(row['decision_level'])} decision interval")


def _pvalues(row) -> str:
    """Holm p, the t-test p and the exact sign-flip p beside it, and whether the latter could
    have reached the level Holm tested this test at."""
    text = (f"Holm p = {format_pvalue(row['p_holm'])}; t-test p = {format_pvalue(row['p'])}, exact sign-flip p = "
            f"{format_pvalue(row['p_signflip'])}")
    level = 1 - row["decision_level"]
    if pd.notna(row["p_signflip_floor"]) and row["p_signflip_floor"] > level:
        text += (f", which with {_count(len(row['per_seed'].split()), 'seed')} cannot go below "
                 f"{row['p_signflip_floor']:.2g}, above this test's Holm level {level:.3g}")
    return text


def within_text(row) -> str:
    """"equivalent within ±0.20 dB" (level) or "within ±0.47 pp per doubling" (trend): what a
    TOST shows, never "no trend"."""
    return ("equivalent within ±" if row["test"] == LEVEL else "within ±") + _magnitude(row, row["margin"])


def primary_sentence(row: pd.Series) -> str:
    """One primary test in words that say exactly what its intervals and p-values say."""
    name = f"{row['test']} against `{row['baseline']}`"
    verdict = row["verdict"]
    if row["status"] != "ok" and verdict != DESCRIPTIVE:
        return f"{name}: {row['status']}"
    if verdict == DESCRIPTIVE:
        return (f"{name}: descriptive only ({_count(row['n_seeds'], 'complete seed')}; a test needs ≥ "
                f"{MIN_SEEDS_FOR_TEST}): {_value(row, row['estimate'])}, {_decision_name(row)} {_interval(row)}")
    decision = f"{_decision_name(row)} {_interval(row)}"
    if verdict == EQUIVALENT:
        return (f"{name}: **{within_text(row)}**: the whole {_level_text(row['tost_level'])} TOST interval "
                f"{_interval(row, 'tost')} lies inside the margin (TOST p = {format_pvalue(row['p_tost'])}; "
                f"estimate {_value(row, row['estimate'])}; {decision}; {_pvalues(row)})")
    if verdict in (BETTER, WORSE):
        return f"{name}: **{PROPOSED} {verdict}**, {_value(row, row['estimate'])}, {decision}, {_pvalues(row)}"
    return (f"{name}: **not resolved**: effects from {_value(row, row['decision_low'])} to "
            f"{_value(row, row['decision_high'])} remain possible ({decision}; {_pvalues(row)}; estimate "
            f"{_value(row, row['estimate'])}); this is not evidence of no effect")


CLAIM_WORDS = {
    SUPPORTED: "supported",
    STILL_BEHIND: "not supported: the gap narrows with compression, but cosine is still behind at the most compressed scenario",
    TREND_ONLY: "not shown: the gap narrows with compression, but cosine is not shown ahead at the most compressed scenario",
    REVERSED: "contradicted: cosine's gap shrinks with compression",
    NOT_RESOLVED: "not resolved (the trend test could not decide)",
    DESCRIPTIVE: "not testable with fewer than 3 seeds",
}


def _trend_within(margin: float) -> str:
    return f"within ±{100 * margin:.2f} pp per doubling"


def claim_words(row: pd.Series) -> str:
    if row["claim"] == WITHIN_MARGIN:
        return f"not supported: the trend lies {_trend_within(row['trend_margin'])}"
    return CLAIM_WORDS.get(row["claim"], row["claim"])


def claim_line(row: pd.Series) -> str:
    lead = (f"lead at the most compressed scenario (`{row['most_compressed']}`) {row['lead_db']:+.2f} dB, "
            f"{_level_text(row['lead_level'])} interval {format_interval(row['lead_low'], row['lead_high'])} "
            f"over {_count(row['lead_n_seeds'], 'seed')}") if pd.notna(row["lead_db"]) else "no lead measured"
    trend = _trend_within(row["trend_margin"]) if row["trend_verdict"] == EQUIVALENT else row["trend_verdict"]
    return f"- against `{row['baseline']}`: trend {trend}; {lead} → **{claim_words(row)}**"


def opening_paragraph(analysis: Analysis) -> str:
    """What was asked (pre-registered), how it was tested, and what this run found."""
    primary, settings = analysis.primary, analysis.settings.primary
    bases = " and ".join(f"`{b}`" for b in settings.baselines)
    m = max(1, len(primary))
    transfer = analysis.settings.transfer_test_sets
    verb = "answers" if len(transfer) == 1 else "answer"
    kept = f"; {', '.join(f'`{t}`' for t in transfer)} {verb} the transfer question below" if transfer else ""
    question = (f"Primary question (pre-registered in `analysis.primary`): do `{settings.method}` students "
                f"beat {bases} students on {GAIN} averaged over every scenario and test set (**level**{kept}), "
                f"and does the lead grow with compression (**trend**, the paper's claim: the gap in retained "
                f"fraction of the teacher's {GAIN} per doubling of compression)? The training seed is the "
                f"unit; {_count(len(primary), 'test')}, Holm-corrected at α = {settings.alpha:g}, each "
                f"with an equivalence test (TOST) at α/{m} = {settings.alpha / m:.4g}.")
    if primary.empty:
        return question + f" This run has no `{settings.method}` students with a baseline: **Verdict: not testable.**"
    found = "\n".join(f"- {primary_sentence(row)}." for _, row in primary.iterrows())
    claims = "; ".join(f"against `{r['baseline']}` {claim_words(r)}" for _, r in analysis.claim.iterrows())
    return (f"{question} **Verdict on the claim: {claims or 'not testable'}.** The "
            f"{_count(len(primary), 'test')}:\n\n{found}"
            + budget_caveat(analysis.budgets, settings.method, settings.baselines))


def budget_caveat(budgets: pd.DataFrame, method: str, baselines) -> str:
    """A line per baseline whose students train a different number of epochs than ``method``'s."""
    epochs = budgets.groupby("method")["epochs"].max() if len(budgets) else pd.Series(dtype=int)
    lines = [f"\n- Unequal budgets: `{base}` students train {epochs[base]} epochs, `{method}` students "
             f"{epochs[method]}: the comparison with `{base}` compares methods and budgets together."
             for base in baselines if {base, method} <= set(epochs.index) and epochs[base] != epochs[method]]
    return "".join(lines)


def _seeds_range(row) -> str:
    """'8–27': the seeds the target needs at either end of the seed SD's 80 % interval."""
    return f"{format_seed_count(row['seeds_for_target_low'])}–{format_seed_count(row['seeds_for_target_high'])}"


def _seeds_for_target(row) -> str:
    """'11 (8–27)': the point figure and its range over the seed SD's 80 % interval."""
    point = format_seed_count(row["seeds_for_target"])
    return point if point == "–" else f"{point} ({_seeds_range(row)})"


def verdict_label(row) -> str:
    if row["status"] != "ok" and row["verdict"] != DESCRIPTIVE:
        return row["status"]
    return within_text(row) if row["verdict"] == EQUIVALENT else row["verdict"]


def family_markdown(family: pd.DataFrame) -> str:
    """A family's tests as a table: estimate, decision interval, the t-test, sign-flip and Holm
    p-values, the TOST interval, the verdict, and the power figures."""
    m = max(1, int(family["p"].notna().sum()))
    head = ["Baseline", "Test", "Seeds", "Estimate", "Decision interval (level)", "p (t-test)", "p (sign-flip)",
            "p (Holm)", "TOST interval (level)", "Verdict", "Seed SD [80 % interval]", f"MDE (80 %, α/{m})",
            "Seeds for target (80 % range) [target]"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---:|---:|---|---:|---:|---:|---|---|---:|---:|---:|"]
    for _, row in family.iterrows():
        tost = "–" if pd.isna(row["tost_level"]) else f"{_interval(row, 'tost')} ({_level_text(row['tost_level'])})"
        sd_range = format_interval(row["sd_seed_ci80_low"], row["sd_seed_ci80_high"], 2, _scale(row)[0])
        sd_range = sd_range.replace("+", "")  # an SD has no sign
        lines.append("| " + " | ".join([
            f"`{row['baseline']}`", row["test"], str(row["n_seeds"]), _value(row, row["estimate"]),
            f"{_interval(row)} ({_level_text(row['decision_level'])})", format_pvalue(row["p"]),
            format_pvalue(row["p_signflip"]), format_pvalue(row["p_holm"]), tost, verdict_label(row),
            f"{_magnitude(row, row['sd_seed'])} {sd_range}", _magnitude(row, row["mde"]),
            f"{_seeds_for_target(row)} [{_magnitude(row, row['target'])}]"]) + " |")
    return "\n".join(lines)


def power_paragraph(analysis: Analysis) -> str:
    primary, settings = analysis.primary, analysis.settings.primary
    m = max(1, int(primary["p"].notna().sum()))
    lines = [f"Power: for each test, the seed SD observed here (and its {100 * SD_CI_LEVEL:.0f} % interval: an SD "
             f"from a few seeds is rough), the smallest effect the test detects with "
             f"{100 * settings.power:.0f} % power at this run's seed count and at level α/{m} = "
             f"{settings.alpha / m:.4g} (the level of Holm's first step, which any test may face), and the "
             f"seeds a {settings.target_effect_db:g} dB effect would need, as a point and over the SD's "
             f"{100 * SD_CI_LEVEL:.0f} % interval (for the trend: cosine's lead changing by "
             f"{settings.target_effect_db:g} dB from the least to the most compressed scenario, as a fraction "
             f"of the teacher's {GAIN} per doubling, with the harmonic mean of the teacher's gain since the gap "
             f"averages ratios). An effect smaller than the MDE may well exist: a \"not resolved\" test is silent "
             f"about it."]
    for _, row in primary.iterrows():
        if pd.isna(row["mde"]):
            continue
        needed = row["seeds_for_target"]
        needed_text = "more than 500 seeds" if math.isinf(needed) else _count(int(needed), "seed")
        lines.append(f"- {row['test']} against `{row['baseline']}`: seed SD {_magnitude(row, row['sd_seed'])} "
                     f"({100 * SD_CI_LEVEL:.0f} % interval {_magnitude(row, row['sd_seed_ci80_low'])} to "
                     f"{_magnitude(row, row['sd_seed_ci80_high'])}); with {_count(row['n_seeds'], 'seed')} the MDE "
                     f"is {_magnitude(row, row['mde'])}; {_magnitude(row, row['target'])} needs {needed_text} "
                     f"({_seeds_range(row)} over the SD's interval).")
    return "\n".join(lines)


def pairing_paragraph(analysis: Analysis) -> str:
    """Per baseline: how well the seeds' level gains pair (common random numbers)."""
    method = analysis.settings.primary.method
    lines = []
    for _, row in analysis.primary[analysis.primary["test"] == LEVEL].iterrows():
        base = row["baseline"]
        if pd.isna(row["sd_seed_method"]):
            lines.append(f"- against `{base}`: fewer than 2 complete seeds, no pairing figures.")
            continue
        unpaired = math.hypot(row["sd_seed_method"], row["sd_seed_baseline"])
        corr = "–" if pd.isna(row["gain_correlation"]) else f"{row['gain_correlation']:+.2f}"
        lines.append(f"- against `{base}`: the seeds' level gains of `{method}` and `{base}` correlate r = {corr} "
                     f"over {_count(row['n_seeds'], 'seed')} (seed SDs {row['sd_seed_method']:.2f} and "
                     f"{row['sd_seed_baseline']:.2f} dB); the seed SD of `{method}` − `{base}` is "
                     f"{row['sd_seed']:.2f} dB, where uncorrelated gains with these SDs would give "
                     f"{unpaired:.2f} dB.")
    if not lines:
        return ""
    return ("Pairing (seeds share initial weights and data order across methods; the higher the correlation "
            f"of the seeds' level gains, the smaller the SD of the difference the level test sees; per seed, the "
            f"level gain is the mean {GAIN} over every scenario × test set of the primary family):\n"
            + "\n".join(lines))


def _verdict_words(row) -> str:
    return f"{verdict_label(row)}, {_value(row, row['estimate'])}"


def transfer_section(analysis: Analysis) -> str:
    """The transfer question: the level verdict on the transfer test sets alone, then one sentence
    comparing it with the primary (synthetic) level verdict."""
    sets, settings = analysis.settings.transfer_test_sets, analysis.settings.primary
    if not sets:
        return "Transfer question: none pre-registered (`analysis.transfer_test_sets` is empty)."
    names = ", ".join(f"`{t}`" for t in sets)
    transfer = analysis.transfer
    if transfer.empty:
        return (f"Transfer question (`analysis.transfer_test_sets`: {names}): this run has no `{settings.method}` "
                f"and baseline scores on those test sets, so it is not answered.")
    m = len(transfer)
    intro = (f"Does the level verdict hold on recorded speech? Pre-registered in `analysis.transfer_test_sets` "
             f"({names}, kept out of the primary family): per baseline, the level of `{settings.method}` − baseline "
             f"on those test sets alone (per seed the mean {GAIN} difference over every scenario × "
             f"{'that test set' if len(sets) == 1 else 'those test sets'}), the seed as unit, Holm over its "
             f"own {_count(m, 'test')} at α = {settings.alpha:g} and a TOST at α/{m}.")
    found = "\n".join(f"- {primary_sentence(row)}." for _, row in transfer.iterrows())
    return "\n\n".join([intro, family_markdown(transfer), found,
                         transfer_comparison(transfer, analysis.primary)])


def transfer_comparison(transfer: pd.DataFrame, primary: pd.DataFrame) -> str:
    """One sentence: per baseline, whether the transfer level verdict agrees with the primary one."""
    synthetic = primary[primary["test"] == LEVEL].set_index("baseline") if len(primary) else pd.DataFrame()
    parts = []
    for _, row in transfer.iterrows():
        base = row["baseline"]
        if base not in synthetic.index:
            parts.append(f"against `{base}` there is no primary level verdict to compare with")
            continue
        other = synthetic.loc[base]
        same = verdict_label(other) == verdict_label(row)
        parts.append(f"against `{base}` it {'agrees' if same else 'differs'} (primary: {_verdict_words(other)}; "
                     f"recorded: {_verdict_words(row)})")
    return "Compared with the primary level verdicts: " + "; ".join(parts) + "."


def conditions_paragraph(analysis: Analysis, config: Mapping | None) -> str:
    """What every verdict is conditional on: the teacher(s), one corpus draw, fixed utterances."""
    config = config or {}
    corpus, teacher = config.get("corpus") or {}, config.get("teacher") or {}
    utts = analysis.runs.groupby("test_set")["n_utts"].max() if len(analysis.runs) else pd.Series(dtype=int)
    sets = ", ".join(f"{t} ({int(n)} utterances)" for t, n in utts.items()) or "no student runs"
    seeds = analysis.teacher_seeds
    if len(seeds) > 1:
        teachers = (f"one teacher per student seed (teacher seeds {', '.join(str(s) for s in seeds)}): each seed "
                    f"distils from its own teacher, so the seed-level unit includes teacher variance")
        whose = "of teachers trained this way"
    else:
        teachers = f"one teacher run (teacher seed {seeds[0] if seeds else teacher.get('seed', 'unknown')})"
        whose = "of this teacher"
    return (f"What these verdicts are conditional on: {teachers}, one corpus draw (corpus seed "
            f"{corpus.get('seed', 'unknown')}, source {corpus.get('source', 'unknown')}) and fixed utterance sets "
            f"({sets}). Seeds vary the students' initial weights and data order"
            f"{' and the teacher' if len(seeds) > 1 else ' only'}, so \"better\" means better students {whose} on "
            f"these conditions; it says nothing about new utterances, new corpora"
            f"{' or other ways of training teachers' if len(seeds) > 1 else ' or new teachers'}.")


def budgets_paragraph(budgets: pd.DataFrame, controls: pd.DataFrame | None = None) -> str:
    """The budgets table and its note, then one sentence per budget control."""
    sentences = [budget_control_sentence(row) for _, row in (controls if controls is not None else
                                                               pd.DataFrame()).iterrows()]
    return "\n\n".join([budgets_table_text(budgets), *sentences])


def budgets_table_text(budgets: pd.DataFrame) -> str:
    if budgets.empty:
        return "Training budgets: no student histories."
    cols = [c for c in budgets.columns if c not in ("scenario", "method", "control_of")]
    head = "| Scenario | Method | " + " | ".join(c.replace("_", " ") for c in cols) + " |"
    lines = [head, "|---|---|" + "---:|" * len(cols)]
    for _, row in budgets.iterrows():
        cells = ["–" if pd.isna(row[c]) else f"{row[c]:g}" for c in cols]
        method = row["method"] + (f" (budget of {row['control_of']})" if row.get("control_of") else "")
        lines.append(f"| {row['scenario']} | {method} | " + " | ".join(cells) + " |")
    unequal = unequal_budgets(budgets)
    note = ("Every method trains the same number of epochs." if not unequal else
            "Methods train unequal budgets (" + ", ".join(f"`{m}` {e} epochs" for m, e in unequal.items())
            + "): a comparison between them compares methods and budgets together.")
    table = "\n".join(lines)
    return f"Training budgets (epochs per student, medians over seeds; KD epochs run the teacher):\n\n{table}\n\n{note}"


def budget_control_sentence(row: pd.Series) -> str:
    """The budget control's one sentence: exploratory, unadjusted, no verdict."""
    method, control = f"`{row['method']}`", f"`{row['control']}`"
    if row["n_seeds"] == 0:
        return f"Budget control {control} of {method}: no seeds with runs of both, so no comparison."
    return (f"Budget control (exploratory): {method}'s lead over {control} (trained for as many optimiser steps as "
            f"{method}, without KD) is {row['mean_diff']:+.2f} dB, unadjusted 95 % CI "
            f"{format_interval(row['ci95_low'], row['ci95_high'])} over {_count(row['n_seeds'], 'seed')} "
            f"({row['reading']}; per seed, the level over every test set of the primary family in "
            f"{_scenario_list(row['scenarios'])}, where the control ran): it "
            f"suggests how much of {method}'s result is its KD rather than its extra steps, and decides nothing.")


def _scenario_list(scenarios: str) -> str:
    names = [f"`{name}`" for name in str(scenarios).split()]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


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


def verdicts_note(analysis: Analysis) -> str:
    settings = analysis.settings.primary
    m = max(1, len(analysis.primary))
    bases = len(settings.baselines)
    return (f"Verdicts: each test's **decision interval** is taken at the level Holm tested it at, so \"better\" "
            f"or \"worse\" appears exactly when that interval excludes 0 (Holm p < α). Equivalence is its own "
            f"pre-registered test, a TOST at α/{m} = {settings.alpha / m:.4g} (the "
            f"{_level_text(1 - 2 * settings.alpha / m)} TOST interval), read first: \"equivalent within ±X\" when "
            f"that whole interval lies inside the margin (level: ±analysis.equivalence_margin_db; trend: "
            f"±analysis.primary.trend_equivalence_margin_db, converted like the target, at most half of it); "
            f"otherwise \"not resolved\", with the effects the decision interval still allows. Beside each t-test p, "
            f"the exact sign-flip p of the per-seed values (no normality assumed; with n seeds it cannot go below "
            f"2/2^n: 0.031 with 6 seeds, 0.0078 with 8). The claim is supported against a baseline only if its "
            f"trend is better **and** {PROPOSED}'s lead at the most compressed scenario has a "
            f"{_level_text(lead_level(settings))} interval above 0 (α/{bases}"
            f"{': the headline speaks of every baseline at once' if bases > 1 else ''}):")


def summary_text(analysis: Analysis, *, provenance: Mapping[str, object], unscored: str = "") -> str:
    config = provenance.get("config") if isinstance(provenance.get("config"), Mapping) else None
    primary, settings = analysis.primary, analysis.settings
    controls = dict(settings.budget_controls)
    sections = [
        "# Knowledge-distillation benchmark: summary",
        opening_paragraph(analysis),
        "## Primary tests (pre-registered: Holm-corrected decisions, TOST equivalence)",
        family_markdown(primary) if len(primary) else "(none)",
        verdicts_note(analysis),
        "\n".join(claim_line(row) for _, row in analysis.claim.iterrows()) or "- (no claim test)",
        power_paragraph(analysis) if len(primary) else "",
        pairing_paragraph(analysis) if len(primary) else "",
        "## Transfer question (pre-registered): recorded speech",
        transfer_section(analysis),
        "## What the verdicts rest on",
        conditions_paragraph(analysis, config),
        budgets_paragraph(analysis.budgets, analysis.budget_controls),
        "## Exploratory: retained fraction against compression",
        retained_markdown(analysis.retained, controls),
        "Per test set, the per-seed slopes of the retained gap (unadjusted; the trend test above pools "
        "the test sets of the primary family):",
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
