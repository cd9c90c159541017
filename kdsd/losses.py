"""Supervised losses on waveforms (negative SI-SDR plus a compressed-magnitude term).

Below both `kdsd.train` and `kdsd.distill`, which both use them: imports run down the layers only.
"""
from __future__ import annotations

import torch

EPS = 1e-8


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Scale-invariant SDR in dB per item; ``(B, N)`` → ``(B,)``. Both are mean-removed first."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.pow(2).sum(-1, keepdim=True) + EPS)
    target = scale * reference
    noise = estimate - target
    return 10 * torch.log10((target.pow(2).sum(-1) + EPS) / (noise.pow(2).sum(-1) + EPS))


def compressed_magnitude(wave: torch.Tensor, n_fft: int, hop: int, power: float) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=wave.device)
    spec = torch.stft(wave, n_fft, hop, window=window, return_complex=True)
    return (spec.abs() + EPS) ** power


class SupervisedLoss(torch.nn.Module):
    """``-SI-SDR + mag_weight · MSE(|Ŝ|^p, |S|^p)`` averaged over the batch.

    The magnitude term anchors the level and spectral detail that SI-SDR ignores.
    """

    def __init__(self, mag_weight: float = 10.0, n_fft: int = 512, hop: int = 128, power: float = 0.3):
        super().__init__()
        self.mag_weight, self.n_fft, self.hop, self.power = mag_weight, n_fft, hop, power

    def forward(self, estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        loss = -si_sdr(estimate, clean).mean()
        if self.mag_weight:
            mags = [compressed_magnitude(w, self.n_fft, self.hop, self.power) for w in (estimate, clean)]
            loss = loss + self.mag_weight * torch.nn.functional.mse_loss(*mags)
        return loss
