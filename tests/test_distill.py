"""KD losses and methods: the numbers the benchmark's claims rest on."""
import math

import pytest
import torch

from kdsd.distill import get_method, method_names
from kdsd.distill.adapters import LatentProjector, pair_taps
from kdsd.distill.base import DistillationMethod, register
from kdsd.distill.cosine import cosine_latent_loss
from kdsd.distill.sp2step import frame_gram, similarity_preserving_loss
from kdsd.errors import KdsdError
from kdsd.models.unet import UNetDAE
from kdsd.losses import SupervisedLoss


def _latent(b=2, c=8, f=16, t=10, seed=0):
    return torch.randn(b, c, f, t, generator=torch.Generator().manual_seed(seed))


# --- cosine-latent loss ------------------------------------------------------------------
def test_cosine_loss_is_zero_for_aligned_latents():
    z = _latent()
    assert cosine_latent_loss(z, z).item() == pytest.approx(0.0, abs=1e-6)
    projector = LatentProjector(8, 8, "linear")
    with torch.no_grad():
        projector.net.weight.copy_(torch.eye(8)[:, :, None, None])
    assert cosine_latent_loss(projector(z, 16), z).item() == pytest.approx(0.0, abs=1e-6)


def test_cosine_loss_ignores_positive_scale_of_either_latent():
    zs, zt = _latent(seed=1), _latent(seed=2)
    base = cosine_latent_loss(zs, zt).item()
    assert 0.5 < base < 1.5  # independent random vectors: cos ≈ 0
    assert cosine_latent_loss(7.5 * zs, zt).item() == pytest.approx(base, rel=1e-5)
    assert cosine_latent_loss(zs, 0.01 * zt).item() == pytest.approx(base, rel=1e-5)
    assert cosine_latent_loss(-zs, zt).item() == pytest.approx(2 - base, rel=1e-5)


def test_cosine_loss_is_per_frame_not_per_utterance():
    zt = _latent(b=1, t=4)
    zs = zt.clone()
    zs[..., 0] *= -1  # one frame of four flipped: frame loss = 2/4, utterance loss differs
    assert cosine_latent_loss(zs, zt, "frame").item() == pytest.approx(0.5, abs=1e-6)
    assert cosine_latent_loss(zs, zt, "utterance").item() != pytest.approx(0.5, abs=1e-3)


def test_projector_maps_other_channels_and_frequency_rows():
    projector = LatentProjector(4, 16, "linear")
    out = projector(_latent(c=4, f=32), freq_rows=16)
    assert out.shape == (2, 16, 16, 10)
    assert projector.net.bias is None  # linear: no bias, no non-linearity
    assert sum(p.numel() for p in projector.parameters()) == 4 * 16


def test_cosine_gradient_reaches_projector_and_student():
    teacher = UNetDAE(width=8, depth=3)
    student = UNetDAE(width=2, depth=2)  # other channels and other latent frequency size
    method = get_method("cosine")(student, teacher, SupervisedLoss())
    noisy, clean = torch.randn(2, 4000), torch.randn(2, 4000)
    _, losses = method(noisy, clean)
    assert set(losses) == {"sup", "kd"} and 0 < losses["kd"].item() < 2
    losses["kd"].backward()
    assert method.projector.net.weight.grad.abs().sum() > 0
    assert student.encoders[0][0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    assert method.adapter_parameter_count() == student.latent_channels * teacher.latent_channels


# --- similarity-preserving loss (sp2step) ------------------------------------------------
def test_gram_shape_and_row_normalisation():
    g = frame_gram(_latent(c=3, f=5, t=7))
    assert g.shape == (2, 7, 7)
    assert torch.allclose(g.norm(dim=2), torch.ones(2, 7), atol=1e-6)


def test_gram_does_not_depend_on_channel_count():
    z = _latent(c=4)
    doubled = torch.cat([z, z], dim=1)  # same per-frame geometry with twice the channels
    assert torch.allclose(frame_gram(z), frame_gram(doubled), atol=1e-6)
    assert similarity_preserving_loss(_latent(c=4), _latent(c=32)).dim() == 0


def test_similarity_preserving_loss_hand_computed():
    # Student frames orthogonal: G_s = I. Teacher frames identical: rows (1/√2, 1/√2).
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)
    teacher = torch.tensor([[1.0, 1.0], [1.0, 1.0]]).reshape(1, 2, 1, 2)
    r = 1 / math.sqrt(2)
    expected = (2 * (1 - r) ** 2 + 2 * r**2) / 4
    assert similarity_preserving_loss(student, teacher).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.292893, rel=1e-5)


def test_sp2step_switches_from_kd_only_to_supervised_only():
    teacher, student = UNetDAE(width=8, depth=2), UNetDAE(width=2, depth=2)
    method = get_method("sp2step")(student, teacher, SupervisedLoss(), step1_fraction=0.5)
    assert [method.loss_weights(e, 10) for e in (0, 4, 5, 9)] == [(0.0, 1.0), (0.0, 1.0), (1.0, 0.0), (1.0, 0.0)]
    _, losses = method(torch.randn(2, 3000), torch.randn(2, 3000))
    assert losses["kd"].item() > 0
    assert method.adapter_parameter_count() == 0


def test_layer_pairing_across_depths():
    assert pair_taps(2, 4) == [("enc1", "enc2"), ("enc2", "enc4"), ("dec1", "dec2"), ("dec2", "dec4"),
                               ("latent", "latent")]


# --- fair baselines ------------------------------------------------------------------------
def test_depth_mismatch_resampling_gives_every_student_row_a_gradient():
    projector = LatentProjector(4, 8, "linear")
    z = _latent(c=4, f=32).requires_grad_(True)  # a student two levels shallower
    projector(z, freq_rows=8).square().sum().backward()
    row_grad = z.grad.abs().sum(dim=(0, 1, 3))
    assert row_grad.shape == (32,) and (row_grad > 0).all()


def test_area_resampling_averages_the_rows_each_teacher_row_covers():
    projector = LatentProjector(1, 1, "none")
    z = torch.arange(8.0).square().reshape(1, 1, 8, 1)  # rows 0, 1, 4, 9 | 16, 25, 36, 49
    assert projector(z, freq_rows=2).flatten().tolist() == [3.5, 31.5]


def test_kd_terms_are_float32_under_bf16_autocast():
    zs, zt = _latent(seed=3), _latent(seed=4)
    exact = (frame_gram(zs), similarity_preserving_loss(zs, zt), cosine_latent_loss(zs, zt))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (zs @ zs.transpose(-1, -2)).dtype == torch.bfloat16  # autocast is really on
        under = (frame_gram(zs), similarity_preserving_loss(zs, zt), cosine_latent_loss(zs, zt))
    for a, b in zip(exact, under):
        assert b.dtype == torch.float32
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def _count_calls(module):
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_no_teacher_forward_and_zero_kd_loss_when_kd_is_off():
    teacher, student = UNetDAE(width=4, depth=2), UNetDAE(width=2, depth=2)
    method = get_method("sp2step")(student, teacher, SupervisedLoss())
    teacher_calls = _count_calls(teacher.encoders[0])
    noisy, clean = torch.randn(2, 3000), torch.randn(2, 3000)
    _, on = method(noisy, clean, kd=True)
    assert len(teacher_calls) == 1 and on["kd"].item() > 0
    _, off = method(noisy, clean, kd=False)
    assert len(teacher_calls) == 1 and off["kd"].item() == 0.0
    assert off["sup"].item() == pytest.approx(on["sup"].item())


@pytest.mark.parametrize("name,decoder_runs", [("cosine", False), ("hint", False),
                                               ("sp2step", True), ("output", True)])
def test_teacher_stops_at_the_taps_a_method_needs(name, decoder_runs):
    teacher, student = UNetDAE(width=4, depth=2), UNetDAE(width=2, depth=2)
    method = get_method(name)(student, teacher, SupervisedLoss())
    decoder_calls = _count_calls(teacher.mask_head)
    _, losses = method(torch.randn(2, 3000), torch.randn(2, 3000))
    assert losses["kd"].item() > 0
    assert bool(decoder_calls) == decoder_runs


def test_encoder_only_teacher_gives_the_same_cosine_loss_as_the_full_forward():
    teacher, student = UNetDAE(width=4, depth=3).eval(), UNetDAE(width=2, depth=2).eval()
    method = get_method("cosine")(student, teacher, SupervisedLoss()).eval()
    noisy = torch.randn(2, 3000)
    _, student_feats = student(noisy, return_features=True)
    _, full = teacher(noisy, return_features=True)
    via_full = method.kd_loss(student_feats, full, None, None)
    _, losses = method(noisy, torch.randn(2, 3000))
    assert losses["kd"].item() == pytest.approx(via_full.item(), rel=1e-6)


@pytest.mark.parametrize("budget,epochs,expected", [
    ("remainder", 6, [(0.0, 1.0)] * 3 + [(1.0, 0.0)] * 3),
    ("all", 6, [(0.0, 1.0)] * 3 + [(1.0, 0.0)] * 6),
    ("all", 2, [(0.0, 1.0)] + [(1.0, 0.0)] * 2),
])
def test_sp2step_supervised_budget_and_optimiser_reset(budget, epochs, expected):
    teacher, student = UNetDAE(width=4, depth=2), UNetDAE(width=2, depth=2)
    method = get_method("sp2step")(student, teacher, SupervisedLoss(), step2_epochs=budget)
    n = method.schedule_epochs(epochs)
    assert [method.loss_weights(e, epochs) for e in range(n)] == expected
    switch = expected.index((1.0, 0.0))
    assert [e for e in range(n) if method.resets_optimiser_at(e, epochs)] == [switch]
    kept = get_method("sp2step")(student, teacher, SupervisedLoss(), reset_optimiser=False)
    assert not any(kept.resets_optimiser_at(e, epochs) for e in range(epochs))


def test_cosine_distance_option_and_hint_default():
    teacher, student = UNetDAE(width=4, depth=2), UNetDAE(width=2, depth=2)
    assert get_method("cosine")(student, teacher, SupervisedLoss()).distance == "cosine"
    assert get_method("hint")(student, teacher, SupervisedLoss()).distance == "mse"
    mse = get_method("cosine")(student, teacher, SupervisedLoss(), distance="mse")
    hint = get_method("hint")(student, teacher, SupervisedLoss())
    hint.projector.load_state_dict(mse.projector.state_dict())
    noisy = torch.randn(2, 3000)
    assert mse(noisy, noisy)[1]["kd"].item() == pytest.approx(hint(noisy, noisy)[1]["kd"].item())
    with pytest.raises(KdsdError, match="distance='l1'; valid: cosine, mse"):
        get_method("cosine")(student, teacher, SupervisedLoss(), distance="l1")


# --- registry and contract ---------------------------------------------------------------
def test_registry_lists_methods_and_refuses_duplicates_and_typos():
    assert set(method_names()) >= {"none", "sp2step", "cosine", "hint", "output"}
    with pytest.raises(KdsdError, match="did you mean 'cosine'.*valid: cosine, hint"):
        get_method("cosin")

    with pytest.raises(ValueError, match="already registered"):
        @register
        class Again(DistillationMethod):
            name = "cosine"


@pytest.mark.parametrize("name", ["none", "output", "hint", "sp2step", "cosine"])
def test_every_method_keeps_teacher_frozen_and_returns_contract(name):
    teacher, student = UNetDAE(width=4, depth=2), UNetDAE(width=2, depth=2)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    method = get_method(name)(student, teacher, SupervisedLoss())
    method.train()
    estimate, losses = method(torch.randn(2, 3000), torch.randn(2, 3000))
    assert estimate.shape == (2, 3000) and set(losses) == {"sup", "kd"}
    (losses["sup"] + losses["kd"]).backward()
    if method.teacher is not None:
        assert not method.teacher.training
    for k, v in teacher.state_dict().items():  # batch-norm statistics untouched too
        assert torch.equal(v, before[k]), k


# --- layers ------------------------------------------------------------------------------
def _kdsd_imports(path):
    import ast

    tree = ast.parse(path.read_text())
    names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return {name for name in names if name.startswith("kdsd")}


def test_imports_run_down_the_layers():
    """KD methods and the shared losses never import the training package above them."""
    from pathlib import Path

    import kdsd

    root = Path(kdsd.__file__).parent
    for path in [root / "losses.py", *sorted((root / "distill").glob("*.py"))]:
        upward = {m for m in _kdsd_imports(path) if m.startswith(("kdsd.train", "kdsd.analysis"))}
        assert not upward, f"{path.name} imports {upward}"
