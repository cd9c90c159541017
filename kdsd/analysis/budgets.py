"""Each method's training budget, so that a comparison between unequal budgets says so.

From each student's ``history.csv`` (one row per epoch, with its loss weights): epochs trained and
epochs with a teacher forward (KD weight > 0). Where ``tables/cost.csv`` records optimiser steps or
teacher forwards per student, their medians over seeds are shown too.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from kdsd.analysis.stats import method_sort_key

BUDGET_COLUMNS = ["scenario", "method", "control_of", "n_seeds", "epochs", "kd_epochs"]
COST_BUDGETS = ("optimizer_steps", "teacher_forwards")  # recorded by the training jobs, if present


def _student_identity(history_path: str | os.PathLike) -> tuple[str, str] | None:
    """``…/models/students/<scenario>/<method>/seed<k>/history.csv`` → (scenario, method)."""
    parts = Path(history_path).parts
    if "students" not in parts or len(parts) < parts.index("students") + 4:
        return None
    i = parts.index("students")
    return parts[i + 1], parts[i + 2]


def training_budgets(history_paths, costs: pd.DataFrame | None = None,
                     controls: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per scenario × method: the method whose budget it matches if it is a budget control
    (``controls``: {control: method}; "" otherwise), seeds, epochs and KD epochs (medians over
    seeds), plus the cost table's budget columns where it has them."""
    rows = []
    for path in history_paths:
        identity = _student_identity(path)
        if identity is None:
            continue
        history = pd.read_csv(path)
        kd = history["w_kd"] > 0 if "w_kd" in history.columns else pd.Series(False, index=history.index)
        rows.append({"scenario": identity[0], "method": identity[1], "epochs": len(history),
                     "kd_epochs": int(kd.sum())})
    if not rows:
        return pd.DataFrame(columns=BUDGET_COLUMNS)
    runs = pd.DataFrame(rows)
    grouped = runs.groupby(["scenario", "method"], sort=True)
    table = grouped[["epochs", "kd_epochs"]].median().astype(int)
    table.insert(0, "n_seeds", grouped.size())
    table.insert(0, "control_of", [(controls or {}).get(method, "") for _, method in table.index])
    extra = [c for c in COST_BUDGETS if costs is not None and c in costs.columns]
    if extra:
        students = costs[costs["kind"] == "student"]
        table = table.join(students.groupby(["scenario", "method"])[extra].median())
    table = table.reset_index()
    order = table["method"].map(lambda m: method_sort_key(m, controls))
    return table.assign(_order=order).sort_values(["scenario", "_order"], kind="stable").drop(
        columns="_order").reset_index(drop=True)


def unequal_budgets(budgets: pd.DataFrame) -> dict[str, int]:
    """{method: epochs} where methods train for different numbers of epochs (empty if all equal)."""
    per_method = budgets.groupby("method")["epochs"].max()
    return per_method.to_dict() if per_method.nunique() > 1 else {}
