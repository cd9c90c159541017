"""Building a corpus split from files: staging (no partial output), parallel jobs, file lists.

Shared by every corpus source (:mod:`kdsd.corpus.synthetic`, :mod:`kdsd.corpus.voicebank`,
:mod:`kdsd.corpus.folders`).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from kdsd import SAMPLE_RATE
from kdsd.atomic import current_umask
from kdsd.audio import read_audio, resample_single_thread
from kdsd.errors import KdsdError


@contextlib.contextmanager
def staged_dir(out_dir: str | Path):
    """Yield an empty temporary sibling of ``out_dir``; it replaces ``out_dir`` only if the block
    succeeds, and is removed otherwise (no partial corpus is ever visible at ``out_dir``)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise KdsdError(f"{out_dir}: exists and is not a folder; cannot write a corpus split there")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_stages(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; outputs should read like any folder
        yield tmp
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_stages(out_dir: Path) -> None:
    """Remove staging folders a killed build of ``out_dir`` left behind (one build of a split
    runs at a time: Snakemake never runs two jobs for the same output)."""
    for stale in out_dir.parent.glob(f".{out_dir.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def _replace_dir(new: Path, out_dir: Path) -> None:
    """Move ``new`` to ``out_dir``, discarding an existing ``out_dir`` (os.replace refuses a
    non-empty target folder, so the old one is moved aside first and restored on failure)."""
    if not out_dir.exists():
        os.replace(new, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
    os.rmdir(old)
    os.replace(out_dir, old)
    try:
        os.replace(new, out_dir)
    except OSError:
        os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def map_jobs(fn, jobs: list, workers: int) -> list:
    """``[fn(job) for job in jobs]``, in worker processes when ``workers > 1`` (same order, same
    results: every job carries everything it draws from). On the first error the queued jobs are
    cancelled instead of run to completion."""
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    pool = ProcessPoolExecutor(min(workers, len(jobs)))
    try:
        return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def audio_files(folder: Path, suffixes: tuple[str, ...] = (".wav",), recursive: bool = False) -> list[Path]:
    """Sorted audio files of ``folder``, skipping hidden files (macOS ``._x.wav`` resource forks
    look like audio but are not)."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in suffixes and not p.name.startswith(".")
                  and p.is_file())


def read_16k(path: Path) -> tuple[np.ndarray, int]:
    """(samples at 16 kHz, original sample rate); validated by :func:`kdsd.audio.read_audio`.

    Resampling runs on one torch thread: jobs already run in parallel processes."""
    sr = audio_header(path).samplerate
    return resample_single_thread(read_audio(path, sr, resample_note=False), sr, SAMPLE_RATE), sr


def audio_header(path: Path):
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise KdsdError(f"{path}: not a readable audio file ({str(exc).splitlines()[0]})") from None
