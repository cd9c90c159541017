"""Which students train together, and which are already trained (the DAG's side of grouping).

Students of one seed see the same batches and, when they distil, the same teacher forwards, so
a group of them trains in one process (:func:`kdsd.train.jobs.distill_students`). Grouping is an
execution choice: a student is bit-identical whichever group it trained in.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from kdsd.atomic import atomic_path
from kdsd.errors import KdsdError

GROUPINGS = ("seed", "scenario_seed", "student")


def run_scenarios(students_cfg: dict) -> list[str]:
    """The scenarios this run trains: ``students.run_scenarios``, or all of ``students.scenarios``."""
    defined = list(students_cfg["scenarios"])
    chosen = students_cfg.get("run_scenarios") or defined
    unknown = [name for name in chosen if name not in defined]
    if unknown:
        raise KdsdError(f"students.run_scenarios: {', '.join(unknown)} not in students.scenarios "
                        f"({', '.join(defined)})")
    return chosen


def run_students(students_cfg: dict) -> list[tuple[str, str, int]]:
    """Every ``(scenario, method, seed)`` the run trains: run scenarios × methods × seeds, a method
    listed in ``students.method_scenarios`` in its own scenarios only (e.g. a costly control
    where it matters most)."""
    scenarios = run_scenarios(students_cfg)
    # entries of methods this run does not train are ignored: a preset that changes the methods
    # need not repeat them
    only = {m: chosen for m, chosen in (students_cfg.get("method_scenarios") or {}).items()
            if m in students_cfg["methods"]}
    for method, chosen in only.items():
        unknown = [name for name in chosen if name not in scenarios]
        if unknown:
            raise KdsdError(f"students.method_scenarios.{method}: {', '.join(unknown)} not among the run's "
                            f"scenarios ({', '.join(scenarios)})")
    return [(sc, m, int(s)) for sc in scenarios for m in students_cfg["methods"] if sc in only.get(m, scenarios)
            for s in students_cfg["seeds"]]
JOB_FILE = "job.json"


def group_key(scenario: str, method: str, seed: int, grouping: str) -> str:
    """The group a student trains in: per seed, per scenario × seed, or alone."""
    if grouping == "seed":
        return f"seed{seed}"
    if grouping == "scenario_seed":
        return f"{scenario}_seed{seed}"
    if grouping == "student":
        return f"{scenario}_{method}_seed{seed}"
    raise ValueError(f"students.train_together: {grouping!r}; valid: {', '.join(GROUPINGS)}")


def student_groups(students, grouping: str) -> dict[str, list[tuple]]:
    """``(scenario, method, seed)`` students by group key, in the given order."""
    groups: dict[str, list[tuple]] = {}
    for scenario, method, seed in students:
        groups.setdefault(group_key(scenario, method, seed, grouping), []).append((scenario, method, seed))
    return groups


def write_job_record(out_dir: str | os.PathLike, job: dict) -> Path:
    """``job.json`` beside a finished model: what it was trained with (config, seed, upstream)."""
    path = Path(out_dir) / JOB_FILE
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(job, sort_keys=True, indent=1))
    return path


def record_matches(out_dir: str | os.PathLike, job: dict) -> bool:
    """Whether ``out_dir`` holds a readable ``job.json`` equal to ``job`` (as JSON)."""
    try:
        recorded = json.loads((Path(out_dir) / JOB_FILE).read_text())
    except (OSError, ValueError):
        return False
    return recorded == json.loads(json.dumps(job, sort_keys=True))


def student_is_current(out_dir: str | os.PathLike, job: dict, teacher_model: str | os.PathLike) -> bool:
    """Whether a student folder holds a finished model trained with ``job`` (as written by
    :func:`write_job_record`) and newer than the teacher model (when that exists)."""
    folder = Path(out_dir)
    model = folder / "model.pt"
    if not (model.is_file() and (folder / "history.csv").is_file() and record_matches(folder, job)):
        return False
    teacher = Path(teacher_model)
    return not teacher.is_file() or model.stat().st_mtime >= teacher.stat().st_mtime
