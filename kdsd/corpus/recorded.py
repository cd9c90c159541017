"""Recorded speech in recorded noise, from Debian packages (DESIGN §2.1 "Recorded corpus").

Two uses:

* ``test_recorded``, provided by *every* corpus source while ``corpus.recorded.test_set`` is on:
  human voices none of the default's models trained on, in ambience recorded outdoors or in
  caves, no added room (the recordings carry their own), SNR uniform in
  ``corpus.recorded.snr_db``, ``corpus.utterances.test_recorded`` utterances;
* the ``recorded`` source (``corpus.source: recorded``): ``train`` and ``valid`` from other
  recorded speakers in other recorded noises (SNR ``corpus.snr_db``), ``test_recorded``, and the
  synthetic corpus's test sets, built from the same config by :mod:`kdsd.corpus.synthetic`.

The split is fixed by collection (:mod:`kdsd.corpus.recorded_collections`), so speakers and
noise recordings are disjoint by construction:

=============  =================================================  ============================
split          speakers                                           noise recordings
=============  =================================================  ============================
test_recorded  Asterisk prompts: Allison (en), June (fr),         flare-game: rain, wind, cave
               Carlo (it), IvrvoiceRU (ru); Fish Fillets: the     wind, cave droplets, birds,
               small and the big fish, Czech and Dutch (8)        owl (6)
train          Tux Paint descriptions: bg, el, es, fr, ro, ru     megaglest-data tilesets: rain,
               (one volunteer each, 6)                            wind, day and night (16)
valid          Tux Paint: be (1)                                  the training noises
=============  =================================================  ============================

Test utterances last 3 to 4 s (scoring every model on them is what test_recorded costs), training
and valid ones 1.5 s or more. Utterances are drawn round-robin over the speakers (each speaker's files in an order shuffled by
``corpus.seed``), so every speaker is represented evenly. Utterance ``i`` of a split draws its
noise recording, SNR and segment from its own generator seeded by (seed, split, i); a segment
far quieter than its recording (an owl's silence between calls) is redrawn. Speech is DC-free
and normalised to ``corpus.speech_level_dbfs``; mixing is exact and never clips
(:func:`kdsd.corpus.mixing.mix_at_snr`). The manifest adds ``language`` (ISO 639-1),
``source_package``, ``source_file``, ``licence``, ``text_package`` (the other package the
transcript came from; "" when it is the audio's own, or there is none) and the noise's ``noise_package``, ``noise_file``, ``noise_licence``;
``text`` is the transcript ("" where the package has none),
``engine`` is "recorded".
"""
from __future__ import annotations

import functools
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from kdsd import SAMPLE_RATE
from kdsd.audio import read_audio, write_audio
from kdsd.corpus import recorded_collections as rc
from kdsd.corpus import synthetic
from kdsd.corpus.build import map_jobs, staged_dir
from kdsd.corpus.manifest import write_manifest
from kdsd.corpus.mixing import mix_at_snr, noise_segment, normalise_speech
from kdsd.corpus.sources import check_ranges
from kdsd.errors import KdsdError

TEST_SET = "test_recorded"
SPLITS = ("train", "valid", TEST_SET, *synthetic.TEST_SPLITS)
TEST_COLLECTIONS = ("asterisk-en", "asterisk-fr", "asterisk-it", "asterisk-ru", "fillets-cs",
                    "fillets-nl", "flare")
TRAINING_COLLECTIONS = ("tuxpaint", "megaglest")
VALID_SPEAKERS = ("tuxpaint:be",)
EXTRA_COLUMNS = ("language", "source_package", "source_file", "licence", "text_package",
                 "noise_package", "noise_file", "noise_licence")
DEFAULT_TEST_UTTERANCES = 48
DEFAULT_TEST_SNR_DB = (-5.0, 10.0)
QUIET_SEGMENT_DB = 20.0  # a noise segment this far below its recording's RMS is redrawn
SEGMENT_TRIES = 8
NOISE_CACHE = 8  # decoded noise recordings kept per process


def test_set_on(corpus: dict) -> bool:
    """Whether every source provides ``test_recorded`` (``corpus.recorded.test_set``, default on)."""
    return bool(rc.settings(corpus).get("test_set", True))


def collections_for(corpus: dict, split: str) -> tuple[str, ...]:
    """The recorded collections a split of this corpus is built from (none for synthetic splits)."""
    if split == TEST_SET:
        return TEST_COLLECTIONS
    if corpus.get("source") == "recorded" and split in ("train", "valid"):
        return TRAINING_COLLECTIONS
    return ()


def splits(corpus: dict) -> tuple[str, ...]:
    return SPLITS


def check_layout(corpus: dict) -> None:
    """The synthetic test sets' config, and the training packages on disk or obtainable (cache
    first; test_recorded's are checked by :func:`kdsd.corpus.sources.check` where it is used)."""
    synthetic.check_layout(corpus)
    _snr_range(corpus, "train")
    rc.check_collections(corpus, TRAINING_COLLECTIONS)


def check_test_set(corpus: dict) -> None:
    """What ``test_recorded`` needs of any source: its SNR range, and its packages."""
    _snr_range(corpus, TEST_SET)
    rc.check_collections(corpus, TEST_COLLECTIONS)


# --- what each split is made of --------------------------------------------------------------

def _snr_range(corpus: dict, split: str) -> tuple[float, float]:
    if split != TEST_SET:
        check_ranges(corpus)
        return tuple(corpus["snr_db"])
    low, high = rc.settings(corpus).get("snr_db", DEFAULT_TEST_SNR_DB)
    if low > high:
        raise KdsdError(f"config corpus.recorded.snr_db: low end {low} is above high end {high}")
    return low, high


def _count(corpus: dict, split: str) -> int:
    default = DEFAULT_TEST_UTTERANCES if split == TEST_SET else None
    n = (corpus.get("utterances") or {}).get(split, default)
    if n is None:
        raise KdsdError(f"config corpus.utterances.{split}: not set")
    return int(n)


def _inventories(corpus: dict, names, workers: int) -> pd.DataFrame:
    """The cached inventories of ``names`` (converted first where they are not yet), one table
    with the cache folder of each row in ``root``."""
    tables = []
    for name in names:
        path = rc.prepare(corpus, name, workers)
        tables.append(rc.read_inventory(corpus, name).assign(root=str(path.parent), collection=name))
    return pd.concat(tables, ignore_index=True)


def split_material(corpus: dict, split: str, workers: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(speech rows, noise rows) of the inventories a recorded split draws from."""
    names = collections_for(corpus, split)
    if not names:
        raise KdsdError(f"unknown recorded split {split!r}; valid: {', '.join(SPLITS[:3])}")
    table = _inventories(corpus, names, workers)
    speech, noise = table[table["kind"] == "speech"], table[table["kind"] == "noise"]
    if split != TEST_SET:
        speech = speech[speech["speaker"].isin(VALID_SPEAKERS) == (split == "valid")]
    return speech.reset_index(drop=True), noise.reset_index(drop=True)


def pick_utterances(speech: pd.DataFrame, n: int, seed: int, split: str) -> pd.DataFrame:
    """``n`` rows drawn round-robin over the speakers (sorted), each speaker's rows in an order
    shuffled by (seed, split, speaker)."""
    if n > len(speech):
        raise KdsdError(f"config corpus.utterances.{split}: {n} asked, but the recorded {split} "
                        f"speakers have {len(speech)} utterances")
    queues = []
    for speaker, rows in sorted(speech.groupby("speaker"), key=lambda kv: kv[0]):
        rng = np.random.default_rng(zlib.crc32(f"{seed}:recorded:{split}:{speaker}".encode()))
        rows = rows.sort_values("item_id")
        queues.append(rows.iloc[rng.permutation(len(rows))])
    order = [q.iloc[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]
    return pd.DataFrame(order[:n]).reset_index(drop=True)


# --- mixing ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=NOISE_CACHE)
def _noise_wave(path: str) -> np.ndarray:
    return read_audio(path)


def _audible_segment(noise: np.ndarray, n: int, rng: np.random.Generator, path: str) -> tuple[np.ndarray, int]:
    """A segment no more than QUIET_SEGMENT_DB below the recording's RMS (the loudest of
    SEGMENT_TRIES draws otherwise): an SNR set on near-silence would mix mostly hiss."""
    floor = np.sqrt(np.mean(noise.astype(np.float64) ** 2)) * 10 ** (-QUIET_SEGMENT_DB / 20)
    best = None
    for _ in range(SEGMENT_TRIES):
        segment, offset = noise_segment(noise, n, rng)
        rms = float(np.sqrt(np.mean(segment.astype(np.float64) ** 2)))
        if best is None or rms > best[2]:
            best = (segment, offset, rms)
        if rms >= floor:
            break
    if best[2] == 0:
        raise KdsdError(f"{path}: silent noise segment at sample {best[1]} (16 kHz)")
    return best[0], best[1]


def _mix(job) -> dict:
    split, index, speech_row, noise_row, snr_db, rng, level, out_dir = job
    speech_path = str(Path(speech_row["root"]) / speech_row["path"])
    noise_path = str(Path(noise_row["root"]) / noise_row["path"])
    speech = normalise_speech(read_audio(speech_path), level, source=speech_path)
    noise, offset = _audible_segment(_noise_wave(noise_path), len(speech), rng, noise_path)
    clean, noisy = mix_at_snr(speech, noise, snr_db)
    utt_id = f"{split}_{index:05d}"
    write_audio(out_dir / "clean" / f"{utt_id}.wav", clean)
    write_audio(out_dir / "noisy" / f"{utt_id}.wav", noisy)
    return {"utt_id": utt_id, "split": split, "clean_path": f"clean/{utt_id}.wav",
            "noisy_path": f"noisy/{utt_id}.wav", "speaker": speech_row["speaker"], "engine": "recorded",
            "text": speech_row["text"], "noise_family": noise_row["item_id"], "noise_seed": offset,
            "snr_db": snr_db, "rir": "", "duration_s": round(len(clean) / SAMPLE_RATE, 4),
            "sample_rate": SAMPLE_RATE, "language": speech_row["language"],
            "source_package": speech_row["source_package"], "source_file": speech_row["source_file"],
            "licence": speech_row["licence"], "text_package": speech_row["text_package"],
            "noise_package": noise_row["source_package"],
            "noise_file": noise_row["source_file"], "noise_licence": noise_row["licence"]}


def _jobs(corpus: dict, split: str, speech: pd.DataFrame, noise: pd.DataFrame, out_dir: Path) -> list:
    split_seed = zlib.crc32(f"{corpus['seed']}:recorded:{split}".encode())
    snr_range, level = _snr_range(corpus, split), float(corpus.get("speech_level_dbfs", -25.0))
    noises = noise.sort_values("item_id").to_dict("records")
    jobs = []
    for index, speech_row in enumerate(speech.to_dict("records")):
        rng = np.random.default_rng([split_seed, index])
        noise_row = noises[int(rng.integers(len(noises)))]
        snr_db = round(float(rng.uniform(*snr_range)), 2)
        jobs.append((split, index, speech_row, noise_row, snr_db, rng, level, out_dir))
    return jobs


def build_split(corpus: dict, split: str, out_dir: str | Path, workers: int = 1) -> Path:
    """Write ``<out_dir>/{clean,noisy}/*.wav`` and ``<out_dir>/manifest.csv`` for one split (the
    synthetic test sets of the recorded source are built by :mod:`kdsd.corpus.synthetic`)."""
    if split in synthetic.TEST_SPLITS and corpus.get("source") == "recorded":
        return synthetic.build_split(corpus, split, out_dir, workers)
    speech, noise = split_material(corpus, split, workers)
    chosen = pick_utterances(speech, _count(corpus, split), corpus["seed"], split)
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as tmp:
        rows = map_jobs(_mix, _jobs(corpus, split, chosen, noise, tmp), workers)
        write_manifest(rows, tmp / "manifest.csv", extra=EXTRA_COLUMNS)
    return out_dir / "manifest.csv"
