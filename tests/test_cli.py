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
