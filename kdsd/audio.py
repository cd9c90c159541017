"""Reading and writing audio with validation (soundfile for I/O, torchaudio for resampling).

Every problem is a one-line :class:`KdsdError` naming the file: missing, unreadable, empty,
multi-channel, NaN/Inf. A wrong sample rate is resampled with a note on stderr.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from kdsd import SAMPLE_RATE
from kdsd.atomic import atomic_path
from kdsd.errors import KdsdError


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    if orig_sr == new_sr:
        return wave.astype(np.float32, copy=False)
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), orig_sr, new_sr)
    return out.numpy()


_torch_threads_lock = threading.Lock()


def resample_single_thread(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """:func:`resample` on one torch thread (bit-identical to the multi-threaded result).

    With parallel jobs on few cores, torch's thread pool waits on descheduled threads: a 3 s
    utterance took ~100 ms to resample on 2 threads versus ~3 ms on one.
    """
    if orig_sr == new_sr:
        return wave.astype(np.float32, copy=False)
    with _torch_threads_lock:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return resample(wave, orig_sr, new_sr)
        finally:
            torch.set_num_threads(threads)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, resample_note: bool = True) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate``."""
    path = Path(path)
    if not path.is_file():
        raise KdsdError(f"{path}: no such file")
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise KdsdError(f"{path}: not a readable audio file ({str(exc).splitlines()[0]})") from None
    if wave.shape[0] == 0:
        raise KdsdError(f"{path}: empty audio file (0 samples)")
    if wave.shape[1] != 1:
        raise KdsdError(f"{path}: has {wave.shape[1]} channels; kdsd expects mono audio "
                        "(mix down or pick a channel first)")
    wave = wave[:, 0]
    if not np.isfinite(wave).all():
        raise KdsdError(f"{path}: contains NaN or Inf samples")
    if sr != sample_rate:
        if resample_note:
            print(f"kdsd: note: {path}: resampling {sr} Hz -> {sample_rate} Hz", file=sys.stderr)
        wave = resample(wave, sr, sample_rate)
    return wave


def write_audio(path: str | Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write float samples as 32-bit float WAV (no quantisation noise in the corpus), atomically."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"write_audio expects 1-D samples, got shape {wave.shape}")
    with atomic_path(path) as tmp:
        sf.write(str(tmp), wave, sample_rate, subtype="FLOAT", format="WAV")
    return Path(path)
