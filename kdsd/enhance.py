"""Denoise waveforms with a trained model (used by `kdsd enhance` and by scoring)."""
from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def enhance_wave(model: torch.nn.Module, wave: np.ndarray) -> np.ndarray:
    """``(N,)`` float32 noisy samples → ``(N,)`` estimate (same length)."""
    model.eval()
    estimate = model(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None])
    return estimate[0].float().numpy()
