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


def _jobs(root, seed, teacher):
    return [StudentJob(student_job_config(CFG, sc, m), m, sc, str(root / sc / m), seed, str(teacher))
            for sc, m in GROUP]


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
    together = distill_students(_jobs(tmp_path / "together", 2, teacher_file), train, valid)
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
    real = loop.SharedBatch.teacher

    def counting(self, method, wave):
        key = ("teacher", id(method.teacher), id(wave), not method.teacher_encoder_only)
        forwards.append(key not in self.cache)
        return real(self, method, wave)

    monkeypatch.setattr(loop.SharedBatch, "teacher", counting)
    distill_students(_jobs(tmp_path, 1, teacher_file), data[0].path, data[1].path)
    # 2 batches an epoch. sp2step's KD-only step 1 runs first, on batches of its own (2 epochs,
    # 1 member asking); then 3 epochs in which 2 cosine and output ask on the shared batches
    # (sp2step is supervised): per batch, one encoder forward (both cosines) and one whole one
    assert len(forwards) == 2 * 2 * 1 + 3 * 2 * 3
    assert sum(forwards) == 2 * 2 + 3 * 2 * 2


def test_a_killed_group_resumes_each_member_where_it_stopped(tmp_path, data, teacher_file, monkeypatch):
    jobs = _jobs(tmp_path / "resumed", 3, teacher_file)
    real_end = loop._end_epoch
    ended = []

    def stop_after_four(run, *args):
        real_end(run, *args)
        ended.append(run.member.out_dir)
        if len(ended) == 5:  # sp2step's step 1 done, then the first shared epoch for three members only
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_end_epoch", stop_after_four)
    with pytest.raises(KeyboardInterrupt):
        distill_students(jobs, data[0].path, data[1].path)
    monkeypatch.setattr(loop, "_end_epoch", real_end)
    resumed = distill_students(jobs, data[0].path, data[1].path)
    fresh = distill_students(_jobs(tmp_path / "fresh", 3, teacher_file), data[0].path, data[1].path)
    for a, b in zip(fresh, resumed):
        _same_model(a, b)


def test_every_method_sees_the_same_batches_in_its_supervised_epoch_k(tmp_path, data, teacher_file,
                                                                      monkeypatch):
    """Paired design: sp2step's step 2 epoch k trains on none's epoch-k batches (its KD-only step 1
    on batches of its own), and a budget control's first epochs on those too."""
    cfg = {**CFG, "kd": {**CFG["kd"], "none_budget": {"method": "none", "train": {"epochs_of": "sp2step"}}}}
    seen = {}
    real = loop.train_step

    def recording(method, optimiser, noisy, clean, *args, **kwargs):
        seen.setdefault(id(method), (method, []))[1].append(noisy.clone())
        return real(method, optimiser, noisy, clean, *args, **kwargs)

    monkeypatch.setattr(loop, "train_step", recording)
    methods = ["none", "sp2step", "none_budget"]
    jobs = [StudentJob(student_job_config(cfg, "half", m), m, "half", str(tmp_path / m), 4, str(teacher_file))
            for m in methods]
    paths = distill_students(jobs, data[0].path, data[1].path)
    # the two `none` students apart by their step counts (3 and 5 epochs)
    batches = sorted(seen.values(), key=lambda item: (item[0].name, len(item[1])))
    none, budget, sp2step = (b for _, b in batches)
    steps = 2  # 8 utterances in batches of 4
    assert len(none) == 3 * steps and len(sp2step) == 5 * steps and len(budget) == 5 * steps
    for a, b in zip(none, sp2step[2 * steps:]):  # step 2 (epochs 3-5) = none's epochs 1-3
        assert torch.equal(a, b)
    assert not any(torch.equal(a, b) for a, b in zip(none, sp2step[:2 * steps]))  # step 1: its own
    for a, b in zip(none, budget):  # the control trains sp2step's 5 epochs, the first 3 as none's
        assert torch.equal(a, b)
    assert [load_payload(p)["budget"]["optimizer_steps"] for p in paths] == [6, 10, 10]


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


def test_compiled_students_equal_alone_and_eager_ones_to_float_tolerance(tmp_path, data, teacher_file):
    """train.compile: compiled graphs shared by a group's students of one architecture. A student
    trained in a group is still bit-identical to the same student trained alone (static shapes,
    its own teacher path); against eager training it agrees to float tolerance (the fused
    kernels round differently), stated here: first-epoch losses to 1e-4 relative, valid SI-SDR
    to 0.05 dB over two epochs."""
    def jobs(root, compile_):
        train = {**CFG["students"]["train"], "epochs": 2, "compile": compile_}
        cfg = {**CFG, "students": {**CFG["students"], "train": train}}
        return [StudentJob(student_job_config(cfg, sc, m), m, sc, str(root / sc / m), 5, str(teacher_file))
                for sc, m in (("half", "none"), ("half", "cosine"), ("quarter", "cosine"))]

    train, valid = data[0].path, data[1].path
    together = distill_students(jobs(tmp_path / "together", True), train, valid)
    alone = [distill_students([job], train, valid)[0] for job in jobs(tmp_path / "alone", True)]
    eager = distill_students(jobs(tmp_path / "eager", False), train, valid)
    for a, b, e in zip(alone, together, eager):
        _same_model(a, b)
        compiled_history, eager_history = load_payload(b)["history"], load_payload(e)["history"]
        for key in ("train_loss", "train_sup", "train_kd"):
            assert compiled_history[0][key] == pytest.approx(eager_history[0][key], rel=1e-4, abs=1e-6)
        assert [h["valid_si_sdr"] for h in compiled_history] == pytest.approx(
            [h["valid_si_sdr"] for h in eager_history], abs=0.05)


def test_a_method_can_run_in_some_scenarios_only():
    from kdsd.errors import KdsdError
    from kdsd.train.groups import run_students

    students = {"scenarios": {"a": {}, "b": {}}, "methods": ["none", "none_budget"], "seeds": [1, 2],
                "method_scenarios": {"none_budget": ["b"]}}
    assert run_students(students) == [("a", "none", 1), ("a", "none", 2), ("b", "none", 1), ("b", "none", 2),
                                      ("b", "none_budget", 1), ("b", "none_budget", 2)]
    with pytest.raises(KdsdError, match=r"students.method_scenarios.none_budget: c not among"):
        run_students({**students, "method_scenarios": {"none_budget": ["c"]}})
    # a preset that drops the method need not drop its entry
    assert run_students({**students, "methods": ["none"]}) == run_students({**students, "methods": ["none"],
                                                                           "method_scenarios": {}})


def test_a_variant_trains_with_its_own_train_block_over_its_bases():
    """kd.<name>.train: `none`'s tuned learning rate carries over to its budget control, which adds
    sp2step's epoch count; a typo names the key."""
    from kdsd.distill.variants import related_methods, train_options
    from kdsd.errors import KdsdError
    from kdsd.train.jobs import member_train_settings

    kd = {"none": {"train": {"lr": 0.008}}, "sp2step": {"step1_fraction": 0.5, "step2_epochs": "all"},
          "none_budget": {"method": "none", "train": {"epochs_of": "sp2step"}}}
    assert train_options(kd, "none_budget") == {"lr": 0.008, "epochs_of": "sp2step"}
    assert related_methods(kd, "none_budget") == {"none_budget", "none", "sp2step"}
    cfg = {**CFG, "kd": kd}
    from kdsd.models.unet import UNetDAE
    settings = member_train_settings(cfg, UNetDAE(width=4, depth=2), "none_budget", "half")
    assert (settings["lr"], settings["epochs"]) == (0.008, 3 + 2)  # sp2step: 2 KD epochs, then 3
    with pytest.raises(KdsdError, match=r"kd\.none\.train: unknown option 'rate'"):
        train_options({"none": {"train": {"rate": 1}}}, "none")
