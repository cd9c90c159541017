"""Where a run's time went: Snakemake's benchmark files summed per rule family.

Every rule writes ``results/benchmarks/<path>.tsv`` (wall seconds ``s`` and ``cpu_time``). A
family is the benchmark path up to the kind of model it concerns — ``models/teacher``,
``models/students``, ``scores/input``, ``scores/students``, ``scores/references``, ``cost/...``
— or its first component otherwise (``corpus``, ``examples``, ``report`` ...).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from kdsd.atomic import write_csv
from kdsd.errors import KdsdError

PER_MODEL_KIND = ("models", "scores", "cost")


def rule_family(relative: Path) -> str:
    parts = relative.with_suffix("").parts
    if parts[0] in PER_MODEL_KIND and len(parts) > 1:
        return f"{parts[0]}/{parts[1]}"
    return parts[0]


def runtime_table(benchmark_dir: str | os.PathLike) -> pd.DataFrame:
    """Per family: jobs, wall and CPU seconds and their shares of the run's totals."""
    root = Path(benchmark_dir)
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        bench = pd.read_csv(path, sep="\t")
        if bench.empty or not {"s", "cpu_time"} <= set(bench.columns):
            raise KdsdError(f"{path}: not a Snakemake benchmark file (needs columns s, cpu_time)")
        rows.append({"family": rule_family(path.relative_to(root)),
                     "wall_s": float(bench["s"].iloc[-1]), "cpu_s": float(bench["cpu_time"].iloc[-1])})
    if not rows:
        raise KdsdError(f"{root}: no benchmark files")
    jobs = pd.DataFrame(rows)
    table = jobs.groupby("family").agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"),
                                       cpu_s=("cpu_s", "sum")).reset_index()
    table["wall_share"] = table["wall_s"] / table["wall_s"].sum()
    table["cpu_share"] = table["cpu_s"] / table["cpu_s"].sum()
    table = table.sort_values("cpu_s", ascending=False, ignore_index=True)
    total = {"family": "total", "jobs": table["jobs"].sum(), "wall_s": table["wall_s"].sum(),
             "cpu_s": table["cpu_s"].sum(), "wall_share": 1.0, "cpu_share": 1.0}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True).round(
        {"wall_s": 1, "cpu_s": 1, "wall_share": 4, "cpu_share": 4})


def write_runtime(benchmark_dir, out_csv) -> None:
    write_csv(runtime_table(benchmark_dir), out_csv)
