"""Students trained side by side (one data pipeline, one teacher forward per batch) equal the
same students trained alone, bit for bit on a CPU: grouping is an execution choice only."""
import pandas as pd
import pytest
import torch

from kdsd.models.io import load_payload
from kdsd.train import loop
from kdsd.train.jobs import StudentJob, distill_student, distill_students, student_job_config
from test_train import data, teacher_file  # noqa: F401  (module fixtures: tiny corpus, teacher)

CFG = {"students": {"scenarios": {"half": {"width_ratio": 0.5}, "quarter": {"width_ratio": 0.25}},
                    "methods": ["none", "sp2step", "cosine", "output"],
                    "train": {"epochs": 3, "batch_size": 4, "segment_s": 0.5, "lr": 0.01,
                              "lr_schedule": "cosine"}},
       "kd": {"cosine": {"kd_weight": 1.0, "projector": "linear"},
              # step2_epochs all: 2 KD epochs, then 3 supervised: 5 epochs where the others train 3
              "sp2step": {"kd_weight": 1.0, "step1_fraction": 0.5, "step2_epochs": "all"},
              "output": {"kd_weight": 10.0}},  # needs the teacher's decoder: full forwards
       "loss": {"mag_weight": 10.0, "power": 0.3}}
GROUP = [("half", "none"), ("half", "sp2step"), ("half", "cosine"), ("quarter", "cosine"),
         ("quarter", "output")]


def _jobs(root):
    return [StudentJob(student_job_config(CFG, sc, m), m, sc, str(root / sc / m)) for sc, m in GROUP]


def _same_model(alone, together):
    a, b = load_payload(alone), load_payload(together)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    strip = lambda history: [{k: v for k, v in h.items() if k != "seconds"} for h in history]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    assert a["budget"] == b["budget"] and a["selected_epoch"] == b["selected_epoch"]


def test_students_trained_together_are_bit_identical_to_students_trained_alone(tmp_path, data,
                                                                                teacher_file):
    train, valid = data[0].path, data[1].path
    together = distill_students(_jobs(tmp_path / "together"), teacher_file, 2, train, valid)
    for (scenario, method), path in zip(GROUP, together):
        alone = distill_student(student_job_config(CFG, scenario, method), teacher_file, method,
                                scenario, 2, train, valid, tmp_path / "alone" / scenario / method)
        _same_model(alone, path)
        assert pd.read_csv(path.parent / "history.csv").shape[0] == (5 if method == "sp2step" else 3)
    budgets = {m: load_payload(p)["budget"] for (_, m), p in zip(GROUP, together)}
    # 8 utterances in batches of 4: 2 steps per epoch; sp2step's teacher runs in step 1 only
    assert budgets["sp2step"] == {"epochs": 5, "kd_epochs": 2, "optimizer_steps": 10, "teacher_forwards": 4}
    assert budgets["cosine"] == {"epochs": 3, "kd_epochs": 3, "optimizer_steps": 6, "teacher_forwards": 6}
    assert budgets["none"]["teacher_forwards"] == 0


def test_a_group_runs_the_teacher_once_per_batch_and_input(tmp_path, data, teacher_file, monkeypatch):
    forwards = []
    real = loop.SharedTeacher.__call__

    def counting(self, method, wave):
        key = (id(method.teacher), id(wave))
        forwards.append(key not in self.cache)
        return real(self, method, wave)

    monkeypatch.setattr(loop.SharedTeacher, "__call__", counting)
    distill_students(_jobs(tmp_path), teacher_file, 1, data[0].path, data[1].path)
    # per batch: epochs 1-2 ask 4 KD members (sp2step step 1, 2 cosine, output), epoch 3 asks 3
    # (sp2step is supervised), epochs 4-5 none (sp2step alone, supervised): one forward a batch
    assert len(forwards) == 2 * 4 + 2 * 4 + 2 * 3
    assert sum(forwards) == 2 * 3


def test_a_killed_group_resumes_each_member_where_it_stopped(tmp_path, data, teacher_file, monkeypatch):
    jobs = _jobs(tmp_path / "resumed")
    real_end = loop._end_epoch
    ended = []

    def stop_after_four(run, *args):
        real_end(run, *args)
        ended.append(run.member.out_dir)
        if len(ended) == 7:  # epoch 2 finished for two members only
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_end_epoch", stop_after_four)
    with pytest.raises(KeyboardInterrupt):
        distill_students(jobs, teacher_file, 3, data[0].path, data[1].path)
    monkeypatch.setattr(loop, "_end_epoch", real_end)
    resumed = distill_students(jobs, teacher_file, 3, data[0].path, data[1].path)
    fresh = distill_students(_jobs(tmp_path / "fresh"), teacher_file, 3, data[0].path, data[1].path)
    for a, b in zip(fresh, resumed):
        _same_model(a, b)


# --- which students join a group (the DAG's side, kdsd/train/groups.py) --------------------------
def test_groups_hold_students_by_seed_scenario_or_alone():
    from kdsd.train.groups import student_groups

    students = [(sc, m, s) for s in (1, 2) for sc in ("a", "b") for m in ("none", "cosine")]
    assert {k: len(v) for k, v in student_groups(students, "seed").items()} == {"seed1": 4, "seed2": 4}
    assert list(student_groups(students, "scenario_seed")) == ["a_seed1", "b_seed1", "a_seed2", "b_seed2"]
    assert len(student_groups(students, "student")) == 8
    with pytest.raises(ValueError, match="train_together"):
        student_groups(students, "method")


def test_a_student_is_current_only_with_its_own_job_record_and_a_newer_model(tmp_path):
    import os

    from kdsd.train.groups import student_is_current, write_job_record

    job = {"config": {"students": {"train": {"epochs": 5}}}, "seed": 1, "upstream": {"teacher": {"w": 8}}}
    teacher = tmp_path / "teacher.pt"
    teacher.write_bytes(b"t")
    folder = tmp_path / "student"
    folder.mkdir()
    assert not student_is_current(folder, job, teacher)  # nothing trained yet
    (folder / "model.pt").write_bytes(b"m")
    (folder / "history.csv").write_text("epoch\n1\n")
    assert not student_is_current(folder, job, teacher)  # a model without its record: unfinished
    write_job_record(folder, job)
    assert student_is_current(folder, job, teacher)
    assert not student_is_current(folder, {**job, "seed": 2}, teacher)
    assert not student_is_current(folder, {**job, "upstream": {"teacher": {"w": 16}}}, teacher)
    later = (folder / "model.pt").stat().st_mtime + 10
    os.utime(teacher, (later, later))  # the teacher was retrained after the student
    assert not student_is_current(folder, job, teacher)


def test_students_take_their_scenarios_timing_and_keep_their_budgets(tmp_path):
    """Training jobs write untimed cost records; one timing per scenario fills their RTFs."""
    import json

    from kdsd.analysis.pipeline import load_costs

    nan = float("nan")
    records = {
        "a.json": {"model": "students/w/none/seed1", "kind": "student", "scenario": "w", "method": "none",
                   "rtf_1thread": nan, "rtf_onnx_1thread": nan, "optimizer_steps": 300},
        "b.json": {"model": "students/w/cosine/seed2", "kind": "student", "scenario": "w", "method": "cosine",
                   "rtf_1thread": nan, "rtf_onnx_1thread": nan, "optimizer_steps": 300},
        "c.json": {"model": "students/v/none/seed1", "kind": "student", "scenario": "v", "method": "none",
                   "rtf_1thread": nan, "rtf_onnx_1thread": nan, "optimizer_steps": 420},
        "t.json": {"model": "teacher", "kind": "teacher", "scenario": "teacher", "method": "teacher",
                   "rtf_1thread": 0.02, "rtf_onnx_1thread": 0.01},
        "w.json": {"kind": "scenario_timing", "scenario": "w", "rtf_1thread": 0.004, "rtf_onnx_1thread": 0.002},
    }
    for name, record in records.items():
        (tmp_path / name).write_text(json.dumps(record))
    costs = load_costs(sorted(tmp_path.glob("*.json"))).set_index("model")
    assert "scenario_timing" not in set(costs.kind) and len(costs) == 4
    assert costs.loc["students/w/none/seed1", "rtf_1thread"] == 0.004
    assert costs.loc["students/w/cosine/seed2", "rtf_onnx_1thread"] == 0.002
    assert costs.loc["teacher", "rtf_1thread"] == 0.02  # its own timing, untouched
    assert pd.isna(costs.loc["students/v/none/seed1", "rtf_1thread"])  # no timing for v: stays NaN
    assert costs.loc["students/v/none/seed1", "optimizer_steps"] == 420
