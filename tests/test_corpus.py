"""Embedded corpus: determinism, manifest contract, exact SNR, disjoint speakers and sentences,
and the one factor each test set changes."""
import hashlib

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from kdsd.corpus.manifest import COLUMNS, read_manifest
from kdsd.corpus.speakers import SPEAKERS, speakers_in
from kdsd.corpus.mixing import PEAK_LIMIT, mix_at_snr
from kdsd.corpus.synthetic import TEST_SPLITS, build_split
from kdsd.errors import KdsdError


def _hashes(split_dir):
    """Hashes of the decoded samples (float WAV headers carry a write timestamp)."""
    table = pd.read_csv(split_dir / "manifest.csv")
    return {p: hashlib.sha256(sf.read(split_dir / p, dtype="float32")[0].tobytes()).hexdigest()
            for p in list(table.clean_path) + list(table.noisy_path)}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, tiny_corpus):
    config = tiny_corpus()
    root = tmp_path_factory.mktemp("corpora")
    out = {}
    for name, seed, workers in (("a", 11, 1), ("b", 11, 2), ("c", 12, 1)):
        out[name] = build_split({**config, "seed": seed}, "train", root / name, workers).parent
    for split in TEST_SPLITS:
        out[split] = build_split(config, split, root / split).parent
    return out


def _table(corpora, name):
    return read_manifest(corpora[name] / "manifest.csv")


def _measured_snr(split_dir, row) -> float:
    clean, _ = sf.read(split_dir / row.clean_path)
    noisy, _ = sf.read(split_dir / row.noisy_path)
    return 10 * np.log10(np.sum(clean**2) / np.sum((noisy - clean) ** 2))


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
    table = read_manifest(corpora["test_noise"] / "manifest.csv")
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


def test_overlapping_noise_families_are_refused(tmp_path, tiny_corpus):
    config = {**tiny_corpus(), "test_only_noises": ["white"]}
    with pytest.raises(KdsdError, match="both in training and test-only"):
        build_split(config, "train", tmp_path)


def test_every_split_has_unseen_sentences(corpora):
    texts = {name: set(_table(corpora, name).text) for name in ("a", *TEST_SPLITS)}
    for name, text in texts.items():
        others = set().union(*(t for n, t in texts.items() if n != name))
        assert text.isdisjoint(others), name


def test_test_snr_lies_below_the_training_range_and_is_exact(corpora):
    table = _table(corpora, "test_snr")
    assert table.snr_db.between(-8.0, -3.0).all() and table.snr_db.max() < 0.0
    assert set(table.noise_family) <= {"white", "babble"} and table.rir.isna().all()  # dry
    for row in table.itertuples():
        assert _measured_snr(corpora["test_snr"], row) == pytest.approx(row.snr_db, abs=0.02)


def test_test_reverb_is_reverberant_with_exact_snr(corpora):
    table = _table(corpora, "test_reverb")
    assert table.rir.str.startswith("rt60=").all()
    rt60 = table.rir.str.extract(r"rt60=([0-9.]+)")[0].astype(float)
    assert rt60.between(0.4, 0.8).all()
    for row in table.itertuples():
        assert _measured_snr(corpora["test_reverb"], row) == pytest.approx(row.snr_db, abs=0.02)


def test_speech_is_dc_free_at_the_documented_level(corpora):
    for name in ("a", "test_reverb"):
        for row in _table(corpora, name).itertuples():
            clean, _ = sf.read(corpora[name] / row.clean_path)
            noisy, _ = sf.read(corpora[name] / row.noisy_path)
            assert abs(clean.mean()) < 1e-4
            level = 20 * np.log10(np.sqrt(np.mean(clean**2)))
            clipped_down = np.max(np.abs(noisy)) >= PEAK_LIMIT - 1e-6
            assert level == pytest.approx(-25.0, abs=0.05) or (clipped_down and level < -25.0)


def test_test_speaker_uses_voices_never_heard_in_training(corpora):
    table = _table(corpora, "test_speaker")
    assert set(table.speaker) <= {s.speaker_id for s in speakers_in("test_speaker")}
    train_voices = {s.voice for s in speakers_in("train")}
    assert all(s.voice not in train_voices for s in speakers_in("test_speaker"))


def test_test_snr_range_must_lie_below_training(tmp_path, tiny_corpus):
    config = {**tiny_corpus(), "test_snr_db": [-2.0, 3.0]}
    with pytest.raises(KdsdError, match="must lie below the training range"):
        build_split(config, "test_snr", tmp_path)
