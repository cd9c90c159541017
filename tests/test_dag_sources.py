"""The DAG on audio already on disk: a VoiceBank+DEMAND layout and a clean + noise folder pair,
built from real TTS speech, run through the same Snakefile with only `corpus.source` changed."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from kdsd.audio import read_audio, resample
from kdsd.corpus.noise import make_noise
from kdsd.corpus.synthetic import build_split
from smoke_runs import REPO, recorded_test_sets, snakemake

pytestmark = pytest.mark.dag
# One student and one cheap reference keep these runs short; the full grid and the compiled
# training steps are test_dag.py's job (its smoke run compiles both), so these train eagerly.
SMALL = {"teacher": {"train": {"compile": False}},
         "students": {"methods": ["cosine"], "seeds": [1], "train": {"compile": False}},
         "evaluation": {"references": ["spectral_gating"]}}


@pytest.fixture(scope="module")
def tts_pairs(tmp_path_factory, tiny_corpus):
    """Twelve (clean, noisy) TTS pairs at 16 kHz."""
    config = tiny_corpus()
    config["utterances"]["train"] = 12
    split = build_split(config, "train", tmp_path_factory.mktemp("tts") / "train").parent
    table = pd.read_csv(split / "manifest.csv")
    return [(read_audio(split / r.clean_path), read_audio(split / r.noisy_path)) for r in table.itertuples()]


def _write_48k(path: Path, wave: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, resample(wave, 16000, 48000), 48000, subtype="FLOAT")


def _voicebank(root: Path, pairs) -> Path:
    names = {"trainset_28spk": ["p226_001", "p226_002", "p287_001", "p230_001", "p230_002",
                                "p230_003", "p231_001", "p231_002"],
             "testset": ["p232_001", "p232_002", "p257_001", "p257_002"]}
    pairs = iter(pairs)
    for tag, utts in names.items():
        for utt in utts:
            clean, noisy = next(pairs)
            _write_48k(root / f"clean_{tag}_wav" / f"{utt}.wav", clean)
            _write_48k(root / f"noisy_{tag}_wav" / f"{utt}.wav", noisy)
    return root


def _folders(base: Path, pairs) -> dict:
    for i, (clean, _) in enumerate(pairs):  # four speakers, one per subfolder
        speaker_dir = base / "clean" / f"spk{i % 4}"
        speaker_dir.mkdir(parents=True, exist_ok=True)
        sf.write(speaker_dir / f"u{i:02d}.wav", clean, 16000, subtype="FLOAT")
    (base / "noise").mkdir()
    for k, family in enumerate(("pink", "hum", "engine", "brown")):
        sf.write(base / "noise" / f"{family}.wav", 0.1 * make_noise(family, 48000, 16000, k, []), 16000)
    return {"clean_dir": str(base / "clean"), "noise_dir": str(base / "noise"),
            "valid_fraction": 0.25, "test_fraction": 0.25}


def _run(workdir: Path, corpus: dict, students: dict | None = None):
    workdir.mkdir(parents=True, exist_ok=True)
    overrides = workdir / "source.yaml"
    config = {**SMALL, "corpus": corpus}
    config["students"] = {**SMALL["students"], **(students or {})}
    overrides.write_text(yaml.safe_dump(config))
    run = snakemake(workdir, configfiles=(overrides,))
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir / "results"


def _assert_scored(results: Path, source: str, test_sets: list[str], method: str = "cosine") -> None:
    corpus = pd.read_csv(results / "tables" / "corpus.csv")
    assert corpus.split.tolist() == ["train", "valid", *test_sets]
    assert (results / "corpus" / source / "train" / "manifest.csv").is_file()
    table = pd.read_csv(results / "tables" / "summary.csv")
    assert set(table.test_set) == set(test_sets)
    students = table[table.kind == "student"]
    assert set(zip(students.method, students.test_set)) == {(method, t) for t in test_sets}
    assert np.isfinite(students.si_sdr_mean).all() and np.isfinite(table.pesq_wb_mean).all()
    assert set(table.kind) == {"input", "teacher", "student", "reference"}


def test_voicebank_layout_runs_through_the_dag(tmp_path, tts_pairs):
    root = _voicebank(tmp_path / "VoiceBank-DEMAND", tts_pairs)
    results = _run(tmp_path / "run", {"source": "voicebank", "voicebank": {"root": str(root)}})
    _assert_scored(results, "voicebank", ["test_voicebank", *recorded_test_sets()])
    valid = pd.read_csv(results / "corpus" / "voicebank" / "valid" / "manifest.csv")
    assert set(valid.speaker) == {"p226", "p287"}


def test_folder_mixer_runs_through_the_dag(tmp_path, tts_pairs):
    """...with its student distilled by a KD method from a file outside kdsd/distill/."""
    folders = _folders(tmp_path / "data", tts_pairs)
    method_file = REPO / "examples" / "attention_transfer.py"
    results = _run(tmp_path / "run", {"source": "folders", "folders": folders},
                   students={"method_files": [str(method_file)], "methods": ["attention"]})
    _assert_scored(results, "folders", ["test_matched", *recorded_test_sets()], method="attention")
    model = torch.load(results / "models" / "students" / "width_1_4" / "attention" / "seed1" / "model.pt",
                       weights_only=True)
    assert model["base_method"] == "attention" and model["selected_epoch"] >= 1
    assert all(h["train_kd"] > 0 for h in model["history"])  # the file's KD loss really trained
