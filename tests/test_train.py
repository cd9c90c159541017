"""Training loop: learns, picks the checkpoint on valid, resumes exactly after interruption."""
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
from kdsd.train.loop import TrainSettings, fit, seed_everything
from kdsd.losses import SupervisedLoss

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


def _run(tmp_path, data, epochs, seed=3):
    seed_everything(seed)
    method = get_method("none")(UNetDAE(width=2, depth=2), None, SupervisedLoss())
    settings = TrainSettings(epochs=epochs, batch_size=4, segment_s=0.5, lr=0.01)
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
