"""kdsd.enhance and `kdsd enhance`: chunked inference equals the whole file; files, folders,
formats, rates and channels; failures reported by name while the rest finish."""
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from kdsd.enhance import (EnhanceOptions, context_samples, enhance_file, enhance_paths,
                          enhance_wave, time_radius_frames)
from kdsd.errors import KdsdError
from kdsd.models.io import save_model
from kdsd.models.unet import UNetDAE

SR = 16_000


def trained_shape_model(block="plain", width=8, depth=3, seed=0, causal=False) -> UNetDAE:
    """A UNet whose batch-norm statistics and affine parameters are spread like a trained one's
    (an untrained net's mask barely depends on its input, which would hide chunking errors)."""
    torch.manual_seed(seed)
    model = UNetDAE(width=width, depth=depth, block=block, causal=causal)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3, generator=gen)
                m.running_var.uniform_(0.05, 0.3, generator=gen)
                m.weight.normal_(1, 0.5, generator=gen)
                m.bias.normal_(0, 0.3, generator=gen)
    return model.eval()


def noise(seconds, seed=0, sr=SR):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


@torch.no_grad()
def whole_file(model, wave):
    return model(torch.from_numpy(wave)[None])[0].numpy()


@pytest.mark.parametrize("block", ["plain", "inverted_residual"])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_time_radius_is_two_frames_per_level_plus_the_bottleneck(block, depth):
    model = UNetDAE(width=4, depth=depth, block=block)
    assert time_radius_frames(model) == 2 * depth + 1
    assert context_samples(model) == 512 + (2 * depth + 1) * 128


@pytest.mark.parametrize("block", ["plain", "inverted_residual"])
def test_an_impulse_moves_the_output_within_the_context_and_no_further(block):
    """Measured receptive field (float64: every change shows) against the computed one: from
    impulses at several phases of the hop grid it reaches into the context's last hop (the
    context is tight) and never past it."""
    model = trained_shape_model(block).double()
    wave = torch.from_numpy(noise(1.2).astype(np.float64))[None]
    reach = 0
    with torch.no_grad():
        clean_run = model(wave)
        for at in (9_600, 9_601, 9_664, 9_727):  # 9600 is on the hop grid
            hit = wave.clone()
            hit[0, at] += 0.5
            changed = np.flatnonzero((model(hit) - clean_run)[0].abs().numpy() > 0) - at
            reach = max(reach, -changed.min(), changed.max())
    context = context_samples(model)
    assert context - model.hop < reach < context


@pytest.mark.parametrize("block", ["plain", "inverted_residual"])
@pytest.mark.parametrize("chunk_s", [0.5, 1.5])
def test_chunked_output_equals_the_whole_file(block, chunk_s):
    model = trained_shape_model(block)
    wave = noise(3.3317)  # not a multiple of the hop or the chunk
    whole = whole_file(model, wave)
    chunked = enhance_wave(model, wave, chunk_s=chunk_s)
    assert chunked.shape == wave.shape
    assert np.abs(chunked - whole).max() < 1e-4
    # the test can fail: a context two hops short of the receptive field is visibly wrong
    import kdsd.enhance as enhance

    computed = enhance.context_samples
    try:
        enhance.context_samples = lambda m: computed(m) - 4 * m.hop
        short = enhance_wave(model, wave, chunk_s=chunk_s)
    finally:
        enhance.context_samples = computed
    assert np.abs(short - whole).max() > 10 * np.abs(chunked - whole).max()


@pytest.mark.parametrize("block", ["plain", "inverted_residual"])
def test_native_transposed_convolutions_give_the_default_estimate_and_restore_onednn(block):
    """enhance_wave runs the up-samplers without oneDNN (its per-shape set-up cost); the estimate
    stays the default forward's (equal here; 1e-6 allowed for other CPUs' oneDNN kernels), and
    the oneDNN switch is back as it was afterwards, also when the forward fails."""
    from kdsd.enhance import native_transposed_convolutions

    model = trained_shape_model(block, width=4)
    for seconds in (1.0113, 1.3807, 2.02):  # distinct lengths, as a test set's utterances
        wave = noise(seconds, seed=int(seconds * 1000))
        assert np.abs(enhance_wave(model, wave) - whole_file(model, wave)).max() <= 1e-6
    before = torch.backends.mkldnn.enabled
    with pytest.raises(RuntimeError), native_transposed_convolutions(model):
        model.upsamplers[0](torch.zeros(1, 3, 4, 5))  # wrong channels: fails inside the layer
    assert torch.backends.mkldnn.enabled == before
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())


def test_enhance_wave_keeps_length_and_refuses_too_short_input():
    model = trained_shape_model()
    assert enhance_wave(model, noise(0.04)).shape == (640,)
    with pytest.raises(KdsdError, match="10 samples is too short"):
        enhance_wave(model, noise(10 / SR))


def test_a_streamed_16k_file_equals_the_in_memory_estimate(tmp_path):
    model = trained_shape_model()
    wave = noise(3.1)
    sf.write(tmp_path / "in.wav", wave, SR, subtype="FLOAT")
    enhance_file(model, tmp_path / "in.wav", tmp_path / "out.wav", EnhanceOptions(chunk_s=0.5))
    out, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr == SR and sf.info(tmp_path / "out.wav").subtype == "FLOAT"
    np.testing.assert_allclose(out, whole_file(model, wave), atol=1e-4)


def test_formats_rates_and_keep_rate(tmp_path):
    model = trained_shape_model()
    cases = {"pcm16.wav": (SR, "PCM_16"), "pcm24.wav": (22_050, "PCM_24"), "f.flac": (SR, "PCM_16"),
             "v.ogg": (SR, "VORBIS"), "r48.wav": (48_000, "FLOAT")}
    for name, (sr, subtype) in cases.items():
        sf.write(tmp_path / name, noise(1.0, sr=sr), sr, subtype=subtype)
        out = enhance_file(model, tmp_path / name, tmp_path / "out" / name)
        info = sf.info(out)
        assert info.samplerate == SR and abs(info.frames - SR) <= 1, name
        kept = enhance_file(model, tmp_path / name, tmp_path / "kept" / name,
                            EnhanceOptions(keep_rate=True))
        assert sf.info(kept).samplerate == sr and abs(sf.info(kept).frames - sr) <= 1, name
    assert sf.info(tmp_path / "out" / "f.flac").format == "FLAC"


def test_channels_refused_picked_or_mixed(tmp_path):
    model = trained_shape_model()
    left, right = noise(1.0, seed=1), noise(1.0, seed=2)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    with pytest.raises(KdsdError, match=r"st.wav: has 2 channels.*--channel N.*--mix"):
        enhance_file(model, tmp_path / "st.wav", tmp_path / "o.wav")
    assert not (tmp_path / "o.wav").exists()
    picked = enhance_file(model, tmp_path / "st.wav", tmp_path / "r.wav", EnhanceOptions(channel=2))
    np.testing.assert_allclose(sf.read(picked)[0], enhance_wave(model, right), atol=1e-6)
    mixed = enhance_file(model, tmp_path / "st.wav", tmp_path / "m.wav", EnhanceOptions(mix=True))
    np.testing.assert_allclose(sf.read(mixed)[0], enhance_wave(model, (left + right) / 2), atol=1e-6)
    with pytest.raises(KdsdError, match="cannot pick channel 3"):
        enhance_file(model, tmp_path / "st.wav", tmp_path / "x.wav", EnhanceOptions(channel=3))


def test_nan_after_the_first_chunk_leaves_no_partial_output(tmp_path):
    wave = noise(3.0)
    wave[40_000] = np.inf
    sf.write(tmp_path / "inf.wav", wave, SR, subtype="FLOAT")
    with pytest.raises(KdsdError, match="inf.wav: contains NaN or Inf"):
        enhance_file(trained_shape_model(), tmp_path / "inf.wav", tmp_path / "out" / "o.wav",
                     EnhanceOptions(chunk_s=0.5))
    assert not (tmp_path / "out").exists()  # nor the folder made for it


def test_output_equal_to_input_is_refused_and_the_input_kept(tmp_path):
    sf.write(tmp_path / "in.wav", noise(1.0), SR)
    before = (tmp_path / "in.wav").read_bytes()
    for out in (tmp_path / "in.wav", tmp_path / "." / "in.wav", tmp_path):
        with pytest.raises(KdsdError, match="is the input file"):
            enhance_paths(trained_shape_model(), tmp_path / "in.wav", out)
    with pytest.raises(KdsdError, match="is the input folder"):
        enhance_paths(trained_shape_model(), tmp_path, tmp_path / "." )
    assert (tmp_path / "in.wav").read_bytes() == before


@pytest.fixture
def saved_model(tmp_path):
    return save_model(tmp_path / "model.pt", trained_shape_model(), config={}, seed=0, history=[])


def test_cli_folder_keeps_relative_paths_and_reports_failures_by_name(tmp_path, saved_model,
                                                                      env_with_venv):
    src = tmp_path / "in"
    (src / "day1" / "mic").mkdir(parents=True)
    sf.write(src / "a.wav", noise(1.0, 1), SR)
    sf.write(src / "day1" / "b.flac", noise(1.5, 2), SR)
    sf.write(src / "day1" / "mic" / "c.wav", noise(0.5, 3, sr=8000), 8000)
    (src / "day1" / "broken.wav").write_text("not audio")
    sf.write(src / "day1" / "tiny.wav", noise(10 / SR), SR)
    (src / "notes.txt").write_text("skipped: not an audio name")
    result = subprocess.run(["kdsd", "enhance", "--model", str(saved_model), str(src),
                             str(tmp_path / "out")], capture_output=True, text=True,
                            env=env_with_venv, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("kdsd: error: ")]
    assert any("broken.wav: not a readable audio file" in e for e in errors)
    assert any("tiny.wav: 10 samples is too short to enhance" in e for e in errors)
    assert "2 of 5 files failed (day1/broken.wav, day1/tiny.wav); the other 3 were written" in errors[-1]
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*"))
    assert written == ["a.wav", "day1", "day1/b.flac", "day1/mic", "day1/mic/c.wav"]
    assert f"note: {src / 'day1' / 'mic' / 'c.wav'}: resampling 8000 Hz -> 16000 Hz" in result.stderr
    np.testing.assert_allclose(sf.read(tmp_path / "out" / "a.wav")[0],
                               enhance_wave(trained_shape_model(), noise(1.0, 1)), atol=1e-4)

    good = subprocess.run(["kdsd", "enhance", "--model", str(saved_model), str(src / "a.wav"),
                           str(tmp_path / "single") + "/"], capture_output=True, text=True,
                          env=env_with_venv, timeout=300)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "single" / "a.wav").is_file()


def test_cli_cuda_flag(tmp_path, saved_model, env_with_venv):
    """`--device cuda` runs the same code on the GPU (same numbers); refused in one line without one."""
    sf.write(tmp_path / "in.wav", noise(2.0), SR)
    result = subprocess.run(["kdsd", "enhance", "--device", "cuda", "--model", str(saved_model),
                             str(tmp_path / "in.wav"), str(tmp_path / "gpu.wav")],
                            capture_output=True, text=True, env=env_with_venv, timeout=300)
    if not torch.cuda.is_available():
        assert result.returncode == 2
        assert result.stderr.strip() == ("kdsd: error: --device cuda: no CUDA device is available "
                                         "here; use --device cpu")
        return
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(sf.read(tmp_path / "gpu.wav")[0],
                               enhance_wave(trained_shape_model(), noise(2.0)), atol=1e-4)


def test_an_output_folder_inside_the_input_folder_is_not_enhanced_again(tmp_path):
    model = trained_shape_model()
    sf.write(tmp_path / "a.wav", noise(0.5), SR)
    for _ in range(2):
        written = enhance_paths(model, tmp_path, tmp_path / "enhanced")
        assert written == [tmp_path / "enhanced" / "a.wav"]
    assert sorted(p.name for p in (tmp_path / "enhanced").rglob("*")) == ["a.wav"]
