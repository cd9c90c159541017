"""The two training jobs of the DAG: train the teacher, distill a group of students side by side.

Both read the resolved config sections they need, train with :func:`kdsd.train.loop.fit_together`
and write, per model, ``model.pt`` (deployable: student only, with its training budget) and
``history.csv`` into its output folder. A student trained in a group is the student trained alone.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kdsd.atomic import write_csv
from kdsd.distill import get_method, load_method_files
from kdsd.distill.variants import related_methods, resolve, train_options
from kdsd.errors import KdsdError
from kdsd.losses import SupervisedLoss
from kdsd.models.io import load_model, save_model
from kdsd.models.unet import UNetDAE, count_parameters
from kdsd.train.data import PairSet
from kdsd.train.groups import run_scenarios, run_students  # noqa: F401  (run_scenarios: callers' import)
from kdsd.train.loop import Member, TrainSettings, fit_together, seed_everything


def student_args(teacher_args: dict, scenario: dict) -> dict:
    """Constructor args of a student from the teacher's and a mismatch scenario."""
    args = dict(teacher_args)
    args["width"] = max(1, round(teacher_args["width"] * scenario.get("width_ratio", 1.0)))
    args["depth"] = teacher_args["depth"] + scenario.get("depth_delta", 0)
    args["block"] = scenario.get("block", teacher_args["block"])
    if scenario.get("causal"):  # kdsd.models: time convolutions see only past frames
        args["causal"] = True
    if args["depth"] < 1:
        raise KdsdError(f"scenario {scenario}: student depth {args['depth']} < 1")
    return args


def train_teacher(cfg: dict, train_manifest: str, valid_manifest: str, out_dir: str) -> Path:
    """``cfg``: the resolved ``teacher`` and ``loss`` config sections."""
    seed = cfg["teacher"]["seed"]
    seed_everything(seed)
    model = UNetDAE(**cfg["teacher"]["model"])
    method = get_method("none")(model, None, SupervisedLoss(**cfg["loss"]))
    return _fit_and_save(method, cfg["teacher"]["train"], train_manifest, valid_manifest, out_dir,
                         seed, cfg, extra={"role": "teacher", "method": "teacher", "scenario": "teacher"})


def distill_student(cfg: dict, teacher_path: str, method_name: str, scenario_name: str, seed: int,
                    train_manifest: str, valid_manifest: str, out_dir: str) -> Path:
    """``cfg``: the resolved ``students``, ``kd`` and ``loss`` config sections.

    ``method_name`` is a registered method or a named variant (``kd.<name>.method``); the model
    records it as ``method`` and the registered method behind it as ``base_method``.
    """
    job = StudentJob(cfg, method_name, scenario_name, out_dir, seed, str(teacher_path))
    return distill_students([job], train_manifest, valid_manifest)[0]


@dataclass
class StudentJob:
    """One student of a training group: its job config (:func:`student_job_config`), method,
    scenario, output folder, seed and the teacher it distils from."""
    cfg: dict
    method: str
    scenario: str
    out_dir: str
    seed: int
    teacher: str


def distill_students(jobs: list[StudentJob], train_manifest: str, valid_manifest: str) -> list[Path]:
    """Train the students of ``jobs`` side by side (any seeds, each with its own teacher); each
    writes the ``model.pt`` and ``history.csv`` it would write trained alone, bit for bit on a CPU."""
    teachers = {path: load_model(path)[0] for path in dict.fromkeys(job.teacher for job in jobs)}
    members, extras, settings = [], [], []
    for job in jobs:
        teacher = teachers[job.teacher]
        seed_everything(job.seed)  # each student starts from the weights it would get alone
        method, base = build_method(job.cfg, teacher, job.method, job.scenario)
        own = member_train_settings(job.cfg, teacher, job.method, job.scenario)
        extra = {"role": "student", "method": job.method, "base_method": base, "scenario": job.scenario,
                 "kd_options": resolve(job.cfg.get("kd", {}), job.method)[1],
                 "train_options": train_options(job.cfg.get("kd", {}), job.method),
                 "teacher": str(job.teacher), "adapter_params": method.adapter_parameter_count(),
                 "teacher_params": count_parameters(teacher)}
        members.append(Member(method, Path(job.out_dir), _fingerprint(job.cfg, job.seed, extra), job.seed,
                              TrainSettings(**own)))
        extras.append(extra)
        settings.append(own)
    train, valid = PairSet(train_manifest), PairSet(valid_manifest)
    results = fit_together(members, train, valid, members[0].settings, jobs[0].seed)
    return [_save(member, best_state, history, train, job.cfg, job.seed, extra, own)
            for member, (best_state, history), job, extra, own in zip(members, results, jobs, extras, settings)]


def member_train_settings(cfg: dict, teacher, method_name: str, scenario_name: str) -> dict:
    """``students.train`` as one student trains with it: its ``kd.<name>.train`` block applied
    (``lr``; ``epochs_of``: the epochs that method's schedule takes for the configured ones)."""
    settings = dict(cfg["students"]["train"])
    overrides = train_options(cfg.get("kd", {}), method_name)
    if "lr" in overrides:
        settings["lr"] = overrides["lr"]
    if overrides.get("epochs_of"):
        other, _ = build_method(cfg, teacher, overrides["epochs_of"], scenario_name)
        settings["epochs"] = other.schedule_epochs(settings["epochs"])
    return settings


def build_method(cfg: dict, teacher, method_name: str, scenario_name: str):
    """The KD method (with a freshly initialised student) of one student job, and its base name."""
    scenarios = cfg["students"]["scenarios"]
    if scenario_name not in scenarios:
        raise KdsdError(f"unknown scenario {scenario_name!r}; valid: {', '.join(scenarios)}")
    load_method_files(cfg["students"].get("method_files", []))
    base, options = resolve(cfg.get("kd", {}), method_name)
    student = UNetDAE(**student_args(teacher.args, scenarios[scenario_name]))
    try:
        method = get_method(base)(student, teacher, SupervisedLoss(**cfg["loss"]), **options)
    except TypeError as exc:  # a user method's constructor refusing its options
        raise KdsdError(f"kd.{method_name}: {exc}") from None
    return method, base


def student_job_config(cfg: dict, scenario_name: str, method_name: str) -> dict:
    """The config one student job reads: its scenario, its method's ``kd`` entry (and a variant's
    base entry), the students' training settings, method files and the loss.

    A job gets nothing else, so its Snakemake params and its resume fingerprint stay the same
    when other methods, seeds or scenarios join the config: adding them trains only the new
    students instead of every one.
    """
    students, kd = cfg["students"], cfg.get("kd", {})
    names = sorted(related_methods(kd, method_name) & set(kd))
    return {"students": {"train": students["train"],
                         "scenarios": {scenario_name: _job_scenario(students["scenarios"][scenario_name])},
                         "method_files": students.get("method_files", [])},
            "kd": {name: kd[name] for name in names},
            "loss": cfg["loss"]}


def _job_scenario(scenario: dict) -> dict:
    """A scenario as its job sees it: ``causal: false`` (the schema default) is left out, so the
    params and fingerprints of students trained before the option existed stay the same."""
    return {key: value for key, value in scenario.items() if not (key == "causal" and value is False)}


def check_students(cfg: dict) -> None:
    """Build every method × scenario of the config on an untrained teacher, before any job runs:
    unknown names, options and shape clashes (e.g. projector ``none`` across channel counts)
    stop the DAG at parse time with the config key named."""
    teacher = UNetDAE(**cfg["teacher"]["model"])
    for scenario_name, method_name, _ in run_students({**cfg["students"], "seeds": [0]}):
        try:
            build_method(cfg, teacher, method_name, scenario_name)
            member_train_settings(cfg, teacher, method_name, scenario_name)
        except KdsdError as exc:
            message = str(exc)
            if not message.startswith(("kd.", "students.")):
                message = f"kd.{method_name} (scenario {scenario_name}): {message}"
            raise KdsdError(message) from None


def _fit_and_save(method, train_cfg: dict, train_manifest, valid_manifest, out_dir, seed, cfg, extra):
    train, valid = PairSet(train_manifest), PairSet(valid_manifest)
    member = Member(method, Path(out_dir), _fingerprint(cfg, seed, extra))
    best_state, history = fit_together([member], train, valid, TrainSettings(**train_cfg), seed)[0]
    return _save(member, best_state, history, train, cfg, seed, extra, train_cfg)


def _fingerprint(cfg: dict, seed: int, extra: dict) -> str:
    """Identifies a job's configuration: a checkpoint written under another is not resumed."""
    return hashlib.sha256(json.dumps([cfg, seed, extra], sort_keys=True, default=str).encode()).hexdigest()


def _save(member: Member, best_state: dict, history: list[dict], train: PairSet, cfg: dict, seed: int,
          extra: dict, train_cfg: dict) -> Path:
    """Write ``model.pt`` (best weights, config, history, budget) and ``history.csv``; drop the
    checkpoint the finished model supersedes."""
    student = member.method.student.cpu()
    student.load_state_dict(best_state)
    write_csv(pd.DataFrame(history), member.out_dir / "history.csv")
    extra = {**extra, "params": count_parameters(student), "train_seconds": train.seconds(),
             "selected_epoch": selected_epoch(history),
             "budget": training_budget(history, len(train), train_cfg["batch_size"])}
    path = save_model(member.out_dir / "model.pt", student, config=cfg, seed=seed, history=history,
                      extra=extra)
    (member.out_dir / "checkpoint.pt").unlink(missing_ok=True)
    return path


def training_budget(history: list[dict], n_train: int, batch_size: int) -> dict[str, int]:
    """What a model's training cost, from its history: epochs, optimiser steps and the batches
    that ran a teacher forward (KD weight ≠ 0), whether or not the forward was shared."""
    steps_per_epoch = math.ceil(n_train / batch_size)
    kd_epochs = sum(1 for h in history if h.get("w_kd", 0) != 0)
    return {"epochs": len(history), "kd_epochs": kd_epochs,
            "optimizer_steps": len(history) * steps_per_epoch,
            "teacher_forwards": kd_epochs * steps_per_epoch}


def selected_epoch(history: list[dict]) -> int:
    """The 1-based epoch whose weights were kept (the last one that improved on `valid`)."""
    return max((h["epoch"] for h in history if h["best"]), default=0)
