"""Training loop: learns, picks the checkpoint on valid, resumes exactly after interruption."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from kdsd.audio import write_audio
from kdsd.corpus.manifest import write_manifest
from kdsd.distill import get_method
from kdsd.errors import KdsdError
from kdsd.models.unet import UNetDAE
from kdsd.train.data import PairSet
from kdsd.train.jobs import student_args
from kdsd.train import loop
from kdsd.train.loop import (TrainSettings, epoch_learning_rates, fit, seed_everything,
                             training_phases)
from kdsd.losses import SupervisedLoss
from kdsd.metrics.cost import write_model_cost

SR = 16_000


def _tiny_manifest(folder, n, seed):
    rng = np.random.default_rng(seed)
    rows = []
    t = np.arange(SR) / SR
    for i in range(n):
        clean = (0.2 * np.sin(2 * np.pi * rng.uniform(150, 400) * t) * (t % 0.25 < 0.15)).astype(np.float32)
        noisy = clean + 0.1 * rng.standard_normal(SR).astype(np.float32)
        write_audio(folder / f"c{i}.wav", clean)
        write_audio(folder / f"n{i}.wav", noisy)
        rows.append({"utt_id": f"u{i}", "split": "x", "clean_path": f"c{i}.wav", "noisy_path": f"n{i}.wav",
                     "speaker": "tone", "engine": "none", "text": "", "noise_family": "white",
                     "noise_seed": i, "snr_db": 0.0, "rir": "", "duration_s": 1.0, "sample_rate": SR})
    return PairSet(write_manifest(rows, folder / "manifest.csv"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "train").mkdir()
    (root / "valid").mkdir()
    return _tiny_manifest(root / "train", 8, 0), _tiny_manifest(root / "valid", 2, 1)


def _run(tmp_path, data, epochs, seed=3, **settings):
    seed_everything(seed)
    method = get_method("none")(UNetDAE(width=2, depth=2), None, SupervisedLoss())
    settings = TrainSettings(**{"epochs": epochs, "batch_size": 4, "segment_s": 0.5, "lr": 0.01,
                                **settings})
    return fit(method, *data, settings, tmp_path, seed)


def test_training_improves_valid_si_sdr_and_records_history(tmp_path, data):
    best, history = _run(tmp_path, data, epochs=4)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert max(h["valid_si_sdr"] for h in history) > history[0]["valid_si_sdr"]
    best_epoch = max(history, key=lambda h: h["valid_si_sdr"])
    assert best_epoch["best"] == 1  # the kept weights are the best-on-valid epoch's
    assert set(best) == set(UNetDAE(width=2, depth=2).state_dict())


def test_resume_after_interruption_gives_identical_result(tmp_path, data):
    straight, h_straight = _run(tmp_path / "straight", data, epochs=3)
    _run(tmp_path / "resumed", data, epochs=1)          # "interrupted" after epoch 1
    assert (tmp_path / "resumed" / "checkpoint.pt").is_file()
    resumed, h_resumed = _run(tmp_path / "resumed", data, epochs=3)
    assert len(h_resumed) == 3
    for key in ("train_loss", "valid_si_sdr"):
        assert [h[key] for h in h_resumed] == pytest.approx([h[key] for h in h_straight], rel=1e-5)
    for name in straight:
        assert torch.allclose(straight[name].float(), resumed[name].float(), atol=1e-6), name


def test_cosine_schedule_anneals_each_phase_from_lr_to_zero():
    settings = TrainSettings(epochs=4, batch_size=4, segment_s=0.5, lr=0.01, lr_schedule="cosine")
    none = get_method("none")(UNetDAE(width=2, depth=2), None, SupervisedLoss())
    phases = training_phases(none, 4)
    assert phases == [range(0, 4)]
    lrs = [lr for epoch in range(4) for lr in epoch_learning_rates(settings, phases, epoch, 2)]
    assert lrs[0] == 0.01 and lrs[4] == pytest.approx(0.005)  # half-way: half the rate
    assert all(a > b > 0 for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 7 / 8)))
    constant = TrainSettings(epochs=4, batch_size=4, segment_s=0.5, lr=0.01)
    assert epoch_learning_rates(constant, phases, 3, 2) == [0.01, 0.01]
    # sp2step restarts its optimiser at the switch: the cosine restarts with it
    sp2 = _sp2step(step1_fraction=0.5)
    assert training_phases(sp2, 4) == [range(0, 2), range(2, 4)]
    assert epoch_learning_rates(settings, training_phases(sp2, 4), 2, 2)[0] == 0.01
    assert training_phases(_sp2step(step1_fraction=0.5, reset_optimiser=False), 4) == [range(0, 4)]


def test_resume_follows_the_cosine_schedule_exactly(tmp_path, data, monkeypatch):
    straight, h_straight = _run(tmp_path / "straight", data, epochs=3, lr_schedule="cosine")
    save = loop._save_checkpoint

    def save_then_die(*args):  # the job is killed right after epoch 1's checkpoint
        save(*args)
        raise KeyboardInterrupt
    monkeypatch.setattr(loop, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "resumed", data, epochs=3, lr_schedule="cosine")
    monkeypatch.setattr(loop, "_save_checkpoint", save)
    resumed, h_resumed = _run(tmp_path / "resumed", data, epochs=3, lr_schedule="cosine")
    _, h_constant = _run(tmp_path / "constant", data, epochs=3)
    assert [h["train_loss"] for h in h_resumed] == pytest.approx([h["train_loss"] for h in h_straight], rel=1e-5)
    assert h_constant[2]["train_loss"] != pytest.approx(h_straight[2]["train_loss"], rel=1e-6)
    for name in straight:
        assert torch.allclose(straight[name].float(), resumed[name].float(), atol=1e-6), name


def test_student_args_follow_the_scenario():
    teacher = {"width": 16, "depth": 4, "block": "plain", "n_fft": 512}
    args = student_args(teacher, {"width_ratio": 0.25, "depth_delta": -1, "block": "inverted_residual"})
    assert (args["width"], args["depth"], args["block"], args["n_fft"]) == (4, 3, "inverted_residual", 512)


def test_pairset_rejects_length_mismatch(tmp_path):
    write_audio(tmp_path / "c.wav", np.zeros(100, np.float32))
    write_audio(tmp_path / "n.wav", np.zeros(120, np.float32))
    write_manifest([{"utt_id": "u", "split": "x", "clean_path": "c.wav", "noisy_path": "n.wav",
                     "speaker": "", "engine": "", "text": "", "noise_family": "", "noise_seed": 0,
                     "snr_db": 0, "rir": "", "duration_s": 0, "sample_rate": SR}], tmp_path / "m.csv")
    with pytest.raises(KdsdError, match="n.wav: 120 samples but its clean reference has 100"):
        PairSet(tmp_path / "m.csv")


def test_checkpoint_of_another_configuration_is_not_resumed(tmp_path, data):
    seed_everything(3)
    method = get_method("none")(UNetDAE(width=2, depth=2), None, SupervisedLoss())
    settings = TrainSettings(epochs=1, batch_size=4, segment_s=0.5, lr=0.01)
    fit(method, *data, settings, tmp_path, 3, fingerprint="config-A")
    seed_everything(3)
    method = get_method("none")(UNetDAE(width=2, depth=2), None, SupervisedLoss())
    _, history = fit(method, *data, TrainSettings(epochs=2, batch_size=4, segment_s=0.5, lr=0.01),
                     tmp_path, 3, fingerprint="config-B")
    assert [h["epoch"] for h in history] == [1, 2]  # trained afresh, not resumed after epoch 1


# --- KD schedules through the loop --------------------------------------------------------
def _sp2step(**options):
    seed_everything(5)
    teacher = UNetDAE(width=4, depth=2)
    return get_method("sp2step")(UNetDAE(width=2, depth=2), teacher, SupervisedLoss(), **options)


def test_sp2step_runs_no_teacher_in_step2_and_restarts_the_optimiser(tmp_path, data):
    method = _sp2step(step1_fraction=0.5)
    teacher_batches = []
    method.teacher.encoders[0].register_forward_hook(lambda *_: teacher_batches.append(1))
    settings = TrainSettings(epochs=2, batch_size=4, segment_s=0.5, lr=0.01)
    _, history = fit(method, *data, settings, tmp_path, 5)
    assert [(h["w_sup"], h["w_kd"]) for h in history] == [(0.0, 1.0), (1.0, 0.0)]
    assert len(teacher_batches) == 2  # the two step-1 batches only
    assert history[1]["train_kd"] == 0.0
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    steps = {int(s["step"]) for s in ckpt["optimiser"]["state"].values()}
    assert steps == {2}  # AdamW restarted at step 2: only its two batches counted


def test_sp2step_full_supervised_budget_trains_extra_epochs(tmp_path, data):
    method = _sp2step(step1_fraction=0.5, step2_epochs="all", reset_optimiser=False)
    settings = TrainSettings(epochs=2, batch_size=4, segment_s=0.5, lr=0.01)
    _, history = fit(method, *data, settings, tmp_path, 5)
    assert [h["w_sup"] for h in history] == [0.0, 1.0, 1.0]
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert {int(s["step"]) for s in ckpt["optimiser"]["state"].values()} == {6}  # never restarted


# --- the distill job: variants, method files, selected epoch --------------------------------
# A method kept outside kdsd/distill/, loaded through students.method_files.
EXAMPLE_METHOD = Path(__file__).resolve().parent.parent / "examples" / "attention_transfer.py"


@pytest.fixture
def clean_registry():
    """Methods registered from files inside a test are forgotten after it."""
    from kdsd.distill import base

    registry, loaded = dict(base._REGISTRY), dict(base._LOADED_FILES)
    yield
    base._REGISTRY.clear(), base._REGISTRY.update(registry)
    base._LOADED_FILES.clear(), base._LOADED_FILES.update(loaded)


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory, data):
    from kdsd.train.jobs import train_teacher

    out = tmp_path_factory.mktemp("teacher")
    cfg = {"teacher": {"seed": 1, "model": {"width": 4, "depth": 2, "block": "plain"},
                       "train": {"epochs": 1, "batch_size": 4, "segment_s": 0.5, "lr": 0.01}},
           "loss": {"mag_weight": 10.0, "power": 0.3}}
    return train_teacher(cfg, data[0].path, data[1].path, out)


def _student_cfg(**students):
    return {"students": {"scenarios": {"half": {"width_ratio": 0.5}}, "methods": ["none"],
                         "train": {"epochs": 3, "batch_size": 4, "segment_s": 0.5, "lr": 0.01},
                         **students},
            "kd": {"cosine": {"kd_weight": 10.0, "projector": "linear"},
                   "cosine_mse": {"method": "cosine", "distance": "mse"}},
            "loss": {"mag_weight": 10.0, "power": 0.3}}


def test_variant_student_records_its_name_base_options_and_selected_epoch(tmp_path, data, teacher_file):
    from kdsd.models.io import load_payload
    from kdsd.train.jobs import distill_student

    path = distill_student(_student_cfg(), teacher_file, "cosine_mse", "half", 2,
                           data[0].path, data[1].path, tmp_path)
    payload = load_payload(path)
    assert (payload["method"], payload["base_method"]) == ("cosine_mse", "cosine")
    assert payload["kd_options"] == {"kd_weight": 10.0, "projector": "linear", "distance": "mse"}
    best = max(payload["history"], key=lambda h: h["valid_si_sdr"])
    assert payload["selected_epoch"] == best["epoch"]
    write_model_cost(path, "students/half/cosine_mse/seed2", tmp_path / "cost.json")  # -> cost.csv
    record = json.loads((tmp_path / "cost.json").read_text())
    assert (record["method"], record["base_method"]) == ("cosine_mse", "cosine")
    assert (record["selected_epoch"], record["epochs_trained"]) == (best["epoch"], 3)


def test_a_student_job_reads_only_its_scenario_and_method():
    from kdsd.distill.variants import resolve
    from kdsd.train.jobs import build_method, student_job_config

    cfg = _student_cfg()
    job = student_job_config(cfg, "half", "cosine_mse")
    assert job["students"]["scenarios"] == {"half": {"width_ratio": 0.5}}
    assert job["kd"] == {"cosine": cfg["kd"]["cosine"], "cosine_mse": cfg["kd"]["cosine_mse"]}
    assert resolve(job["kd"], "cosine_mse") == resolve(cfg["kd"], "cosine_mse")
    # More methods, seeds, scenarios and unrelated KD entries leave the job's config as it was.
    grown = json.loads(json.dumps(cfg))
    grown["students"].update(methods=["none", "cosine", "cosine_mse", "hint"], seeds=[1, 2, 3, 4])
    grown["students"]["scenarios"]["eighth"] = {"width_ratio": 0.125}
    grown["kd"]["hint"] = {"kd_weight": 3.0}
    assert student_job_config(grown, "half", "cosine_mse") == job
    assert student_job_config(grown, "half", "none")["kd"] == {}
    # The causal option at its default (the schema fills it into every scenario) is not part of
    # the job: students trained before the option existed keep their params; causal: true is.
    grown["students"]["scenarios"]["half"]["causal"] = False
    assert student_job_config(grown, "half", "cosine_mse") == job
    grown["students"]["scenarios"]["half"]["causal"] = True
    assert student_job_config(grown, "half", "cosine_mse")["students"]["scenarios"]["half"]["causal"] is True
    # The variant's base options are part of it: changing them changes the job.
    grown["kd"]["cosine"]["kd_weight"] = 1.0
    assert student_job_config(grown, "half", "cosine_mse")["kd"]["cosine"]["kd_weight"] == 1.0
    # The job builds the same student as the whole config does.
    teacher = UNetDAE(width=4, depth=2)
    built = []
    for config in (cfg, job):
        seed_everything(5)
        built.append(build_method(config, teacher, "cosine_mse", "half")[0].student.state_dict())
    assert all(torch.equal(built[0][name], built[1][name]) for name in built[0])


def test_method_from_a_file_outside_the_package_trains(tmp_path, data, teacher_file, clean_registry):
    from kdsd.models.io import load_payload
    from kdsd.train.jobs import check_students, distill_student

    cfg = _student_cfg(method_files=[str(EXAMPLE_METHOD)], methods=["attention"])
    cfg["teacher"] = {"model": {"width": 4, "depth": 2, "block": "plain"}}
    check_students(cfg)
    payload = load_payload(distill_student(cfg, teacher_file, "attention", "half", 1,
                                           data[0].path, data[1].path, tmp_path / "out"))
    assert payload["base_method"] == "attention"
    assert all(h["train_kd"] > 0 for h in payload["history"])


def test_bad_method_files_and_names_are_one_line_errors(tmp_path, clean_registry):
    from kdsd.distill import load_method_files
    from kdsd.distill.variants import resolve

    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_anywhere\n")
    with pytest.raises(KdsdError, match=r"students.method_files: .*broken.py: import failed \(Module"):
        load_method_files([str(broken)])
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    with pytest.raises(KdsdError, match="registers no KD method"):
        load_method_files([str(empty)])
    clash = tmp_path / "clash.py"
    clash.write_text(EXAMPLE_METHOD.read_text().replace('name = "attention"', 'name = "cosine"'))
    with pytest.raises(KdsdError, match="'cosine' is already registered"):
        load_method_files([str(clash)])
    with pytest.raises(KdsdError, match="unknown KD method or variant 'cosine_mes' .did you mean 'cosine_mse'"):
        resolve(_student_cfg()["kd"], "cosine_mes")
    with pytest.raises(KdsdError, match="kd.hint: a variant cannot take the name"):
        resolve({"hint": {"method": "cosine"}}, "hint")
