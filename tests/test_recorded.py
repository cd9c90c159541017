"""The recorded corpus: .deb fetch from a folder, hash check, unpacking, conversion, the split and
test_recorded, on small packages built here in the real packages' layout (no network)."""
from __future__ import annotations

import array
import gzip
import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from kdsd.audio import read_audio
from kdsd.corpus import recorded, recorded_collections as rc, sources
from kdsd.corpus.debian import DebPackage, check_available, extract, fetch
from kdsd.corpus.manifest import COLUMNS, read_manifest
from kdsd.corpus.mixing import measured_snr
from kdsd.errors import KdsdError

REPO = Path(__file__).resolve().parent.parent
G722_RATE = 16_000


# --- building small .deb files ---------------------------------------------------------------

def _tar(members: dict[str, bytes], compression: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}" if compression else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += [header, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def make_deb(path: Path, members: dict[str, bytes], data_member: str = "data.tar.xz") -> Path:
    """A .deb as dpkg builds it: debian-binary, control.tar.xz, then the data tarball."""
    compression = {".xz": "xz", ".gz": "gz"}.get(Path(data_member).suffix, "")
    data = _tar(members, compression) if compression or data_member.endswith(".tar") else b"\x28\xb5\x2f\xfd"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", _tar({"control": b"Package: x\n"}, "xz")),
                          (data_member, data)]))
    return path


def pin_deb(monkeypatch, name: str, path: Path) -> DebPackage:
    """Make the pinned entry of ``name`` describe the test's .deb (its hash and size)."""
    real = rc.PACKAGES[name]
    package = DebPackage(name, real.version, hashlib.sha256(path.read_bytes()).hexdigest(),
                         path.stat().st_size, real.licence)
    monkeypatch.setitem(rc.PACKAGES, name, package)
    return package


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.stack([wave] * channels, axis=1).astype(np.float32) if channels > 1 else wave.astype(np.float32)


def ogg(wave: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="OGG", subtype="VORBIS")
    return buffer.getvalue()


def g722(wave: np.ndarray) -> bytes:
    import G722
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2")
    return G722.G722(G722_RATE, 64000).encode(array.array("h", pcm.tobytes()))


ASTERISK = "usr/share/asterisk/sounds/en_US_f_Allison/"
ASTERISK_TEXT = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
FLARE = "usr/share/games/flare/mods/"
FILLETS = "usr/share/games/fillets-ng/sound/"


def asterisk_debs(deb_dir: Path, monkeypatch) -> dict:
    """Prompts in the asterisk-core-sounds-en(-g722) layout: two spoken ones of 3.5 and 3.8 s, one
    too short, one too long (test utterances are 3 to 4 s), one tone whose transcript is in brackets."""
    prompts = {"agent-pass": tone(3.5, G722_RATE, 300), "digits/1": tone(1.0, G722_RATE),
               "beep": tone(3.5, G722_RATE, 1000), "followme/call-from": tone(3.8, G722_RATE, 500),
               "agent-user": tone(4.5, G722_RATE, 400)}
    audio = make_deb(deb_dir / rc.PACKAGES["asterisk-core-sounds-en-g722"].filename,
                     {f"{ASTERISK}{key}.g722": g722(w) for key, w in prompts.items()})
    text = gzip.compress("; Core Asterisk Sounds in English\n\nagent-pass: Please enter your password.\n"
                         "digits/1: One.\nbeep: [this is a simple beep tone]\n"
                         "followme/call-from: Incoming call from\n"
                         "agent-user: Agent login. Please enter your agent number.\n".encode())
    words = make_deb(deb_dir / rc.PACKAGES["asterisk-core-sounds-en"].filename, {ASTERISK_TEXT: text})
    pin_deb(monkeypatch, "asterisk-core-sounds-en-g722", audio)
    pin_deb(monkeypatch, "asterisk-core-sounds-en", words)
    return prompts


def flare_deb(deb_dir: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    noises = {f"{FLARE}{name}": ogg(0.1 * rng.standard_normal((int(seconds * 44100), 2)).astype(np.float32), 44100)
              for name, seconds in zip(rc.FLARE_NOISES, (12, 9, 10, 11, 10, 9))}
    noises[f"{FLARE}fantasycore/soundfx/environment/stairs.ogg"] = ogg(tone(2.0, 22050), 22050)  # not listed
    pin_deb(monkeypatch, "flare-game", make_deb(deb_dir / rc.PACKAGES["flare-game"].filename, noises))


def fillets_deb(deb_dir: Path, monkeypatch) -> None:
    lines = {f"{FILLETS}{level}/cs/{level[:3]}-{who}-{i}.ogg": ogg(tone(3.2 + i / 10, 22050, 200 + 50 * i), 22050)
             for level in ("airplane", "alibaba") for who in ("m", "v", "x") for i in range(3)}
    pin_deb(monkeypatch, "fillets-ng-data-cs",
            make_deb(deb_dir / rc.PACKAGES["fillets-ng-data-cs"].filename, lines))


def recorded_config(tmp_path: Path, **recorded_keys) -> dict:
    return {"source": "synthetic", "seed": 7, "snr_db": [0.0, 5.0], "speech_level_dbfs": -25.0,
            "utterances": {"test_recorded": 6},
            "recorded": {"cache_dir": str(tmp_path / "cache"), "deb_dir": str(tmp_path / "debs"),
                         "snr_db": [-5.0, 10.0], **recorded_keys}}


# --- unpacking -----------------------------------------------------------------------------------

def test_extract_writes_only_the_wanted_members(tmp_path):
    deb = make_deb(tmp_path / "x.deb", {"usr/a.txt": b"alpha", "usr/b/c.bin": b"\x00\x01" * 501,
                                        "usr/d.txt": b"delta"})
    names = extract(deb, lambda name: not name.endswith("d.txt"), tmp_path / "out")
    assert names == ["usr/a.txt", "usr/b/c.bin"]
    assert (tmp_path / "out/usr/a.txt").read_bytes() == b"alpha"
    assert (tmp_path / "out/usr/b/c.bin").read_bytes() == b"\x00\x01" * 501
    assert not (tmp_path / "out/usr/d.txt").exists()


def test_extract_reads_gzip_data_and_refuses_zstd_and_non_debs(tmp_path):
    deb = make_deb(tmp_path / "gz.deb", {"usr/a.txt": b"alpha"}, data_member="data.tar.gz")
    assert extract(deb, lambda name: True, tmp_path / "gz") == ["usr/a.txt"]
    zst = make_deb(tmp_path / "zst.deb", {}, data_member="data.tar.zst")
    with pytest.raises(KdsdError, match=r"zst.deb: data.tar.zst is not readable by Python's tarfile"):
        extract(zst, lambda name: True, tmp_path / "zst")
    (tmp_path / "plain.deb").write_bytes(b"hello, not an archive")
    with pytest.raises(KdsdError, match=r"plain.deb: not a Debian package"):
        extract(tmp_path / "plain.deb", lambda name: True, tmp_path / "plain")


# --- fetching, hashes, availability --------------------------------------------------------------

def test_fetch_takes_the_deb_dir_file_when_its_hash_is_the_pinned_one(tmp_path, monkeypatch):
    deb = make_deb(tmp_path / "debs" / "pkg_1.0_all.deb", {"usr/a": b"a"})
    package = DebPackage("pkg", "1.0", hashlib.sha256(deb.read_bytes()).hexdigest(), deb.stat().st_size, "MIT")
    monkeypatch.setenv("PATH", "")  # no apt-get: the folder alone must do
    assert fetch(package, tmp_path / "cache", str(tmp_path / "debs")) == deb


def test_a_wrong_hash_is_an_error_naming_the_file_and_both_hashes(tmp_path):
    deb = make_deb(tmp_path / "debs" / "pkg_1.0_all.deb", {"usr/a": b"changed"})
    package = DebPackage("pkg", "1.0", "0" * 64, 1, "MIT")
    with pytest.raises(KdsdError) as err:
        fetch(package, tmp_path / "cache", str(tmp_path / "debs"))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{deb}: sha256 ")
    assert hashlib.sha256(deb.read_bytes()).hexdigest() in message and f"expected {'0' * 64}" in message


def test_a_package_nowhere_to_be_had_stops_before_any_job_naming_it_and_the_config_key(
        tmp_path, monkeypatch, tiny_corpus):
    monkeypatch.setenv("PATH", "")  # no apt-get, no apt-cache
    corpus = {**tiny_corpus(), "recorded": recorded_config(tmp_path, deb_dir=None)["recorded"]}
    with pytest.raises(KdsdError) as err:
        sources.check(corpus)  # what the DAG runs at parse time
    message = str(err.value)
    assert "\n" not in message and message.startswith("Debian package asterisk-core-sounds-en-g722=1.6.1-1:")
    assert "apt-get is not installed" in message and "corpus.recorded.deb_dir" in message
    # the test set switched off, nothing is needed
    sources.check({**corpus, "recorded": {**corpus["recorded"], "test_set": False}})
    assert "test_recorded" not in sources.splits(recorded_config(tmp_path, test_set=False))


def test_a_version_apt_does_not_know_is_refused_naming_it(tmp_path):
    if shutil.which("apt-cache") is None:
        pytest.skip("apt-cache not installed: the lookup of versions cannot run here")
    unknown = DebPackage("flare-game", "0.0-0", "1" * 64, 1, "CC-BY-SA-3.0+")
    with pytest.raises(KdsdError, match=r"^Debian package flare-game=0.0-0: not in .*debs, and apt-cache does "
                                        r"not know version 0.0-0 .*set config corpus.recorded.deb_dir"):
        check_available([unknown], tmp_path / "cache", None)


# --- conversion into the cache --------------------------------------------------------------------

def test_prepare_converts_the_prompts_once_with_their_transcripts(tmp_path, monkeypatch):
    prompts = asterisk_debs(tmp_path / "debs", monkeypatch)
    corpus = recorded_config(tmp_path)
    path = rc.prepare(corpus, "asterisk-en")
    inventory = pd.read_csv(path, keep_default_na=False).set_index("item_id")
    # too short (digits/1, 1 s), too long (agent-user, 4.5 s) and a tone with a bracketed
    # transcript (beep) are left out
    assert sorted(inventory.index) == ["en_agent-pass", "en_followme_call-from"]
    row = inventory.loc["en_agent-pass"]
    assert (row.speaker, row.language, row.text, row.licence) == \
        ("asterisk:Allison", "en", "Please enter your password.", "CC-BY-SA-3.0")
    assert row.source_package == "asterisk-core-sounds-en-g722=1.6.1-1"
    assert row.text_package == "asterisk-core-sounds-en=1.6.1-1"
    assert row.source_file == f"{ASTERISK}agent-pass.g722" and row.selection == "3-4 s, 40 per speaker"
    wave = read_audio(path.parent / row.path)  # 16 kHz mono float32
    assert abs(len(wave) - 3.5 * G722_RATE) <= 1
    original = prompts["agent-pass"]
    lag = int(np.argmax([np.dot(wave[k:k + 8000], original[:8000]) for k in range(64)]))
    assert np.corrcoef(wave[lag:lag + 40000], original[:40000])[0, 1] > 0.99  # G.722 decodes the tone
    # a rerun neither fetches nor converts: the packages may be gone
    for deb in (tmp_path / "debs").iterdir():
        deb.unlink()
    mtime = path.stat().st_mtime_ns
    assert rc.prepare(corpus, "asterisk-en") == path and path.stat().st_mtime_ns == mtime


def test_a_cache_made_from_another_version_is_refused(tmp_path, monkeypatch):
    asterisk_debs(tmp_path / "debs", monkeypatch)
    corpus = recorded_config(tmp_path)
    path = rc.prepare(corpus, "asterisk-en")
    table = pd.read_csv(path)
    table["source_package"] = "asterisk-core-sounds-en-g722=1.6.0-1"
    table.to_csv(path, index=False)
    with pytest.raises(KdsdError, match=r"inventory.csv: converted from asterisk-core-sounds-en-g722=1.6.0-1, "
                                        r"but kdsd pins asterisk-core-sounds-en-g722=1.6.1-1; delete"):
        rc.read_inventory(corpus, "asterisk-en")


# --- test_recorded -------------------------------------------------------------------------------

def test_test_recorded_mixes_recorded_voices_and_noise_at_exact_snrs(tmp_path, monkeypatch):
    asterisk_debs(tmp_path / "debs", monkeypatch)
    fillets_deb(tmp_path / "debs", monkeypatch)
    flare_deb(tmp_path / "debs", monkeypatch)
    monkeypatch.setattr(recorded, "TEST_COLLECTIONS", ("asterisk-en", "fillets-cs", "flare"))
    corpus = recorded_config(tmp_path)
    assert "test_recorded" in sources.test_splits(corpus)
    manifest_path = sources.build_split(corpus, "test_recorded", tmp_path / "out" / "test_recorded")
    table = read_manifest(manifest_path)
    assert list(table.columns) == [*COLUMNS, *recorded.EXTRA_COLUMNS]
    assert len(table) == 6 and set(table["engine"]) == {"recorded"} and table["rir"].isna().all()
    # round-robin over the three speakers (the fish's other characters are never taken)
    assert table["speaker"].value_counts().to_dict() == {"asterisk:Allison": 2, "fillets-cs:big-fish": 2,
                                                         "fillets-cs:small-fish": 2}
    assert set(table["language"]) == {"en", "cs"}
    assert set(table.loc[table["language"] == "cs", "text"].fillna("")) == {""}  # no transcripts shipped
    assert set(table["noise_package"]) == {"flare-game=1.14-1"} and set(table["noise_licence"]) == {"CC-BY-SA-3.0+"}
    assert table["noise_file"].str.startswith(FLARE).all() and "stairs" not in "".join(table["noise_file"])
    assert table["snr_db"].between(-5.0, 10.0).all()
    for row in table.itertuples():
        clean = read_audio(manifest_path.parent / row.clean_path)
        noisy = read_audio(manifest_path.parent / row.noisy_path)
        assert measured_snr(clean, noisy) == pytest.approx(row.snr_db, abs=0.02)
        assert 20 * np.log10(np.sqrt(np.mean(clean.astype(np.float64) ** 2))) == pytest.approx(-25.0, abs=0.05)
    # the same seed gives the same set
    again = read_manifest(sources.build_split(corpus, "test_recorded", tmp_path / "again"))
    pd.testing.assert_frame_equal(table, again)


def test_asking_for_more_test_utterances_than_recorded_is_refused(tmp_path, monkeypatch):
    asterisk_debs(tmp_path / "debs", monkeypatch)
    flare_deb(tmp_path / "debs", monkeypatch)
    monkeypatch.setattr(recorded, "TEST_COLLECTIONS", ("asterisk-en", "flare"))
    corpus = {**recorded_config(tmp_path), "utterances": {"test_recorded": 3}}
    with pytest.raises(KdsdError, match=r"config corpus.utterances.test_recorded: 3 asked, but the recorded "
                                        r"test_recorded speakers have 2 utterances"):
        sources.build_split(corpus, "test_recorded", tmp_path / "out")


# --- the split -----------------------------------------------------------------------------------

def test_the_split_is_speaker_and_noise_disjoint_by_construction():
    test_packages = {p for name in recorded.TEST_COLLECTIONS for p in rc.COLLECTIONS[name].packages}
    training_packages = {p for name in recorded.TRAINING_COLLECTIONS for p in rc.COLLECTIONS[name].packages}
    assert not test_packages & training_packages
    kinds = {name: rc.COLLECTIONS[name].kind for name in rc.COLLECTIONS}
    assert sorted(n for n in recorded.TEST_COLLECTIONS if kinds[n] == "noise") == ["flare"]
    assert sorted(n for n in recorded.TRAINING_COLLECTIONS if kinds[n] == "noise") == ["megaglest"]
    assert {s.split(":")[1] for s in recorded.VALID_SPEAKERS} <= set(rc.TUXPAINT_LANGUAGES)
    assert recorded.splits({"source": "recorded"})[:3] == ("train", "valid", "test_recorded")


def _real_inventories() -> dict[str, pd.DataFrame]:
    """The converted inventories of the real packages, from KDSD_RECORDED_CACHE or data/recorded."""
    cache = Path(os.environ.get("KDSD_RECORDED_CACHE", REPO / "data" / "recorded"))
    corpus = {"recorded": {"cache_dir": str(cache)}}
    tables = {name: rc.read_inventory(corpus, name) for name in rc.COLLECTIONS}
    missing = sorted(name for name, table in tables.items() if table is None)
    if missing:
        pytest.skip(f"recorded packages not converted in {cache} ({', '.join(missing)}); "
                    "`kdsd fetch-recorded --collection NAME` converts them (needs apt-get or deb_dir)")
    return tables


def test_the_real_packages_give_test_recorded_its_counts_and_disjoint_splits():
    tables = _real_inventories()
    speech = {split: pd.concat([tables[n] for n in names if rc.COLLECTIONS[n].kind == "speech"])
              for split, names in (("test", recorded.TEST_COLLECTIONS), ("training", recorded.TRAINING_COLLECTIONS))}
    noise = {split: pd.concat([tables[n] for n in names if rc.COLLECTIONS[n].kind == "noise"])
             for split, names in (("test", recorded.TEST_COLLECTIONS), ("training", recorded.TRAINING_COLLECTIONS))}
    test_speakers = speech["test"].groupby("speaker")["duration_s"].agg(lambda d: d.between(3.0, 4.0).sum())
    assert len(test_speakers) >= 8 and (test_speakers >= 6).all()  # 48 utterances of >= 3 s, evenly
    assert "en" in set(speech["test"]["language"])
    assert (speech["test"].loc[speech["test"]["language"] == "en", "text"] != "").all()
    assert noise["test"]["item_id"].nunique() >= 5
    assert not set(noise["test"]["source_file"]) & set(noise["training"]["source_file"])
    training = set(speech["training"]["speaker"])
    valid = set(recorded.VALID_SPEAKERS)
    assert valid <= training and not set(test_speakers.index) & training and len(training - valid) >= 5
