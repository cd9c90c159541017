"""Scoring cost benchmark: CPU seconds per student when a group of students is scored in one job.

Each measurement runs ``kdsd score-group`` as the DAG does (a fresh process, one thread) and
takes the CPU time the process used (user + system, its start-up included), the median over
``repeats`` runs. It prints, per group and metric tier, the job's CPU-s and the per-student share,
and the group's first student scored alone (a group of one: the fixed cost of a job plus one
student). Trained students can be given; otherwise random-weight students of one seed of the
preset (every run scenario × method) stand in, grouped as ``students.train_together`` would
group them (their cost does not depend on the weights). Students of one architecture in a group
share oneDNN's per-shape set-up of each utterance, so mixed groups cost a little more per
student than groups of one width. Prints figures: speed targets belong in
benchmarks, not in timed tests.
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from kdsd.corpus.manifest import read_manifest
from kdsd.errors import KdsdError
from kdsd.metrics.scoring import score_input

TIERS = ("primary", "core")


def bench_scoring(manifests: list, models: list | None = None, grouping: str | None = None,
                  tiers=TIERS, repeats: int = 3, limit: int | None = None, preset: str = "default") -> list[dict]:
    """Rows of ``group, tier, students, utterances, job_cpu_s, per_student_cpu_s, alone_cpu_s,
    wall_s``: ``models`` (model.pt files) as one group, or the random-weight students of one
    seed of ``preset`` in the groups of ``grouping`` (default: the preset's ``train_together``)."""
    with tempfile.TemporaryDirectory(prefix="kdsd-bench-scoring-") as tmp:
        tmp = Path(tmp)
        manifests = [_limited(Path(m), limit, tmp / f"manifest{i}.csv") for i, m in enumerate(manifests)]
        utterances = sum(len(read_manifest(m)) for m in manifests)
        inputs = score_input(manifests, [tmp / f"input{i}.csv" for i in range(len(manifests))], tier="primary")
        groups = {"given": [Path(m) for m in models]} if models else _random_groups(preset, grouping, tmp)
        rows = []
        for name, paths in groups.items():
            for tier in tiers:
                cpu, wall = _median_job(paths, tier, manifests, inputs, tmp, repeats)
                alone = cpu if len(paths) == 1 else _median_job(paths[:1], tier, manifests, inputs, tmp, repeats)[0]
                rows.append({"group": name, "tier": tier, "students": len(paths), "utterances": utterances,
                             "job_cpu_s": cpu, "per_student_cpu_s": cpu / len(paths), "alone_cpu_s": alone,
                             "wall_s": wall})
        return rows


def print_bench(rows: list[dict], repeats: int) -> None:
    print(f"kdsd bench-scoring: CPU seconds of `kdsd score-group` (one thread, start-up included; "
          f"median of {repeats}) on {rows[0]['utterances']} utterances")
    print(f"{'group':<18} {'tier':<8} {'students':>8} {'job CPU-s':>10} {'per student':>12} "
          f"{'alone':>8} {'wall s':>8}")
    for r in rows:
        print(f"{r['group']:<18} {r['tier']:<8} {r['students']:>8} {r['job_cpu_s']:>10.1f} "
              f"{r['per_student_cpu_s']:>12.2f} {r['alone_cpu_s']:>8.1f} {r['wall_s']:>8.1f}")


def _limited(manifest: Path, limit: int | None, out: Path) -> Path:
    """The manifest's first ``limit`` rows, paths made absolute (all of it without a limit)."""
    if limit is None:
        return manifest
    table = read_manifest(manifest).head(limit)
    for column in ("clean_path", "noisy_path"):
        table[column] = [str((manifest.parent / p).resolve()) for p in table[column]]
    table.to_csv(out, index=False)
    return out


def _random_groups(preset: str, grouping: str | None, folder: Path) -> dict[str, list[Path]]:
    """Random-weight students of one seed of ``preset`` (every run scenario × method), saved as
    the DAG saves them, by group (``kdsd.train.groups``: seed, scenario_seed or student)."""
    import torch

    from kdsd.bench import preset_config
    from kdsd.models.io import save_model
    from kdsd.models.unet import UNetDAE, count_parameters
    from kdsd.train.groups import student_groups
    from kdsd.train.jobs import run_scenarios, student_args

    config = preset_config(preset)
    students = [(sc, m, 1) for sc in run_scenarios(config["students"]) for m in config["students"]["methods"]]
    groups = {}
    for name, members in student_groups(students, grouping or config["students"]["train_together"]).items():
        groups[name] = []
        for k, (scenario, method, seed) in enumerate(members):
            torch.manual_seed(k)
            model = UNetDAE(**student_args(config["teacher"]["model"], config["students"]["scenarios"][scenario]))
            groups[name].append(save_model(
                folder / "models" / scenario / method / "model.pt", model, config={}, seed=seed, history=[],
                extra={"role": "student", "method": method, "scenario": scenario,
                       "params": count_parameters(model)}))
    return groups


def _median_job(models: list[Path], tier: str, manifests: list, inputs: list, folder: Path,
                repeats: int) -> tuple[float, float]:
    """Median (CPU-s, wall-s) of a `kdsd score-group` process scoring ``models`` at ``tier``."""
    specs = [{"model": str(path), "name": f"bench/m{k}", "tier": tier,
              "out": [str(folder / "scores" / f"m{k}" / f"{i}.csv") for i in range(len(manifests))]}
             for k, path in enumerate(models)]
    command = [sys.executable, "-m", "kdsd.cli", "score-group", "--models-json", json.dumps(specs),
               "--manifest", *map(str, manifests), "--input-scores", *map(str, inputs)]
    cpus, walls = [], []
    for _ in range(repeats):
        before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise KdsdError(f"bench-scoring: kdsd score-group failed: {done.stderr.strip()[-500:]}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        walls.append(time.perf_counter() - started)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    _check_tables(specs, len(manifests))
    return statistics.median(cpus), statistics.median(walls)


def _check_tables(specs: list[dict], test_sets: int) -> None:
    """Each measured job wrote every table (a job that skipped work would time nothing)."""
    for spec in specs:
        for path in spec["out"][:test_sets]:
            if pd.read_csv(path).empty:
                raise KdsdError(f"bench-scoring: {path} is empty")
