"""The corpus report: per-split statistics, plots, spectrogram examples and audio examples."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from kdsd import SAMPLE_RATE
from kdsd.analysis.corpus_report import corpus_stats, write_corpus_report
from kdsd.audio import write_audio
from kdsd.corpus.manifest import write_manifest
from kdsd.errors import KdsdError

DURATION = 0.5
# split -> [(speaker, engine, family, snr, rir)]
SPLITS = {
    "train": [("spk1", "espeak", "white", 0.0, ""), ("spk2", "espeak", "babble", 5.0, ""),
              ("spk1", "piper", "white", 10.0, ""), ("spk3", "piper", "babble", 2.5, "")],
    "test_noise": [("spk4", "espeak", "tones", -5.0, ""), ("spk4", "espeak", "tones", 0.0, ""),
                   ("spk5", "espeak", "hum", 7.5, "")],
    "test_reverb": [("spk6", "piper", "white", 1.0, "rt60=0.62"), ("spk6", "piper", "white", 3.0, ""),
                    ("spk7", "piper", "babble", 6.0, "rt60=0.31"), ("spk7", "piper", "white", 9.0, "")],
}


def _write_split(root: Path, split: str, specs, rng) -> Path:
    folder = root / split
    rows = []
    for i, (speaker, engine, family, snr, rir) in enumerate(specs):
        utt = f"{split}_{i:03d}"
        n = int(DURATION * SAMPLE_RATE)
        clean = (0.1 * np.sin(2 * np.pi * 220 * (1 + i) * np.arange(n) / SAMPLE_RATE)).astype(np.float32)
        noise = (0.1 * 10 ** (-snr / 20) * rng.standard_normal(n)).astype(np.float32)
        write_audio(folder / "clean" / f"{utt}.wav", clean)
        write_audio(folder / "noisy" / f"{utt}.wav", clean + noise)
        rows.append({"utt_id": utt, "split": split, "clean_path": f"clean/{utt}.wav",
                     "noisy_path": f"noisy/{utt}.wav", "speaker": speaker, "engine": engine,
                     "text": "hello world", "noise_family": family, "noise_seed": i, "snr_db": snr,
                     "rir": rir, "duration_s": DURATION, "sample_rate": SAMPLE_RATE})
    return write_manifest(rows, folder / "manifest.csv")


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    return {split: _write_split(root, split, specs, rng) for split, specs in SPLITS.items()}


@pytest.fixture(scope="module")
def report(manifests, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, write_corpus_report(manifests, out, n_audio_examples=2)


def test_corpus_stats(manifests):
    stats = corpus_stats(manifests).set_index("split")
    assert list(stats.index) == list(SPLITS)  # the given order
    assert stats["utterances"].to_dict() == {"train": 4, "test_noise": 3, "test_reverb": 4}
    assert stats.loc["train", "hours"] == pytest.approx(4 * DURATION / 3600)
    assert stats.loc["test_noise", "hours"] == pytest.approx(3 * DURATION / 3600)
    assert stats["speakers"].to_dict() == {"train": 3, "test_noise": 2, "test_reverb": 2}
    assert stats.loc["train", "engines"] == "espeak,piper"
    assert stats.loc["test_noise", "engines"] == "espeak"
    assert stats["noise_families"].to_dict() == {"train": 2, "test_noise": 2, "test_reverb": 2}
    assert stats.loc["train", ["snr_min", "snr_median", "snr_max"]].tolist() == [0.0, 3.75, 10.0]
    assert stats.loc["test_noise", ["snr_min", "snr_max"]].tolist() == [-5.0, 7.5]
    assert stats["reverberant"].to_dict() == {"train": 0.0, "test_noise": 0.0, "test_reverb": 0.5}


def test_report_files(report):
    out, written = report
    expected = ["tables/corpus.csv", "tables/corpus.md", "tables/corpus_families.csv",
                "plots/corpus_snr.png", "plots/corpus_families.png", "plots/corpus_spectrograms.png",
                "examples/corpus/index.csv"]
    for rel in expected:
        assert (out / rel).is_file(), rel
        assert out / rel in written.values()
    for name in ("corpus_snr", "corpus_families", "corpus_spectrograms"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 5_000, name
    assert not list(out.glob("**/.*"))  # no temp files left behind
    assert pd.read_csv(out / "tables" / "corpus.csv")["split"].tolist() == list(SPLITS)


def test_families_table(report):
    out, _ = report
    families = pd.read_csv(out / "tables" / "corpus_families.csv")
    assert list(families.columns) == ["split", "noise_family", "utterances"]
    counts = {(r.split, r.noise_family): r.utterances for r in families.itertuples()}
    assert counts == {("train", "babble"): 2, ("train", "white"): 2, ("test_noise", "hum"): 1,
                      ("test_noise", "tones"): 2, ("test_reverb", "babble"): 1,
                      ("test_reverb", "white"): 3}


def test_markdown(report):
    out, _ = report
    lines = (out / "tables" / "corpus.md").read_text().strip().splitlines()
    assert len(lines) == 2 + len(SPLITS)  # header, separator, one row per split
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]] for line in lines[2:]}
    assert set(rows) == set(SPLITS)
    assert rows["train"][2] == "0.00"  # hours, 2 decimals
    assert rows["test_noise"][6:9] == ["-5.0", "0.0", "7.5"]  # SNR, 1 decimal
    assert rows["test_reverb"][9] == "50.0 %"


def test_audio_examples(report):
    out, written = report
    index = pd.read_csv(out / "examples" / "corpus" / "index.csv")
    assert list(index.columns) == ["split", "utt_id", "kind", "path", "noise_family", "snr_db"]
    assert set(index["split"]) == {"test_noise", "test_reverb"}  # test splits only
    assert len(index) == 2 * 2 * 3  # 2 test splits × 2 utterances × clean/noise/noisy
    # Spread over the SNR range: lowest and highest of each split.
    picked = index.groupby("split")["snr_db"].agg(["min", "max"])
    assert picked.loc["test_noise"].tolist() == [-5.0, 7.5]
    assert picked.loc["test_reverb"].tolist() == [1.0, 9.0]
    row = index[(index["utt_id"] == "test_noise_000") & (index["kind"] == "clean")].iloc[0]
    assert row["noise_family"] == "tones" and row["snr_db"] == -5.0
    for (split, utt), group in index.groupby(["split", "utt_id"]):
        assert sorted(group["kind"]) == ["clean", "noise", "noisy"]
        waves = {}
        for r in group.itertuples():
            path = out / "examples" / "corpus" / r.path
            assert path == out / "examples" / "corpus" / split / f"{utt}_{r.kind}.wav"
            assert path in written.values()
            waves[r.kind], sr = sf.read(path, dtype="float32")
            assert sr == SAMPLE_RATE and len(waves[r.kind]) == int(DURATION * SAMPLE_RATE)
        np.testing.assert_allclose(waves["noise"], waves["noisy"] - waves["clean"], atol=1e-6)
        assert np.abs(waves["noise"]).max() > 1e-3


def test_examples_deterministic(manifests, report, tmp_path):
    out, _ = report
    write_corpus_report(manifests, tmp_path, n_audio_examples=2)
    first = pd.read_csv(out / "examples" / "corpus" / "index.csv")
    pd.testing.assert_frame_equal(first, pd.read_csv(tmp_path / "examples" / "corpus" / "index.csv"))


def test_missing_manifest_names_path(manifests, tmp_path):
    missing = tmp_path / "nowhere" / "manifest.csv"
    with pytest.raises(KdsdError, match=re.escape(str(missing))):
        corpus_stats({**manifests, "test_snr": missing})
    with pytest.raises(KdsdError, match=re.escape(str(missing))):
        write_corpus_report({"test_snr": missing}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_empty_manifest_names_path(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("utt_id,split,clean_path,noisy_path,speaker,engine,text,noise_family,"
                    "noise_seed,snr_db,rir,duration_s,sample_rate\n")
    with pytest.raises(KdsdError, match=f"{re.escape(str(path))}.*no rows"):
        corpus_stats({"test_matched": path})


def test_no_manifests():
    with pytest.raises(KdsdError, match="no manifests"):
        corpus_stats({})
