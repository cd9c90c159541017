"""VoiceBank+DEMAND (Valentini et al.) from folders on disk; never downloaded.

Layout expected under ``corpus.voicebank.root`` (the names of the public release)::

    clean_trainset_28spk_wav/p226_001.wav …   noisy_trainset_28spk_wav/p226_001.wav …
    clean_trainset_56spk_wav/…                noisy_trainset_56spk_wav/…   (train_speakers: 56)
    clean_testset_wav/p232_001.wav …          noisy_testset_wav/p232_001.wav …
    logfiles/log_trainset_28spk.txt, log_testset.txt    optional: "p226_001 living 15" per line
    trainset_28spk_txt/p226_001.txt, testset_txt/…      optional transcripts

Splits:

* ``valid`` — the ``valid_speakers`` (default p226 and p287) held out of the training folders.
  Holding out whole speakers keeps model selection honest (no speaker is both trained on and
  used to pick the checkpoint); p226 and p287 are the pair many VoiceBank+DEMAND papers hold
  out, so numbers stay comparable. They are 28-speaker-set speakers: with
  ``train_speakers: 56`` set ``valid_speakers`` to speakers of that set.
* ``train`` — every other training speaker.
* ``test_voicebank`` — the official test set, mismatched in speaker, noise type and SNR by
  design.

Pairs are matched by file name, one manifest row per pair (utt_id = the file stem). The 48 kHz
audio is resampled to 16 kHz; levels are kept as released (a pair is only scaled down, together,
in the rare case resampling overshoots full scale). ``snr_db`` is measured on the written
16 kHz pair, 10·log10(Σclean² / Σ(noisy − clean)²), so it describes exactly the audio the models
see; ``noise_family`` comes from the release's log files when present, else ``"unknown"``.

The split is built in a temporary sibling folder and renamed into place only when complete,
so a failure never leaves a partial corpus (:func:`kdsd.corpus.build.staged_dir`).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from kdsd import SAMPLE_RATE
from kdsd.audio import write_audio
from kdsd.corpus.build import audio_files, audio_header, map_jobs, read_16k, staged_dir
from kdsd.corpus.manifest import write_manifest
from kdsd.corpus.mixing import PEAK_LIMIT, measured_snr
from kdsd.errors import KdsdError

SPLITS = ("train", "valid", "test_voicebank")
DEFAULTS = {"root": None, "train_speakers": 28, "valid_speakers": ["p226", "p287"]}


# --- VoiceBank+DEMAND layout --------------------------------------------------------------

def _settings(cfg: dict) -> dict:
    vb = {**DEFAULTS, **(cfg.get("voicebank") or {})}
    if not vb["root"]:
        raise KdsdError("config corpus.voicebank.root: not set; give the folder holding "
                        "clean_trainset_28spk_wav, noisy_trainset_28spk_wav, clean_testset_wav, "
                        "noisy_testset_wav")
    if vb["train_speakers"] not in (28, 56):
        raise KdsdError(f"config corpus.voicebank.train_speakers: {vb['train_speakers']!r}; must be 28 or 56")
    return vb


def _folders(vb: dict, split: str) -> dict[str, Path]:
    """The folders (and optional log/transcript files) one split reads."""
    root = Path(vb["root"])
    tag = "testset" if split == "test_voicebank" else f"trainset_{vb['train_speakers']}spk"
    return {"clean": root / f"clean_{tag}_wav", "noisy": root / f"noisy_{tag}_wav",
            "log": root / "logfiles" / f"log_{tag}.txt", "text": root / f"{tag}_txt"}


def _pairs(clean_dir: Path, noisy_dir: Path) -> list[tuple[Path, Path]]:
    """(clean, noisy) paths matched by file name; any unmatched file is an error."""
    for folder in (clean_dir, noisy_dir):
        if not folder.is_dir():
            raise KdsdError(f"{folder}: VoiceBank+DEMAND folder not found")
    clean = {p.name: p for p in audio_files(clean_dir)}
    noisy = {p.name: p for p in audio_files(noisy_dir)}
    if not clean:
        raise KdsdError(f"{clean_dir}: no .wav files")
    for have, have_kind, other_dir, other in ((clean, "clean", noisy_dir, noisy),
                                              (noisy, "noisy", clean_dir, clean)):
        unmatched = sorted(set(have) - set(other))
        if unmatched:
            more = f" (and {len(unmatched) - 1} more unmatched)" if len(unmatched) > 1 else ""
            raise KdsdError(f"{other_dir / unmatched[0]}: missing, but its {have_kind} counterpart "
                            f"{have[unmatched[0]]} exists{more}")
    return [(clean[name], noisy[name]) for name in sorted(clean)]


def _speaker(path: Path) -> str:
    return path.stem.split("_")[0]


def _split_pairs(vb: dict, split: str) -> list[tuple[Path, Path]]:
    """The pairs of one split: training folders minus/only the valid speakers, or the test set."""
    if split not in SPLITS:
        raise KdsdError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    folders = _folders(vb, split)
    pairs = _pairs(folders["clean"], folders["noisy"])
    if split == "test_voicebank":
        return pairs
    valid = set(vb["valid_speakers"])
    absent = sorted(valid - {_speaker(c) for c, _ in pairs})
    if absent:
        raise KdsdError(f"{folders['clean']}: no files of valid speaker(s) {', '.join(absent)} "
                        "(config corpus.voicebank.valid_speakers)")
    pairs = [(c, n) for c, n in pairs if (_speaker(c) in valid) == (split == "valid")]
    if not pairs:
        raise KdsdError(f"{folders['clean']}: every speaker is a valid speaker; no training speakers left "
                        "(config corpus.voicebank.valid_speakers)")
    return pairs


def splits(corpus: dict) -> tuple[str, ...]:
    """Every split this source provides (the same for any config)."""
    return SPLITS


def check_layout(cfg: dict) -> None:
    """Refuse a VoiceBank+DEMAND root that cannot give every split: missing folders, unmatched
    pairs, absent valid speakers. Lists folders only; each pair's headers (sample rate, length)
    are checked by the job that converts it, before decoding."""
    vb = _settings(cfg)
    if not Path(vb["root"]).is_dir():
        raise KdsdError(f"{vb['root']}: VoiceBank+DEMAND root folder not found (config corpus.voicebank.root)")
    for split in SPLITS:
        _split_pairs(vb, split)


# --- optional metadata --------------------------------------------------------------------

def _noise_families(log: Path) -> dict[str, str]:
    """utt_id -> noise type from a release log file (``p226_001 living 15``); {} when absent."""
    if not log.is_file():
        return {}
    families = {}
    for line in log.read_text(errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 2:
            families[fields[0]] = fields[1]
    return families


def _transcript(text_dir: Path, utt_id: str) -> str:
    path = text_dir / f"{utt_id}.txt"
    return " ".join(path.read_text(errors="replace").split()) if path.is_file() else ""


# --- conversion ---------------------------------------------------------------------------

def _check_pair_headers(clean_path: Path, noisy_path: Path) -> None:
    clean, noisy = audio_header(clean_path), audio_header(noisy_path)
    if (clean.samplerate, clean.frames) != (noisy.samplerate, noisy.frames):
        raise KdsdError(f"{noisy_path}: {noisy.frames} samples at {noisy.samplerate} Hz, but its clean "
                        f"counterpart {clean_path} has {clean.frames} samples at {clean.samplerate} Hz")


def _convert_pair(job) -> dict:
    clean_path, noisy_path, split, family, text, out_dir = job
    _check_pair_headers(clean_path, noisy_path)
    (clean, sr), (noisy, _) = read_16k(clean_path), read_16k(noisy_path)
    if not np.any(clean):
        raise KdsdError(f"{clean_path}: silent clean reference (cannot be scored)")
    peak = max(np.max(np.abs(clean)), np.max(np.abs(noisy)))
    if peak > 1.0:  # resampling can overshoot a full-scale file; scale the pair together (SNR kept)
        clean, noisy = clean * (PEAK_LIMIT / peak), noisy * (PEAK_LIMIT / peak)
    utt_id = clean_path.stem
    write_audio(out_dir / "clean" / f"{utt_id}.wav", clean)
    write_audio(out_dir / "noisy" / f"{utt_id}.wav", noisy)
    return {"utt_id": utt_id, "split": split, "clean_path": f"clean/{utt_id}.wav",
            "noisy_path": f"noisy/{utt_id}.wav", "speaker": _speaker(clean_path), "engine": "voicebank",
            "text": text, "noise_family": family, "noise_seed": -1, "snr_db": measured_snr(clean, noisy),
            "rir": "", "duration_s": round(len(clean) / SAMPLE_RATE, 4), "sample_rate": SAMPLE_RATE,
            "source_rate": sr}


def build_split(cfg: dict, split: str, out_dir: str | Path, workers: int = 1) -> Path:
    """Write ``<out_dir>/{clean,noisy}/<utt_id>.wav`` and ``<out_dir>/manifest.csv`` for one split;
    returns the manifest path."""
    vb = _settings(cfg)
    pairs = _split_pairs(vb, split)
    folders = _folders(vb, split)
    families = _noise_families(folders["log"])
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as tmp:
        jobs = [(c, n, split, families.get(c.stem, "unknown"), _transcript(folders["text"], c.stem), tmp)
                for c, n in pairs]
        rows = map_jobs(_convert_pair, jobs, workers)
        write_manifest(rows, tmp / "manifest.csv")
    rates = sorted({row["source_rate"] for row in rows} - {SAMPLE_RATE})
    if rates:
        print(f"kdsd: note: {folders['clean']}: resampled {len(rows)} pairs from "
              f"{'/'.join(map(str, rates))} Hz to {SAMPLE_RATE} Hz", file=sys.stderr)
    return out_dir / "manifest.csv"
