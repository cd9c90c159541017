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


MONO_HINT = "mix down or pick a channel first"
READ_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError)


def unreadable(path: str | Path, exc: Exception) -> KdsdError:
    return KdsdError(f"{path}: not a readable audio file ({str(exc).splitlines()[0]})")


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise KdsdError(f"{path}: is a folder, not an audio file")
    if not path.is_file():
        raise KdsdError(f"{path}: no such file")
    return path


def _refuse_empty(frames: int, path: Path) -> None:
    if frames == 0:
        raise KdsdError(f"{path}: empty audio file (0 samples)")


def audio_info(path: str | Path):
    """The header of an audio file (``soundfile.info``), refusing what holds no audio: a missing
    path, a folder, an unreadable file, zero samples."""
    path = _existing_file(path)
    try:
        info = sf.info(str(path))
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None
    _refuse_empty(info.frames, path)
    return info


def to_mono(block: np.ndarray, path: str | Path, channel: int | None = None, mix: bool = False,
            hint: str = MONO_HINT) -> np.ndarray:
    """``(frames, channels)`` samples as one channel: the only one, channel ``channel``
    (1-based), or the average of all with ``mix``; anything else is refused with ``hint``."""
    channels = block.shape[1]
    if channel is not None:
        if not 1 <= channel <= channels:
            raise KdsdError(f"{path}: has {channels} channel(s); cannot pick channel {channel}")
        return block[:, channel - 1]
    if mix:
        return block.mean(axis=1, dtype=np.float32)
    if channels != 1:
        raise KdsdError(f"{path}: has {channels} channels; kdsd expects mono audio ({hint})")
    return block[:, 0]


def check_finite(wave: np.ndarray, path: str | Path) -> np.ndarray:
    if not np.isfinite(wave).all():
        raise KdsdError(f"{path}: contains NaN or Inf samples")
    return wave


def resample_with_note(wave: np.ndarray, path: str | Path, orig_sr: int, new_sr: int) -> np.ndarray:
    if orig_sr != new_sr:
        print(f"kdsd: note: {path}: resampling {orig_sr} Hz -> {new_sr} Hz", file=sys.stderr)
    return resample(wave, orig_sr, new_sr)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, resample_note: bool = True,
               channel: int | None = None, mix: bool = False, hint: str = MONO_HINT) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate`` (see :func:`to_mono` for channels)."""
    path = _existing_file(path)  # one open of the file: no separate header read
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None
    _refuse_empty(wave.shape[0], path)
    wave = check_finite(to_mono(wave, path, channel, mix, hint), path)
    if resample_note:
        return resample_with_note(wave, path, sr, sample_rate)
    return resample(wave, sr, sample_rate)


def read_pair(clean_path: str | Path, noisy_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A manifest row's (clean, noisy) samples, refused unless they have the same length."""
    clean, noisy = read_audio(clean_path), read_audio(noisy_path)
    if len(noisy) != len(clean):
        raise KdsdError(f"{noisy_path}: {len(noisy)} samples but its clean reference has "
                        f"{len(clean)} ({clean_path})")
    return clean, noisy


def write_audio(path: str | Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write float samples as 32-bit float WAV (no quantisation noise in the corpus), atomically."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"write_audio expects 1-D samples, got shape {wave.shape}")
    with atomic_path(path) as tmp:
        sf.write(str(tmp), wave, sample_rate, subtype="FLOAT", format="WAV")
    return Path(path)
