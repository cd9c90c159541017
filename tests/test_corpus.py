"""Embedded corpus: determinism, manifest contract, exact SNR, disjoint speakers and sentences."""
import hashlib

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from kdsd.corpus.manifest import COLUMNS, read_manifest
from kdsd.corpus.speakers import SPEAKERS, speakers_in
from kdsd.corpus.synthetic import PEAK_LIMIT, mix_at_snr, synthesize_split
from kdsd.errors import KdsdError


def _hashes(split_dir):
    """Hashes of the decoded samples (float WAV headers carry a write timestamp)."""
    table = pd.read_csv(split_dir / "manifest.csv")
    return {p: hashlib.sha256(sf.read(split_dir / p, dtype="float32")[0].tobytes()).hexdigest()
            for p in list(table.clean_path) + list(table.noisy_path)}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    config = {"seed": 11, "utterances": {"train": 3, "valid": 2, "test_matched": 2, "test_noise": 2},
              "snr_db": [0.0, 5.0], "train_noises": ["white", "babble"], "test_only_noises": ["tones"],
              "speech_level_dbfs": -25.0, "babble_talkers": 2}
    root = tmp_path_factory.mktemp("corpora")
    out = {}
    for name, seed, workers in (("a", 11, 1), ("b", 11, 2), ("c", 12, 1)):
        out[name] = synthesize_split({**config, "seed": seed}, "train", root / name, workers).parent
    out["noise"] = synthesize_split(config, "test_noise", root / "noise").parent
    return out


def test_same_seed_gives_bit_identical_audio_whatever_the_workers(corpora):
    assert _hashes(corpora["a"]) == _hashes(corpora["b"])


def test_other_seed_gives_other_audio(corpora):
    a, c = _hashes(corpora["a"]), _hashes(corpora["c"])
    assert set(a.values()).isdisjoint(c.values())


def test_manifest_has_design_columns_and_valid_rows(corpora):
    table = read_manifest(corpora["a"] / "manifest.csv")
    assert tuple(table.columns) == COLUMNS
    assert (table.split == "train").all() and (table.sample_rate == 16000).all()
    assert set(table.engine) <= {"piper", "espeak"}
    for row in table.itertuples():
        clean, sr = sf.read(corpora["a"] / row.clean_path)
        noisy, _ = sf.read(corpora["a"] / row.noisy_path)
        assert sr == 16000 and clean.shape == noisy.shape
        assert row.duration_s == pytest.approx(len(clean) / sr, abs=1e-3)
        assert 0.0 <= row.snr_db <= 5.0
        assert np.max(np.abs(noisy)) <= PEAK_LIMIT + 1e-6
        # The recorded SNR is the real one: noisy − clean is exactly the scaled noise.
        noise = noisy - clean
        snr = 10 * np.log10(np.sum(clean**2) / np.sum(noise**2))
        assert snr == pytest.approx(row.snr_db, abs=0.02)


def test_test_noise_uses_only_test_families_and_unseen_speakers(corpora):
    table = read_manifest(corpora["noise"] / "manifest.csv")
    assert set(table.noise_family) == {"tones"}
    assert set(table.speaker) <= {s.speaker_id for s in speakers_in("test")}
    train = read_manifest(corpora["a"] / "manifest.csv")
    assert set(train.speaker).isdisjoint(table.speaker)
    assert set(train.text).isdisjoint(table.text)


def test_speaker_pools_are_disjoint_and_use_both_engines():
    train, test = speakers_in("train"), speakers_in("test")
    assert {s.speaker_id for s in train}.isdisjoint(s.speaker_id for s in test)
    assert len({s.voice.engine for s in train}) == 2 and len({s.voice.engine for s in test}) == 2
    assert len({s.speaker_id for s in SPEAKERS}) == len(SPEAKERS)


def test_mix_at_snr_is_exact_and_never_clips():
    rng = np.random.default_rng(0)
    speech, noise = 0.5 * rng.standard_normal(16000), rng.standard_normal(16000)
    clean, noisy = mix_at_snr(speech, noise, -5.0)
    assert np.max(np.abs(noisy)) <= PEAK_LIMIT + 1e-6
    snr = 10 * np.log10(np.sum(clean**2) / np.sum((noisy - clean) ** 2))
    assert snr == pytest.approx(-5.0, abs=1e-3)


def test_overlapping_noise_families_are_refused(tmp_path, tiny_corpus_config):
    config = {**tiny_corpus_config, "test_only_noises": ["white"]}
    with pytest.raises(KdsdError, match="both in training and test-only"):
        synthesize_split(config, "train", tmp_path)
