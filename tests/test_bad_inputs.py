"""Bad input never costs work: a battery across the CLI, the corpus adapters and the DAG.

Each case states the one-line message it expects (naming the file or config key first); none
may print a Python traceback or leave partial output behind.
"""
import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import REPO
from kdsd.cli import main
from kdsd.corpus.manifest import COLUMNS
from kdsd.distill import method_names
from kdsd.models.io import save_model
from kdsd.models.unet import UNetDAE

SR = 16_000


def tone(samples, sr=SR):
    return (0.1 * np.sin(2 * np.pi * 220 * np.arange(samples) / sr)).astype(np.float32)


# ------------------------------------------------------------------- CLI: audio and models

def _model(tmp_path, **args):
    torch.manual_seed(0)
    return save_model(tmp_path / "model.pt", UNetDAE(width=2, depth=2, **args), config={}, seed=0,
                      history=[])


def _wav(tmp_path, name, wave, **kw):
    sf.write(tmp_path / name, wave, SR, subtype="FLOAT", **kw)
    return tmp_path / name


def _nan(tmp_path):
    wave = tone(SR)
    wave[100] = np.nan
    return _wav(tmp_path, "nan.wav", wave)


def _inf(tmp_path):
    wave = tone(SR)
    wave[-1] = -np.inf
    return _wav(tmp_path, "inf.wav", wave)


def _text(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio\n")
    return tmp_path / "notes.wav"


def _empty_folder(tmp_path):
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "readme.txt").write_text("no audio here")
    return tmp_path / "recordings"


AUDIO_CASES = {  # input maker -> expected message after "kdsd: error: <path>: "
    "missing": (lambda t: t / "missing.wav", "no such file"),
    "empty": (lambda t: _wav(t, "empty.wav", np.zeros(0, np.float32)), "empty audio file (0 samples)"),
    "not audio": (_text, "not a readable audio file (Error opening"),
    "folder without audio": (_empty_folder, "no audio files in this folder"),
    "NaN": (_nan, "contains NaN or Inf samples"),
    "Inf": (_inf, "contains NaN or Inf samples"),
    "too short": (lambda t: _wav(t, "tiny.wav", tone(10)),
                  "10 samples is too short to enhance (at least 512 samples = 32 ms at 16 kHz)"),
    "stereo": (lambda t: _wav(t, "stereo.wav", np.stack([tone(SR)] * 2, axis=1)),
               "has 2 channels; kdsd expects mono audio (pass --channel N to pick one or --mix "
               "to average them)"),
}


def _truncated(tmp_path):
    whole = _model(tmp_path).read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    return tmp_path / "cut.pt"


def _foreign(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    return tmp_path / "foreign.pt"


def _other_class(tmp_path):
    payload = torch.load(_model(tmp_path), weights_only=True)
    torch.save({**payload, "name": "ConvTasNet"}, tmp_path / "tasnet.pt")
    return tmp_path / "tasnet.pt"


def _other_weights(tmp_path):
    payload = torch.load(_model(tmp_path), weights_only=True)
    torch.save({**payload, "args": {**payload["args"], "width": 4}}, tmp_path / "wide.pt")
    return tmp_path / "wide.pt"


def _model_folder(tmp_path):
    (tmp_path / "models").mkdir()
    return tmp_path / "models"


MODEL_CASES = {
    "truncated model.pt": (_truncated, "not a kdsd model file ("),
    "foreign torch file": (_foreign, "not a kdsd model file (missing args, name, state_dict)"),
    "another model class": (_other_class, "unknown model class 'ConvTasNet'; valid: UNetDAE"),
    "weights of another shape": (_other_weights, "its weights do not fit UNetDAE("),
    "folder as model": (_model_folder, "is a folder, not a model file"),
}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("kdsd: error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("case", AUDIO_CASES)
def test_enhance_bad_audio(case, tmp_path, capsys):
    make, expected = AUDIO_CASES[case]
    path = make(tmp_path)
    out = tmp_path / "out"
    assert main(["enhance", "--model", str(_model(tmp_path)), str(path), str(out / "x.wav")]) == 2
    assert one_error_line(capsys).startswith(f"kdsd: error: {path}: {expected}")
    assert not out.exists()


@pytest.mark.parametrize("case", MODEL_CASES)
def test_enhance_bad_model(case, tmp_path, capsys):
    make, expected = MODEL_CASES[case]
    model = make(tmp_path)
    wav = _wav(tmp_path, "in.wav", tone(SR))
    assert main(["enhance", "--model", str(model), str(wav), str(tmp_path / "out" / "o.wav")]) == 2
    assert one_error_line(capsys).startswith(f"kdsd: error: {model}: {expected}")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------- manifests and corpus adapters

def _manifest(tmp_path, clean_samples=SR, noisy_samples=SR, drop=(), missing_audio=False):
    (tmp_path / "clean").mkdir(parents=True)
    (tmp_path / "noisy").mkdir()
    rows = []
    for i in range(2):
        sf.write(tmp_path / "clean" / f"u{i}.wav", tone(clean_samples), SR)
        if not (missing_audio and i == 1):
            sf.write(tmp_path / "noisy" / f"u{i}.wav", tone(noisy_samples) + 0.01, SR)
        rows.append({"utt_id": f"u{i}", "split": "test_matched", "clean_path": f"clean/u{i}.wav",
                     "noisy_path": f"noisy/u{i}.wav", "speaker": "s", "engine": "e", "text": "t",
                     "noise_family": "white", "noise_seed": i, "snr_db": 5.0, "rir": "",
                     "duration_s": 1.0, "sample_rate": SR})
    table = pd.DataFrame(rows)[[c for c in COLUMNS if c not in drop]]
    table.to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path / "manifest.csv"


MANIFEST_CASES = {
    "missing column": (dict(drop=("snr_db",)), "manifest.csv", "manifest lacks columns snr_db"),
    "missing audio file": (dict(missing_audio=True), "noisy/u1.wav", "no such file"),
    "clean/noisy length mismatch": (dict(noisy_samples=SR + 80), "noisy/u0.wav",
                                    f"{SR + 80} samples but its clean reference has {SR}"),
}


@pytest.mark.parametrize("case", MANIFEST_CASES)
def test_scoring_a_bad_manifest(case, tmp_path, capsys):
    kwargs, named, expected = MANIFEST_CASES[case]
    manifest = _manifest(tmp_path, **kwargs)
    out = tmp_path / "scores" / "input.csv"
    assert main(["score-input", "--manifest", str(manifest), "--out", str(out)]) == 2
    assert one_error_line(capsys).startswith(f"kdsd: error: {tmp_path / named}: {expected}")
    assert not out.parent.exists()



def test_scoring_lists_that_do_not_pair_up_are_refused(tiny_model, tmp_path, capsys):
    """One scoring job covers every test set: the i-th manifest, input table and output belong
    together, so lists of different lengths are refused before anything is written."""
    manifests = [_manifest(tmp_path / name) for name in ("a", "b")]
    inputs = tmp_path / "input_a.csv"
    assert main(["score-input", "--manifest", str(manifests[0]), "--out", str(inputs)]) == 0
    outs = [tmp_path / "scores" / f"{name}.csv" for name in ("a", "b")]
    assert main(["score", "--model", str(tiny_model), "--name", "teacher",
                 "--manifest", *map(str, manifests), "--input-scores", str(inputs),
                 "--out", *map(str, outs)]) == 2
    assert one_error_line(capsys) == ("kdsd: error: the per-test-set lists differ in length: "
                                      "2 manifests, 1 input_scores, 2 outputs")
    assert not (tmp_path / "scores").exists()


def test_one_call_over_several_test_sets_writes_the_tables_of_separate_calls(tiny_model, tmp_path):
    manifests = [_manifest(tmp_path / name, noisy_samples=SR) for name in ("a", "b")]
    inputs = [tmp_path / f"input_{name}.csv" for name in ("a", "b")]
    assert main(["score-input", "--manifest", *map(str, manifests), "--out", *map(str, inputs),
                 "--threads", "2"]) == 0

    def score(manifests, input_scores, outs):
        # One --threads for every call: it is also the model's torch thread count, and a
        # convolution's float sums may differ between 1 and 2 threads (PESQ-WB 4.551461 vs
        # 4.551421 seen here).
        return main(["score", "--model", str(tiny_model), "--name", "teacher", "--threads", "2",
                     "--manifest", *map(str, manifests), "--input-scores", *map(str, input_scores),
                     "--out", *map(str, outs)])

    together = [tmp_path / "together" / f"{name}.csv" for name in ("a", "b")]
    assert score(manifests, inputs, together) == 0
    for manifest, input_csv, joint in zip(manifests, inputs, together):
        alone = tmp_path / "alone" / joint.name
        assert score([manifest], [input_csv], [alone]) == 0
        joint_table, alone_table = pd.read_csv(joint), pd.read_csv(alone)
        assert len(joint_table) == 2 and "pesq_wb_i" in joint_table.columns
        # ESTOI may differ in the last bit between processes (tests/smoke_runs.py, LAST_BIT_COLUMNS)
        pd.testing.assert_frame_equal(joint_table, alone_table, rtol=1e-12)

ADAPTER_CASES = {
    "voicebank root missing": (
        {"source": "voicebank", "voicebank": {"root": "/nonexistent/VB"}},
        "/nonexistent/VB/clean_trainset_28spk_wav: VoiceBank+DEMAND folder not found"),
    "folders without a clean folder": (
        {"source": "folders", "folders": {"clean_dir": None, "noise_dir": "/tmp"}},
        "config corpus.folders.clean_dir"),
}


@pytest.mark.parametrize("case", ADAPTER_CASES)
def test_corpus_adapter_refuses_a_missing_source(case, tmp_path, capsys):
    corpus, expected = ADAPTER_CASES[case]
    out = tmp_path / "corpus" / "train"
    assert main(["build-corpus", "--config-json", json.dumps(corpus), "--split", "train",
                 "--out", str(out)]) == 2
    assert one_error_line(capsys).startswith(f"kdsd: error: {expected}")
    assert not (tmp_path / "corpus").exists()


# ---------------------------------------------------------------- DAG: config, at parse time

DAG_CASES = {
    "unknown method": ("students:\n  methods: [none, cosin]\n", ["cosin", *method_names()]),
    "unknown scenario field": (
        "students:\n  scenarios:\n    half: {width_ratio: 0.5, depth_ratio: 0.5}\n",
        ["Additional properties are not allowed ('depth_ratio' was unexpected)"]),
    "inverted SNR range": ("corpus:\n  snr_db: [10.0, -5.0]\n",
                           ["config corpus.snr_db: low end 10.0 is above high end -5.0"]),
    "inverted RT60 range": ("corpus:\n  rt60_s: [0.9, 0.3]\n",
                            ["config corpus.rt60_s: low end 0.9 is above high end 0.3"]),
    "negative RT60": ("corpus:\n  rt60_s: [-0.3, 0.9]\n", ["-0.3 is less than or equal to the minimum of 0"]),
    "test set the source lacks": (
        "evaluation:\n  test_sets: [test_matched, test_vocal]\n",
        ["config evaluation.test_sets: test_vocal not provided by corpus source 'synthetic'"]),
}


@pytest.mark.parametrize("case", DAG_CASES)
def test_bad_config_stops_the_dag_before_any_job(case, tmp_path, env_with_venv):
    text, expected = DAG_CASES[case]
    (tmp_path / "bad.yaml").write_text(text)
    result = subprocess.run(
        ["snakemake", "-n", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--cores", "1", "--configfile", str(REPO / "config.yaml"), str(tmp_path / "bad.yaml")],
        capture_output=True, text=True, env=env_with_venv, timeout=300)
    output = result.stdout + result.stderr  # a dry run reports parse errors on stdout
    assert result.returncode != 0
    assert "Traceback (most recent call last)" not in output
    for part in expected:
        assert part in output, output[-2000:]
    assert not (tmp_path / "results").exists()
