"""Levels and mixing shared by every corpus source: speech normalisation, exact-SNR mixing that
never clips, and the SNR measured back from a (clean, noisy) pair."""
from __future__ import annotations

import numpy as np

from kdsd.errors import KdsdError

PEAK_LIMIT = 0.99


def normalise_speech(wave: np.ndarray, level_dbfs: float, source: str = "TTS output") -> np.ndarray:
    """DC removed, RMS set to ``level_dbfs``; ``source`` names the audio in the error."""
    wave = wave - wave.mean()
    rms = np.sqrt(np.mean(wave**2))
    if rms == 0:
        raise KdsdError(f"{source}: silent speech (RMS 0) cannot be normalised")
    return (wave * (10 ** (level_dbfs / 20) / rms)).astype(np.float32)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) with ``noise`` scaled so the SNR is exactly ``snr_db``; peak ≤ PEAK_LIMIT."""
    gain = np.sqrt(np.mean(speech**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    noisy = speech + gain * noise
    peak = np.max(np.abs(noisy))
    scale = PEAK_LIMIT / peak if peak > PEAK_LIMIT else 1.0
    return (speech * scale).astype(np.float32), (noisy * scale).astype(np.float32)


def noise_segment(noise: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(``n`` samples of ``noise`` from a random offset, that offset); a recording shorter than
    ``n`` is looped from the offset."""
    if len(noise) >= n:
        offset = int(rng.integers(len(noise) - n + 1))
        return noise[offset:offset + n], offset
    offset = int(rng.integers(len(noise)))
    return np.resize(np.roll(noise, -offset), n), offset


def measured_snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    """10·log10(Σclean² / Σ(noisy − clean)²) in dB, 2 decimals (inf when noisy == clean)."""
    noise_energy = float(np.sum((noisy.astype(np.float64) - clean) ** 2))
    speech_energy = float(np.sum(clean.astype(np.float64) ** 2))
    if noise_energy == 0:
        return float("inf")
    return round(10 * np.log10(speech_energy / noise_energy), 2)
