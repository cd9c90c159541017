"""STFT-domain UNet denoising autoencoder (DESIGN §2.2).

noisy wave → STFT → compressed magnitude → encoder (L levels, each halving frequency)
→ **latent** → decoder with skip connections → bounded mask on the noisy STFT → iSTFT.

Every forward pass can return named feature taps (``enc1..encL``, ``latent``,
``dec1..decL``) so KD methods read features without editing model code.
"""
from __future__ import annotations

import torch
from torch import nn

from kdsd.errors import KdsdError
from kdsd.models.blocks import make_block

BLOCK_TYPES = ("plain", "inverted_residual")


class UNetDAE(nn.Module):
    """Mask-estimating UNet over the (frequency, time) plane of an STFT.

    Shapes: ``forward(noisy)`` takes ``(B, N)`` waveforms and returns ``(B, N)`` estimates.
    Feature taps are ``(B, C, F, T)`` tensors; ``latent`` has ``latent_channels`` channels and
    ``n_freq // 2**depth`` frequency rows, one column per STFT frame.
    """

    def __init__(
        self,
        width: int = 16,
        depth: int = 4,
        block: str = "plain",
        n_fft: int = 512,
        hop: int = 128,
        max_channels_factor: int = 4,
        compress: float = 0.3,
        expansion: int = 2,
    ):
        super().__init__()
        if block not in BLOCK_TYPES:
            raise KdsdError(f"model: unknown block type {block!r}; valid: {', '.join(BLOCK_TYPES)}")
        if width < 1 or depth < 1:
            raise KdsdError(f"model: width and depth must be >= 1 (got width={width}, depth={depth})")
        n_freq = n_fft // 2  # the Nyquist bin is dropped inside the network, restored at the mask
        if n_freq % 2**depth:
            raise KdsdError(f"model: n_fft/2={n_freq} is not divisible by 2**depth={2**depth}")
        self.args = dict(width=width, depth=depth, block=block, n_fft=n_fft, hop=hop,
                         max_channels_factor=max_channels_factor, compress=compress,
                         expansion=expansion)
        self.n_fft, self.hop, self.compress, self.depth = n_fft, hop, compress, depth
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

        chans = [width * min(2**i, max_channels_factor) for i in range(depth)]
        self.channels = chans
        self.encoders = nn.ModuleList()
        c_in = 1
        for c in chans:
            self.encoders.append(make_block(block, c_in, c, stride_freq=2, expansion=expansion))
            c_in = c
        self.bottleneck = make_block(block, c_in, c_in, stride_freq=1, expansion=expansion)
        self.latent_channels = c_in
        self.latent_freq = n_freq // 2**depth

        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth)):
            # Decode at this level's resolution (latent ⊕ skip), then double the frequency rows.
            c_out = chans[level - 1] if level > 0 else width
            self.decoders.append(make_block(block, c_in + chans[level], c_out, stride_freq=1,
                                            expansion=expansion))
            self.upsamplers.append(nn.ConvTranspose2d(c_out, c_out, (2, 1), stride=(2, 1)))
            c_in = c_out
        self.mask_head = nn.Conv2d(c_in, 1, 1)

    # -- signal helpers -------------------------------------------------------------------
    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.stft(wave, self.n_fft, self.hop, window=self.window, return_complex=True)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, length=length)

    def features_in(self, spec: torch.Tensor) -> torch.Tensor:
        """Compressed magnitude without the Nyquist bin: ``(B, 1, n_fft/2, T)``."""
        return (spec.abs()[:, None, :-1] + 1e-8) ** self.compress

    # -- network --------------------------------------------------------------------------
    def forward(self, noisy: torch.Tensor, return_features: bool = False):
        """Denoise ``(B, N)`` waveforms; optionally also return the feature-tap dict."""
        if noisy.dim() != 2:
            raise ValueError(f"UNetDAE expects (batch, samples), got shape {tuple(noisy.shape)}")
        spec = self.stft(noisy)
        mask, feats = self.mask_from_features(self.features_in(spec))
        # Repeat the last bin's mask for the Nyquist bin the network never saw.
        mask = torch.cat([mask, mask[:, -1:]], dim=1)
        estimate = self.istft(spec * mask, noisy.shape[-1])
        return (estimate, feats) if return_features else estimate

    def encode(self, noisy: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder-only path: the taps ``enc1..encL`` and ``latent`` of ``(B, N)`` waveforms,
        equal to those of :meth:`forward`, without running the decoder."""
        if noisy.dim() != 2:
            raise ValueError(f"UNetDAE expects (batch, samples), got shape {tuple(noisy.shape)}")
        return self._encoder_taps(self.features_in(self.stft(noisy)))

    def _encoder_taps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats: dict[str, torch.Tensor] = {}
        for i, enc in enumerate(self.encoders, start=1):
            x = enc(x)
            feats[f"enc{i}"] = x
        feats["latent"] = self.bottleneck(x)
        return feats

    def mask_from_features(self, x: torch.Tensor):
        """Bounded (sigmoid) magnitude mask ``(B, n_fft/2, T)`` and the feature taps."""
        feats = self._encoder_taps(x)
        skips = [feats[f"enc{i}"] for i in range(1, self.depth + 1)]
        x = feats["latent"]
        for i, (up, dec) in enumerate(zip(self.upsamplers, self.decoders), start=1):
            x = dec(torch.cat([x, skips.pop()], dim=1))
            feats[f"dec{i}"] = x
            x = up(x)
        return torch.sigmoid(self.mask_head(x))[:, 0], feats

    def tap_names(self) -> list[str]:
        return ([f"enc{i}" for i in range(1, self.depth + 1)] + ["latent"]
                + [f"dec{i}" for i in range(1, self.depth + 1)])


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
