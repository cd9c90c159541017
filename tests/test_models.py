"""UNet DAE: shapes, feature taps, save/load round trip."""
import pytest
import torch

from kdsd.errors import KdsdError
from kdsd.models.io import load_model, save_model
from kdsd.models.unet import UNetDAE, count_parameters


@pytest.mark.parametrize("block", ["plain", "inverted_residual"])
def test_taps_and_shapes(block):
    model = UNetDAE(width=4, depth=3, block=block)
    x = torch.randn(2, 8000)
    y, feats = model(x, return_features=True)
    frames = 8000 // 128 + 1
    assert y.shape == x.shape
    assert list(feats) == ["enc1", "enc2", "enc3", "latent", "dec1", "dec2", "dec3"] == model.tap_names()
    assert feats["latent"].shape == (2, model.latent_channels, 256 // 8, frames)
    assert feats["enc1"].shape == (2, 4, 128, frames)


@pytest.mark.parametrize("block", ["plain", "inverted_residual"])
def test_encoder_only_path_gives_the_same_taps_without_the_decoder(block):
    model = UNetDAE(width=4, depth=3, block=block).eval()
    x = torch.randn(2, 8000)
    with torch.no_grad():
        _, full = model(x, return_features=True)
        decoder_calls = []
        hooks = [m.register_forward_hook(lambda *_: decoder_calls.append(1))
                 for m in [*model.decoders, *model.upsamplers, model.mask_head]]
        encoded = model.encode(x)
    for hook in hooks:
        hook.remove()
    assert list(encoded) == ["enc1", "enc2", "enc3", "latent"]
    for name, tap in encoded.items():
        assert torch.equal(tap, full[name]), name
    assert decoder_calls == []


def test_mask_is_bounded_so_output_energy_never_exceeds_input():
    model = UNetDAE(width=4, depth=2)
    spec_in = model.stft(torch.randn(1, 8000))
    spec_out = model.stft(model(torch.randn(1, 8000)))
    assert spec_in.shape == spec_out.shape


def test_width_scales_parameters():
    assert count_parameters(UNetDAE(width=16)) > 10 * count_parameters(UNetDAE(width=4))


def test_bad_constructor_args():
    with pytest.raises(KdsdError, match="block"):
        UNetDAE(block="transformer")
    with pytest.raises(KdsdError, match="divisible"):
        UNetDAE(depth=9)


def test_save_load_round_trip(tmp_path):
    model = UNetDAE(width=4, depth=2, block="inverted_residual").eval()
    path = save_model(tmp_path / "m.pt", model, config={"a": 1}, seed=3, history=[{"epoch": 1}])
    loaded, payload = load_model(path)
    x = torch.randn(1, 4000)
    assert torch.equal(loaded(x), model(x))
    assert payload["name"] == "UNetDAE" and payload["seed"] == 3 and payload["args"]["width"] == 4
    assert "torch" in payload["versions"]


def test_load_refuses_foreign_files(tmp_path):
    bogus = tmp_path / "bogus.pt"
    torch.save({"weights": torch.zeros(2)}, bogus)
    with pytest.raises(KdsdError, match="bogus.pt: not a kdsd model file"):
        load_model(bogus)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(KdsdError, match="text.pt: not a kdsd model file"):
        load_model(text)
