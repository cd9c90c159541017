"""The report step of the DAG: score tables + histories + costs → tables/, plots/, summary.md."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from kdsd.analysis.budgets import training_budgets
from kdsd.analysis.claim import retained_runs, retained_table, slope_tests, with_retained
from kdsd.analysis.primary import budget_control_table, claim_table, primary_table, transfer_table
from kdsd.analysis.plots import (
    SECONDARY_PLOT_METRICS, plot_claim, plot_improvements, plot_learning_curves, plot_pareto)
from kdsd.analysis.seeds import comparisons, missing_runs
from kdsd.analysis.settings import AnalysisSettings
from kdsd.analysis.stats import load_scores, summary_table
from kdsd.analysis.summary import Analysis, unscored_section, write_summary
from kdsd.analysis.tables import write_tables
from kdsd.atomic import write_csv
from kdsd.provenance import versions

COST_KEYS = ["kind", "method", "scenario"]
COST_COLUMNS = ["macs_per_s", "rtf_1thread", "rtf_onnx_1thread", "latency_ms"]


def model_id(history_path: str | Path) -> str:
    """``results/models/students/w/cosine/seed1/history.csv`` → ``students/w/cosine/seed1``."""
    parts = Path(history_path).parent.parts
    return "/".join(parts[parts.index("models") + 1:]) if "models" in parts else Path(history_path).parent.name


TIMING_COLUMNS = ("rtf_1thread", "rtf_onnx_1thread")


def load_costs(cost_paths) -> pd.DataFrame:
    """Cost records, one per model; a student without timings of its own takes its scenario's
    (``scenario_timing`` records: the students of a scenario share one architecture)."""
    records = [json.loads(Path(p).read_text()) for p in cost_paths]
    timings = {r["scenario"]: r for r in records if r.get("kind") == "scenario_timing"}
    models = [r for r in records if r.get("kind") != "scenario_timing"]
    for record in models:
        timed = timings.get(record.get("scenario")) if record.get("kind") == "student" else None
        for column in TIMING_COLUMNS if timed else ():
            if record.get(column) is None or record[column] != record[column]:  # missing or NaN
                record[column] = timed[column]
    return pd.DataFrame(models)


def with_costs(table: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """Median cost over seeds per model type (seeds share the architecture) joined to the table."""
    columns = [c for c in COST_COLUMNS if c in costs.columns]  # cost records older than a column lack it
    per_model = costs.groupby(COST_KEYS, as_index=False)[columns].median()
    if "causal" in costs.columns:  # one architecture per model type: any seed's flag
        per_model = per_model.merge(costs.groupby(COST_KEYS, as_index=False)["causal"].first(), on=COST_KEYS)
    return table.merge(per_model, on=COST_KEYS, how="left")


def unavailable_references(costs: pd.DataFrame) -> list[str]:
    if "available" not in costs.columns:
        return []
    missing = costs[costs["available"].eq(False)]
    return [f"- reference denoiser `{r.method}` could not run on this platform and is left out: "
            f"{r.reason}" for r in missing.itertuples()]


def analyse(scores: pd.DataFrame, costs: pd.DataFrame, settings: AnalysisSettings,
            history_paths=()) -> Analysis:
    """The primary family and the claim, the model table (with costs, retained fraction, headroom),
    the exploratory comparisons and per-test-set slopes, and each method's training budget."""
    controls = dict(settings.budget_controls)
    runs = retained_runs(scores, settings)
    retained = retained_table(runs, settings)
    budgets = training_budgets(history_paths, costs, controls)
    table = with_retained(with_costs(summary_table(scores, controls), costs), retained)
    table = table.merge(budgets[["scenario", "method", "epochs"]].assign(kind="student"),
                        on=["kind", "scenario", "method"], how="left")
    if "clean_wer" in scores.columns:  # the recogniser's floor: WER of the clean references
        floors = pd.to_numeric(scores["clean_wer"], errors="coerce").groupby(scores["test_set"]).mean()
        table["clean_wer_floor"] = table["test_set"].map(floors)
    primary = primary_table(runs, settings)
    teacher_seeds = tuple(sorted(scores.loc[scores["kind"] == "teacher", "seed"].unique()))
    return Analysis(table=table, comparisons=comparisons(scores, settings), runs=runs, retained=retained,
                    slopes=slope_tests(runs, settings), missing=missing_runs(scores, settings.expected_runs),
                    primary=primary, claim=claim_table(runs, primary, settings),
                    transfer=transfer_table(runs, settings), budgets=budgets,
                    budget_controls=budget_control_table(runs, settings), teacher_seeds=teacher_seeds,
                    settings=settings)


def write_results(score_paths, history_paths, cost_paths, out_dir: str | Path, provenance: dict) -> None:
    out_dir = Path(out_dir)
    settings = AnalysisSettings.from_config(provenance.get("config"))  # a bad setting stops before any work
    scores = load_scores(score_paths)
    costs = load_costs(cost_paths)
    analysis = analyse(scores, costs, settings, history_paths)
    write_tables(analysis.table, out_dir / "tables" / "summary.csv", out_dir / "tables" / "summary.md")
    write_csv(analysis.comparisons, out_dir / "tables" / "comparisons.csv")
    write_csv(analysis.retained, out_dir / "tables" / "retained.csv")
    write_csv(analysis.primary, out_dir / "tables" / "primary.csv")
    write_csv(analysis.claim, out_dir / "tables" / "claim.csv")
    write_csv(analysis.transfer, out_dir / "tables" / "transfer.csv")
    write_csv(analysis.slopes, out_dir / "tables" / "slopes.csv")
    write_csv(analysis.budgets, out_dir / "tables" / "budgets.csv")
    write_csv(costs, out_dir / "tables" / "cost.csv")
    plot_improvements(scores, out_dir / "plots" / "improvements.png")
    plot_improvements(scores, out_dir / "plots" / "improvements_secondary.png", SECONDARY_PLOT_METRICS,
                      headline_first=False)
    plot_pareto(analysis.table, out_dir / "plots" / "pareto.png")
    plot_claim(analysis.runs, analysis.retained, out_dir / "plots" / "claim.png")
    plot_learning_curves({model_id(p): p for p in history_paths}, out_dir / "plots" / "learning_curves.png")
    write_summary(analysis, out_dir / "summary.md", provenance={**versions(), **provenance},
                  unscored="\n".join([unscored_section(scores), *unavailable_references(costs)]))
