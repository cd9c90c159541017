"""`kdsd enhance` on good and bad input: one-line errors naming the file, never a traceback."""
import subprocess

import numpy as np
import pytest
import soundfile as sf

from kdsd.audio import read_audio

SR = 16_000


def _kdsd(env, *args):
    return subprocess.run(["kdsd", *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def _tone(seconds=1.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_enhance_writes_same_length_16k_output(tmp_path, tiny_model, env_with_venv):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, _tone(), SR)
    result = _kdsd(env_with_venv, "enhance", "--model", tiny_model, src, dst)
    assert result.returncode == 0, result.stderr
    out, sr = sf.read(dst)
    assert sr == SR and out.shape == (SR,) and np.isfinite(out).all()


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), SR)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([_tone(), _tone()], axis=1), SR)
    return {
        "missing": (tmp_path / "missing.wav", "no such file"),
        "empty": (empty, "empty audio file"),
        "not audio": (text, "not a readable audio file"),
        "stereo": (stereo, "has 2 channels"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "not audio", "stereo"])
def test_enhance_bad_input_is_one_line_error(case, tmp_path, tiny_model, env_with_venv):
    path, problem = _bad_inputs(tmp_path)[case]
    result = _kdsd(env_with_venv, "enhance", "--model", tiny_model, path, tmp_path / "out.wav")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdsd: error: ")
    assert str(path) in lines[0] and problem in lines[0]
    assert not (tmp_path / "out.wav").exists()


def test_enhance_resamples_8k_input_with_a_note(tmp_path, tiny_model, env_with_venv):
    src, dst = tmp_path / "8k.wav", tmp_path / "out.wav"
    sf.write(src, _tone(sr=8000), 8000)
    result = _kdsd(env_with_venv, "enhance", "--model", tiny_model, src, dst)
    assert result.returncode == 0, result.stderr
    assert f"note: {src}: resampling 8000 Hz -> 16000 Hz" in result.stderr
    assert sf.info(dst).samplerate == SR and sf.info(dst).frames == SR


def test_enhance_refuses_a_model_that_is_not_one(tmp_path, env_with_venv):
    src, fake = tmp_path / "in.wav", tmp_path / "fake.pt"
    sf.write(src, _tone(), SR)
    fake.write_bytes(b"\x00" * 100)
    result = _kdsd(env_with_venv, "enhance", "--model", fake, src, tmp_path / "out.wav")
    assert result.returncode == 2 and "fake.pt: not a kdsd model file" in result.stderr


def test_read_audio_refuses_nan(tmp_path):
    from kdsd.errors import KdsdError

    bad = _tone()
    bad[10] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, bad, SR, subtype="FLOAT")
    with pytest.raises(KdsdError, match="nan.wav: contains NaN"):
        read_audio(path)


# --- kdsd export, and enhance with the exported graphs -----------------------------------------

def _noise(seconds, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def test_export_then_enhance_offline_and_streaming_with_the_graphs(tmp_path, env_with_venv):
    """A user's path from `kdsd -h`: export a causal student, enhance a file with model.onnx, stream
    it with model.stream.onnx; both equal PyTorch's offline causal estimate."""
    from kdsd.models.io import save_model
    from test_enhance import trained_shape_model

    model = trained_shape_model(width=4, depth=2, causal=True)
    save_model(tmp_path / "model.pt", model, config={}, seed=0, history=[])
    sf.write(tmp_path / "noisy.wav", _noise(1.5), SR, subtype="FLOAT")
    exported = _kdsd(env_with_venv, "export", tmp_path / "model.pt", "--out", tmp_path / "out" / "model.onnx")
    assert exported.returncode == 0, exported.stderr
    assert "onnxruntime matches PyTorch" in exported.stderr and "model.stream.onnx (streaming graph" in exported.stderr
    runs = {"pt": ["--model", tmp_path / "model.pt"], "onnx": ["--onnx", tmp_path / "out" / "model.onnx"],
            "stream": ["--stream", "--onnx", tmp_path / "out" / "model.stream.onnx"]}
    for name, args in runs.items():
        result = _kdsd(env_with_venv, "enhance", *args, tmp_path / "noisy.wav", tmp_path / f"{name}.wav")
        assert result.returncode == 0, result.stderr
    estimate = {name: sf.read(tmp_path / f"{name}.wav", dtype="float32")[0] for name in runs}
    assert np.abs(estimate["pt"]).max() > 1e-3  # a real estimate, not silence
    assert np.abs(estimate["onnx"] - estimate["pt"]).max() <= 1e-4
    assert np.abs(estimate["stream"] - estimate["pt"]).max() <= 1e-4
    wrong = _kdsd(env_with_venv, "enhance", "--onnx", tmp_path / "out" / "model.stream.onnx",
                  tmp_path / "noisy.wav", tmp_path / "x.wav")
    assert wrong.returncode == 2 and wrong.stderr.strip().splitlines() == [
        f"kdsd: error: {tmp_path / 'out' / 'model.stream.onnx'}: a streaming graph (history inputs); run it "
        "with --stream, or give the offline graph, model.onnx"]


def test_export_refuses_an_output_that_is_not_onnx_and_skips_streaming_for_an_offline_model(
        tmp_path, tiny_model, env_with_venv):
    bad = _kdsd(env_with_venv, "export", tiny_model, "--out", tmp_path / "model.bin")
    assert bad.returncode == 2 and "--out " in bad.stderr and "ending in .onnx" in bad.stderr
    good = _kdsd(env_with_venv, "export", tiny_model, "--out", tmp_path / "model.onnx")
    assert good.returncode == 0 and "is not causal, so it has no streaming graph" in good.stderr
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["model.onnx"]
    neither = _kdsd(env_with_venv, "enhance", tmp_path / "a.wav", tmp_path / "b.wav")
    assert neither.returncode == 2 and "one of the arguments --model --onnx is required" in neither.stderr


def test_onnx_model_enhances_folders_in_chunks_equal_to_the_whole_file(tmp_path):
    """`--onnx` goes through the same chunked file and folder path as a model.pt."""
    from kdsd.enhance import EnhanceOptions, OnnxModel, context_samples, enhance_paths
    from kdsd.models.export import export_onnx
    from test_enhance import trained_shape_model

    model = trained_shape_model(width=4, depth=2)
    onnx = OnnxModel(export_onnx(model, tmp_path / "model.onnx"))
    assert onnx.context == context_samples(model) == 512 + 5 * 128
    (tmp_path / "in" / "sub").mkdir(parents=True)
    waves = {"a.wav": _noise(2.0, 1), "sub/b.flac": _noise(0.7, 2)}
    for name, wave in waves.items():
        sf.write(tmp_path / "in" / name, wave, SR)
    whole = enhance_paths(onnx, tmp_path / "in", tmp_path / "whole")
    chunked = enhance_paths(onnx, tmp_path / "in", tmp_path / "chunked", EnhanceOptions(chunk_s=0.25))
    assert [p.relative_to(tmp_path / "whole") for p in whole] == [p.relative_to(tmp_path / "chunked")
                                                                   for p in chunked]
    for a, b in zip(whole, chunked):
        assert np.abs(sf.read(a)[0] - sf.read(b)[0]).max() <= 1e-5
    torch_out = enhance_paths(model, tmp_path / "in" / "a.wav", tmp_path / "torch.wav")[0]
    assert np.abs(sf.read(whole[0])[0] - sf.read(torch_out)[0]).max() <= 1e-4
