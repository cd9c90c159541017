"""A clean-speech folder mixed with a noise folder here (DNS-challenge style); never downloaded.

Config ``corpus.folders``::

    clean_dir:      clean speech, .wav/.flac, searched recursively
    noise_dir:      noise recordings, .wav/.flac, searched recursively
    test_noise_dir: optional noise used only by test_noise (noise types never heard in training)
    valid_fraction, test_fraction: shares of speakers (or files) in valid and in the test sets

Speakers: a file inside a top-level subfolder of ``clean_dir`` belongs to the speaker named by
that subfolder (``clean_dir/<speaker>/…/x.wav``, as in LibriSpeech-like trees); a file directly
in ``clean_dir`` is its own speaker (its stem). Splits are made of whole speakers, so valid and
the test sets never share a speaker with train.

Splits: ``train``, ``valid`` (training noise files), ``test_matched`` (unseen speakers, noise
files of the same folder held out of training) and, only with ``test_noise_dir``,
``test_noise`` (the test_matched speech with the test-only noise). Speakers and noise files are
shuffled by ``corpus.seed`` and cut by the fractions (at least one speaker per split, and one
noise file held out for test_matched), so the assignment is fixed by the seed and the file list.

Each clean file gives one utterance: DC-free speech normalised to ``speech_level_dbfs``, plus a
random segment of a random noise file of its split (looped when shorter), scaled to an SNR drawn
uniformly in ``corpus.snr_db`` (:func:`kdsd.corpus.mixing.mix_at_snr`, exact, never clips).
Utterance ``i`` of split ``s`` draws from its own generator seeded by (seed, s, i), so the
output does not depend on the number of workers. ``noise_family`` is the noise file's stem,
``noise_seed`` the segment's start sample (16 kHz); a ``<stem>.txt`` next to a clean file is
its transcript.
"""
from __future__ import annotations

import functools
import sys
import zlib
from pathlib import Path

import numpy as np

from kdsd import SAMPLE_RATE
from kdsd.audio import write_audio
from kdsd.corpus.manifest import write_manifest
from kdsd.corpus.build import audio_files, map_jobs, read_16k, staged_dir
from kdsd.corpus.mixing import mix_at_snr, noise_segment, normalise_speech
from kdsd.errors import KdsdError

SPLITS = ("train", "valid", "test_matched", "test_noise")
DEFAULTS = {"clean_dir": None, "noise_dir": None, "test_noise_dir": None,
            "valid_fraction": 0.1, "test_fraction": 0.1}
SUFFIXES = (".wav", ".flac")
NOISE_CACHE = 16  # decoded noise files kept per process: utterances reuse a few noise files


def splits(cfg: dict) -> tuple[str, ...]:
    """The splits this configuration provides (test_noise only with a test_noise_dir)."""
    if (cfg.get("folders") or {}).get("test_noise_dir"):
        return SPLITS
    return tuple(s for s in SPLITS if s != "test_noise")


# --- configuration and layout -------------------------------------------------------------

def _settings(cfg: dict) -> dict:
    fo = {**DEFAULTS, **(cfg.get("folders") or {})}
    for key in ("clean_dir", "noise_dir"):
        if not fo[key]:
            raise KdsdError(f"config corpus.folders.{key}: not set (needed by corpus source 'folders')")
    for key in ("valid_fraction", "test_fraction"):
        if not 0 < fo[key] < 0.5:
            raise KdsdError(f"config corpus.folders.{key}: {fo[key]!r}; must be between 0 and 0.5")
    lo, hi = cfg["snr_db"]
    if lo > hi:
        raise KdsdError(f"config corpus.snr_db: [{lo}, {hi}] is not a [low, high] range")
    return fo


def _listed(path: str, key: str, what: str) -> list[Path]:
    """The audio files of a configured folder, which must exist and hold some."""
    folder = Path(path)
    if not folder.is_dir():
        raise KdsdError(f"{folder}: {what} folder not found (config corpus.folders.{key})")
    files = audio_files(folder, SUFFIXES, recursive=True)
    if not files:
        raise KdsdError(f"{folder}: no .wav or .flac files (config corpus.folders.{key})")
    return files


def _check_disjoint(fo: dict) -> None:
    """Folders must not contain each other: a clean file must never serve as noise, nor a test
    noise as a training noise."""
    named = [(k, Path(fo[k]).resolve()) for k in ("clean_dir", "noise_dir", "test_noise_dir") if fo[k]]
    for i, (key_a, a) in enumerate(named):
        for key_b, b in named[i + 1:]:
            if a == b or a in b.parents or b in a.parents:
                raise KdsdError(f"{fo[key_b]}: overlaps corpus.folders.{key_a} ({fo[key_a]}); "
                                "the folders must be disjoint")


def _speaker_of(path: Path, clean_dir: Path) -> str:
    """The top-level subfolder holding ``path``, or its stem when it lies directly in clean_dir."""
    parts = path.relative_to(clean_dir).parts
    return parts[0] if len(parts) > 1 else path.stem


def _shuffled(names, seed: int, what: str) -> list:
    order = sorted(names)
    rng = np.random.default_rng(zlib.crc32(f"{seed}:folders:{what}".encode()))
    return [order[i] for i in rng.permutation(len(order))]


def _assign_speakers(files: list[Path], clean_dir: Path, fo: dict, seed: int) -> dict[str, list[Path]]:
    """split -> clean files; whole speakers per split, at least one speaker each."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(_speaker_of(path, clean_dir), []).append(path)
    order = _shuffled(groups, seed, "speakers")
    n_valid = max(1, round(len(order) * fo["valid_fraction"]))
    n_test = max(1, round(len(order) * fo["test_fraction"]))
    if len(order) - n_valid - n_test < 1:
        raise KdsdError(f"{clean_dir}: {len(order)} speaker(s) (subfolders, or files directly in the "
                        "folder) cannot be split speaker-disjointly into train, valid and test; "
                        "need at least 3")
    parts = {"train": order[n_valid + n_test:], "valid": order[:n_valid],
             "test_matched": order[n_valid:n_valid + n_test]}
    return {split: sorted(f for name in names for f in groups[name]) for split, names in parts.items()}


def _assign_noises(files: list[Path], noise_dir: Path, fo: dict, seed: int) -> dict[str, list[Path]]:
    """'train' (train and valid) and 'test_matched' noise files: same folder, disjoint files."""
    if len(files) < 2:
        raise KdsdError(f"{noise_dir}: only {len(files)} noise file(s); need at least 2 (training and "
                        "test_matched use disjoint noise files)")
    order = _shuffled(files, seed, "noises")
    n_test = max(1, round(len(order) * fo["test_fraction"]))
    return {"train": sorted(order[n_test:]), "test_matched": sorted(order[:n_test])}


def _layout(cfg: dict) -> dict[str, tuple[list[Path], list[Path]]]:
    """split -> (clean files, noise files), for every split the configuration provides."""
    fo = _settings(cfg)
    clean_files = _listed(fo["clean_dir"], "clean_dir", "clean speech")
    noise_files = _listed(fo["noise_dir"], "noise_dir", "noise")
    test_noise = _listed(fo["test_noise_dir"], "test_noise_dir", "test noise") if fo["test_noise_dir"] else []
    _check_disjoint(fo)
    clean = _assign_speakers(clean_files, Path(fo["clean_dir"]), fo, cfg["seed"])
    noise = _assign_noises(noise_files, Path(fo["noise_dir"]), fo, cfg["seed"])
    layout = {"train": (clean["train"], noise["train"]), "valid": (clean["valid"], noise["train"]),
              "test_matched": (clean["test_matched"], noise["test_matched"])}
    if test_noise:
        layout["test_noise"] = (clean["test_matched"], test_noise)
    return layout


def check_layout(cfg: dict) -> None:
    """Refuse folders that cannot give every split (missing or empty folders, overlapping
    folders, too few speakers or noise files). Lists folders only; audio is read by the jobs."""
    _layout(cfg)


# --- mixing -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=NOISE_CACHE)
def _noise_16k(path: Path) -> np.ndarray:
    return read_16k(path)[0]


def _noise_segment(path: Path, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``n`` samples of noise starting at a random offset, looping the file when it is shorter."""
    segment, offset = noise_segment(_noise_16k(path), n, rng)
    if not np.any(segment):
        raise KdsdError(f"{path}: silent noise segment at sample {offset} (16 kHz); trim digital silence")
    return segment, offset


def _transcript(clean_path: Path) -> str:
    path = clean_path.with_suffix(".txt")
    return " ".join(path.read_text(errors="replace").split()) if path.is_file() else ""


def _mix(job) -> dict:
    split, index, clean_path, speaker, noise_path, snr_db, rng, level, out_dir = job
    speech, source_rate = read_16k(clean_path)
    speech = normalise_speech(speech, level, source=str(clean_path))
    noise, offset = _noise_segment(noise_path, len(speech), rng)
    clean, noisy = mix_at_snr(speech, noise, snr_db)
    utt_id = f"{split}_{index:05d}"
    write_audio(out_dir / "clean" / f"{utt_id}.wav", clean)
    write_audio(out_dir / "noisy" / f"{utt_id}.wav", noisy)
    return {"utt_id": utt_id, "split": split, "clean_path": f"clean/{utt_id}.wav",
            "noisy_path": f"noisy/{utt_id}.wav", "speaker": speaker, "engine": "folder",
            "text": _transcript(clean_path), "noise_family": noise_path.stem, "noise_seed": offset,
            "snr_db": snr_db, "rir": "", "duration_s": round(len(clean) / SAMPLE_RATE, 4),
            "sample_rate": SAMPLE_RATE, "source_rate": source_rate}


def _jobs(cfg: dict, split: str, clean_files: list[Path], noises: list[Path], out_dir: Path) -> list:
    """One job per clean file. Its generator, seeded by (seed, split, index), draws the noise file
    and SNR here and the segment offset in the worker (a Generator pickles with its state), so the
    output does not depend on the workers and no job carries the whole noise list."""
    clean_dir = Path(_settings(cfg)["clean_dir"])
    split_seed = zlib.crc32(f"{cfg['seed']}:folders:{split}".encode())
    level = float(cfg.get("speech_level_dbfs", -25.0))
    jobs = []
    for index, path in enumerate(clean_files):
        rng = np.random.default_rng([split_seed, index])
        noise_path = noises[int(rng.integers(len(noises)))]
        snr_db = round(float(rng.uniform(*cfg["snr_db"])), 2)
        jobs.append((split, index, path, _speaker_of(path, clean_dir), noise_path, snr_db, rng, level, out_dir))
    return jobs


def build_split(cfg: dict, split: str, out_dir: str | Path, workers: int = 1) -> Path:
    """Write ``<out_dir>/{clean,noisy}/<utt_id>.wav`` and ``<out_dir>/manifest.csv`` for one split;
    returns the manifest path."""
    if split not in splits(cfg):
        hint = " (test_noise needs config corpus.folders.test_noise_dir)" if split == "test_noise" else ""
        raise KdsdError(f"unknown split {split!r}; valid: {', '.join(splits(cfg))}{hint}")
    clean_files, noises = _layout(cfg)[split]
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as tmp:
        rows = map_jobs(_mix, _jobs(cfg, split, clean_files, noises, tmp), workers)
        write_manifest(rows, tmp / "manifest.csv")
    resampled = sum(row["source_rate"] != SAMPLE_RATE for row in rows)
    if resampled:
        print(f"kdsd: note: {cfg['folders']['clean_dir']}: resampled {resampled} of {len(rows)} clean "
              f"files to {SAMPLE_RATE} Hz (noise files likewise where needed)", file=sys.stderr)
    return out_dir / "manifest.csv"
