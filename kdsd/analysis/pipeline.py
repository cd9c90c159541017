"""The report step of the DAG: score tables + histories → tables/, plots/, summary.md."""
from __future__ import annotations

from pathlib import Path

from kdsd.analysis.plots import plot_improvements, plot_learning_curves
from kdsd.analysis.stats import load_scores, summary_table
from kdsd.analysis.summary import write_summary
from kdsd.analysis.tables import write_tables
from kdsd.provenance import versions


def model_id(history_path: str | Path) -> str:
    """``results/models/students/w/cosine/seed1/history.csv`` → ``students/w/cosine/seed1``."""
    parts = Path(history_path).parent.parts
    return "/".join(parts[parts.index("models") + 1:]) if "models" in parts else Path(history_path).parent.name


def write_results(score_paths, history_paths, out_dir: str | Path, provenance: dict) -> None:
    out_dir = Path(out_dir)
    scores = load_scores(score_paths)
    table = summary_table(scores)
    write_tables(table, out_dir / "tables" / "summary.csv", out_dir / "tables" / "summary.md")
    plot_improvements(scores, out_dir / "plots" / "improvements.png")
    plot_learning_curves({model_id(p): p for p in history_paths}, out_dir / "plots" / "learning_curves.png")
    write_summary(table, out_dir / "summary.md", provenance={**versions(), **provenance})
