"""External-corpus adapters on tiny generated corpora in the real layouts: VoiceBank+DEMAND
folders (48 kHz pairs, log file, transcripts) and a clean folder + noise folder mixer."""
import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from kdsd.corpus import folders, voicebank
from kdsd.corpus.manifest import COLUMNS, read_manifest
from kdsd.errors import KdsdError

VB_SR = 48_000
TRAIN_UTTS = {"p226_001": 5.0, "p226_002": 7.5, "p230_001": 2.0, "p230_002": 10.0,
              "p287_001": 0.0, "p287_002": 15.0}
TEST_UTTS = {"p232_001": 5.0, "p257_001": -2.5}


def _tone(sr, seconds, freqs, seed):
    """Band-limited test signal (sines well below 8 kHz, so resampling keeps its energy) with
    10 ms fades (no edge clicks for the resampler to smear)."""
    t = np.arange(int(sr * seconds)) / sr
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, len(freqs))
    wave = sum(np.sin(2 * np.pi * f * t + p) / (k + 1) for k, (f, p) in enumerate(zip(freqs, phases)))
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    return wave * ramp


def _vb_pair(folder_clean, folder_noisy, utt, snr_db, seed):
    clean = 0.2 * _tone(VB_SR, 0.5, (220, 440, 660), seed)
    noise = _tone(VB_SR, 0.5, (1100, 2900, 4300), seed + 1000)
    noise *= np.sqrt(np.sum(clean**2) / np.sum(noise**2)) * 10 ** (-snr_db / 20)
    sf.write(folder_clean / f"{utt}.wav", clean, VB_SR, subtype="FLOAT")
    sf.write(folder_noisy / f"{utt}.wav", clean + noise, VB_SR, subtype="FLOAT")


def make_voicebank(root):
    for tag, utts in (("trainset_28spk", TRAIN_UTTS), ("testset", TEST_UTTS)):
        (root / f"clean_{tag}_wav").mkdir(parents=True)
        (root / f"noisy_{tag}_wav").mkdir(parents=True)
        for seed, (utt, snr) in enumerate(utts.items()):
            _vb_pair(root / f"clean_{tag}_wav", root / f"noisy_{tag}_wav", utt, snr, seed)
    (root / "logfiles").mkdir()
    (root / "logfiles" / "log_trainset_28spk.txt").write_text("p226_001 living 5\np287_002 cafe 15\n")
    (root / "testset_txt").mkdir()
    (root / "testset_txt" / "p232_001.txt").write_text("Ask her to bring\nthese things.\n")
    return root


def vb_cfg(root, **overrides):
    return {"seed": 3, "snr_db": [0.0, 5.0], "speech_level_dbfs": -25.0,
            "voicebank": {"root": root and str(root), "train_speakers": 28, "valid_speakers": ["p226", "p287"],
                          **overrides}}


def _hashes(split_dir):
    """Hashes of the decoded samples (float WAV headers carry a write timestamp)."""
    table = pd.read_csv(split_dir / "manifest.csv")
    return {p: hashlib.sha256(sf.read(split_dir / p, dtype="float32")[0].tobytes()).hexdigest()
            for p in list(table.clean_path) + list(table.noisy_path)}


def _snr(clean, noisy):
    return 10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum((noisy - clean.astype(np.float64)) ** 2))


def _assert_no_leftovers(parent, out_dir):
    assert not out_dir.exists()
    assert not parent.exists() or not [p.name for p in parent.iterdir() if p.name.startswith(f".{out_dir.name}.")]


@pytest.fixture(scope="module")
def vb(tmp_path_factory):
    base = tmp_path_factory.mktemp("vb")
    root = make_voicebank(base / "VoiceBank")
    built = {split: voicebank.build_split(vb_cfg(root), split, base / "out" / split).parent
             for split in voicebank.SPLITS}
    built["train_2workers"] = voicebank.build_split(vb_cfg(root), "train", base / "out2" / "train", 2).parent
    return root, built


def test_voicebank_builds_every_split_with_the_manifest_contract(vb):
    root, built = vb
    voicebank.check_layout(vb_cfg(root))
    assert voicebank.SPLITS == ("train", "valid", "test_voicebank")
    counts = {"train": 2, "valid": 4, "test_voicebank": 2}
    for split in voicebank.SPLITS:
        table = read_manifest(built[split] / "manifest.csv")
        assert tuple(table.columns) == COLUMNS
        assert len(table) == counts[split] and (table.split == split).all()
        assert (table.engine == "voicebank").all() and (table.sample_rate == 16000).all()
        assert (table.noise_seed == -1).all() and table.rir.isna().all()
        for row in table.itertuples():
            clean, sr = sf.read(built[split] / row.clean_path, dtype="float32")
            noisy, sr_noisy = sf.read(built[split] / row.noisy_path, dtype="float32")
            assert sr == sr_noisy == 16000 and len(clean) == len(noisy) == 8000
            assert row.duration_s == pytest.approx(0.5)
            assert row.speaker == row.utt_id.split("_")[0]


def test_voicebank_valid_is_exactly_the_held_out_speakers(vb):
    _, built = vb
    valid = read_manifest(built["valid"] / "manifest.csv")
    train = read_manifest(built["train"] / "manifest.csv")
    test = read_manifest(built["test_voicebank"] / "manifest.csv")
    assert set(valid.speaker) == {"p226", "p287"}
    assert set(train.speaker) == {"p230"}
    assert set(test.utt_id) == set(TEST_UTTS)


def test_voicebank_snr_is_measured_from_the_pair(vb):
    _, built = vb
    for split in voicebank.SPLITS:
        table = read_manifest(built[split] / "manifest.csv")
        for row in table.itertuples():
            assert row.snr_db == pytest.approx({**TRAIN_UTTS, **TEST_UTTS}[row.utt_id], abs=0.05)
            clean, _ = sf.read(built[split] / row.clean_path)
            noisy, _ = sf.read(built[split] / row.noisy_path)
            assert _snr(clean, noisy) == pytest.approx(row.snr_db, abs=0.01)


def test_voicebank_noise_family_and_text_come_from_the_optional_files(vb):
    _, built = vb
    valid = read_manifest(built["valid"] / "manifest.csv").set_index("utt_id")
    assert valid.loc["p226_001", "noise_family"] == "living"
    assert valid.loc["p287_002", "noise_family"] == "cafe"
    assert valid.loc["p226_002", "noise_family"] == "unknown"
    test = read_manifest(built["test_voicebank"] / "manifest.csv").set_index("utt_id")
    assert test.loc["p232_001", "text"] == "Ask her to bring these things."
    assert pd.isna(test.loc["p257_001", "text"])
    assert (test.noise_family == "unknown").all()


def test_voicebank_output_is_the_same_with_two_workers(vb):
    _, built = vb
    assert _hashes(built["train"]) == _hashes(built["train_2workers"])
    pd.testing.assert_frame_equal(pd.read_csv(built["train"] / "manifest.csv"),
                                  pd.read_csv(built["train_2workers"] / "manifest.csv"))


@pytest.fixture
def vb_copy(vb, tmp_path):
    return shutil.copytree(vb[0], tmp_path / "VoiceBank")


def test_voicebank_missing_folder_is_named(vb_copy):
    shutil.rmtree(vb_copy / "noisy_testset_wav")
    with pytest.raises(KdsdError) as err:
        voicebank.check_layout(vb_cfg(vb_copy))
    assert str(err.value).startswith(f"{vb_copy / 'noisy_testset_wav'}: ")
    with pytest.raises(KdsdError, match="root: not set"):
        voicebank.check_layout(vb_cfg(None))


def test_voicebank_clean_file_without_noisy_counterpart_fails_and_leaves_nothing(vb_copy, tmp_path):
    (vb_copy / "noisy_trainset_28spk_wav" / "p230_002.wav").unlink()
    out = tmp_path / "out" / "train"
    with pytest.raises(KdsdError) as err:
        voicebank.build_split(vb_cfg(vb_copy), "train", out)
    assert str(err.value).startswith(f"{vb_copy / 'noisy_trainset_28spk_wav' / 'p230_002.wav'}: missing")
    assert str(vb_copy / "clean_trainset_28spk_wav" / "p230_002.wav") in str(err.value)
    _assert_no_leftovers(tmp_path / "out", out)
    with pytest.raises(KdsdError, match="p230_002.wav: missing"):
        voicebank.check_layout(vb_cfg(vb_copy))


def test_voicebank_absent_valid_speaker_is_named(vb_copy):
    with pytest.raises(KdsdError) as err:
        voicebank.check_layout(vb_cfg(vb_copy, valid_speakers=["p226", "p999"]))
    message = str(err.value)
    assert message.startswith(f"{vb_copy / 'clean_trainset_28spk_wav'}: ") and "p999" in message


def test_voicebank_pair_length_mismatch_fails_mid_build_and_leaves_nothing(vb_copy, tmp_path):
    noisy = vb_copy / "noisy_testset_wav" / "p257_001.wav"
    wave, sr = sf.read(noisy)
    sf.write(noisy, wave[:-100], sr, subtype="FLOAT")
    out = tmp_path / "out" / "test_voicebank"
    for workers in (1, 2):
        with pytest.raises(KdsdError) as err:
            voicebank.build_split(vb_cfg(vb_copy), "test_voicebank", out, workers)
        assert str(err.value).startswith(f"{noisy}: 23900 samples at 48000 Hz")
        _assert_no_leftovers(tmp_path / "out", out)


def test_rebuilding_replaces_an_existing_split_folder(vb_copy, tmp_path):
    out = tmp_path / "test_voicebank"
    out.mkdir()
    (out / "stale.wav").write_text("from an older run")
    manifest = voicebank.build_split(vb_cfg(vb_copy), "test_voicebank", out)
    assert manifest == out / "manifest.csv" and manifest.is_file()
    assert not (out / "stale.wav").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["VoiceBank", "test_voicebank"]


# --- folder mixer -------------------------------------------------------------------------

def make_folders(base, n_noises=3):
    clean, noise, test_noise = base / "clean", base / "noise", base / "test_noise"
    for k, (speaker, name, sr, fmt) in enumerate([("spkA", "a1.wav", 48_000, "WAV"),
                                                  ("spkA", "a2.flac", 16_000, "FLAC"),
                                                  ("spkB", "b1.wav", 16_000, "WAV"),
                                                  ("spkB", "b2.wav", 16_000, "WAV"),
                                                  ("spkC", "c1.wav", 16_000, "WAV"),
                                                  ("spkC", "c2.wav", 16_000, "WAV")]):
        (clean / speaker).mkdir(parents=True, exist_ok=True)
        sf.write(clean / speaker / name, 0.3 * _tone(sr, 0.5, (200 + 20 * k, 400, 900), k), sr, format=fmt)
    (clean / "spkA" / "a1.txt").write_text("hello  world\n")
    rng = np.random.default_rng(0)
    noise.mkdir()
    # n2 is shorter than the utterances, so it must be looped.
    for k, seconds in enumerate((1.0, 0.2, 1.0)[:n_noises]):
        sf.write(noise / f"n{k + 1}.wav", 0.1 * rng.standard_normal(int(16_000 * seconds)), 16_000)
    test_noise.mkdir()
    sf.write(test_noise / "t1.wav", 0.1 * _tone(16_000, 1.0, (50, 100, 150), 9), 16_000)
    return base


def fo_cfg(base, **overrides):
    return {"seed": 5, "snr_db": [0.0, 5.0], "speech_level_dbfs": -25.0,
            "folders": {"clean_dir": str(base / "clean"), "noise_dir": str(base / "noise"),
                        "test_noise_dir": str(base / "test_noise"), "valid_fraction": 0.1,
                        "test_fraction": 0.1, **overrides}}


@pytest.fixture(scope="module")
def fo(tmp_path_factory):
    base = make_folders(tmp_path_factory.mktemp("fo"))
    built = {split: folders.build_split(fo_cfg(base), split, base / "out" / split).parent
             for split in folders.SPLITS}
    built["train_2workers"] = folders.build_split(fo_cfg(base), "train", base / "out2" / "train", 2).parent
    return base, built


def test_folders_build_every_split_speaker_disjointly(fo):
    base, built = fo
    folders.check_layout(fo_cfg(base))
    tables = {split: read_manifest(built[split] / "manifest.csv") for split in folders.SPLITS}
    for split, table in tables.items():
        assert tuple(table.columns) == COLUMNS and (table.split == split).all()
        assert (table.engine == "folder").all() and (table.sample_rate == 16000).all()
        assert len(table) == 2 and table.speaker.nunique() == 1
    speakers = [set(tables[s].speaker) for s in ("train", "valid", "test_matched")]
    assert set.union(*speakers) == {"spkA", "spkB", "spkC"}
    assert sum(map(len, speakers)) == 3
    assert set(tables["test_noise"].speaker) == set(tables["test_matched"].speaker)


def test_folders_noise_files_are_disjoint_between_training_and_test(fo):
    _, built = fo
    fam = {s: set(read_manifest(built[s] / "manifest.csv").noise_family) for s in folders.SPLITS}
    assert (fam["train"] | fam["valid"]).isdisjoint(fam["test_matched"])
    assert (fam["train"] | fam["valid"] | fam["test_matched"]) <= {"n1", "n2", "n3"}
    assert fam["test_noise"] == {"t1"}


def test_folders_mixtures_have_the_recorded_snr_and_speech_level(fo):
    _, built = fo
    for split in folders.SPLITS:
        table = read_manifest(built[split] / "manifest.csv")
        for row in table.itertuples():
            clean, sr = sf.read(built[split] / row.clean_path)
            noisy, _ = sf.read(built[split] / row.noisy_path)
            assert sr == 16000 and len(clean) == len(noisy) == 8000
            assert 0.0 <= row.snr_db <= 5.0
            assert _snr(clean, noisy) == pytest.approx(row.snr_db, abs=0.01)
            assert 20 * np.log10(np.sqrt(np.mean(clean**2))) == pytest.approx(-25.0, abs=0.05)
            assert row.noise_seed >= 0


def test_folders_transcript_next_to_the_clean_file_is_the_text(fo):
    _, built = fo
    texts = pd.concat(read_manifest(built[s] / "manifest.csv") for s in folders.SPLITS).text
    assert "hello world" in set(texts)


def test_folders_output_is_the_same_with_two_workers(fo):
    _, built = fo
    assert _hashes(built["train"]) == _hashes(built["train_2workers"])
    pd.testing.assert_frame_equal(pd.read_csv(built["train"] / "manifest.csv"),
                                  pd.read_csv(built["train_2workers"] / "manifest.csv"))


def test_folders_other_seed_gives_other_mixtures(fo, tmp_path):
    base, built = fo
    other = folders.build_split({**fo_cfg(base), "seed": 6}, "train", tmp_path / "train").parent
    assert set(_hashes(other).values()) != set(_hashes(built["train"]).values())


def test_folders_test_noise_only_with_a_test_noise_dir(fo, tmp_path):
    base, _ = fo
    cfg = fo_cfg(base, test_noise_dir=None)
    assert folders.splits(cfg) == ("train", "valid", "test_matched")
    assert folders.splits(fo_cfg(base)) == folders.SPLITS
    folders.check_layout(cfg)
    with pytest.raises(KdsdError, match="test_noise_dir"):
        folders.build_split(cfg, "test_noise", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_folders_too_few_noise_files_is_named_and_leaves_nothing(tmp_path):
    base = make_folders(tmp_path / "data", n_noises=1)
    with pytest.raises(KdsdError) as err:
        folders.check_layout(fo_cfg(base))
    assert str(err.value).startswith(f"{base / 'noise'}: only 1 noise file")
    out = tmp_path / "out" / "train"
    with pytest.raises(KdsdError, match="need at least 2"):
        folders.build_split(fo_cfg(base), "train", out)
    assert not out.exists()


def test_folders_missing_folder_and_too_few_speakers_are_named(tmp_path):
    base = make_folders(tmp_path / "data")
    with pytest.raises(KdsdError) as err:
        folders.check_layout(fo_cfg(base, clean_dir=str(base / "nope")))
    assert str(err.value).startswith(f"{base / 'nope'}: clean speech folder not found")
    shutil.rmtree(base / "clean" / "spkC")
    with pytest.raises(KdsdError) as err:
        folders.check_layout(fo_cfg(base))
    assert str(err.value).startswith(f"{base / 'clean'}: 2 speaker(s)")
    with pytest.raises(KdsdError, match="overlaps"):
        folders.check_layout(fo_cfg(base, test_noise_dir=str(base / "noise")))


def test_folders_flat_clean_folder_splits_by_file(tmp_path):
    base = make_folders(tmp_path / "data")
    flat = base / "clean"
    for path in list(flat.rglob("*.wav")) + list(flat.rglob("*.flac")):
        path.rename(flat / path.name)
    built = {s: read_manifest(folders.build_split(fo_cfg(base), s, tmp_path / s)) for s in ("valid", "train")}
    assert len(built["valid"]) == 1 and len(built["train"]) == 4
    assert set(built["train"].speaker) | set(built["valid"].speaker) <= {"a1", "a2", "b1", "b2", "c1", "c2"}
    assert set(built["train"].speaker).isdisjoint(built["valid"].speaker)
