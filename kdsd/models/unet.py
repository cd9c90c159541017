"""STFT-domain UNet denoising autoencoder (DESIGN §2.2).

noisy wave → STFT → compressed magnitude → encoder (L levels, each halving frequency)
→ **latent** → decoder with skip connections → bounded mask on the noisy STFT → iSTFT.

``causal=True`` builds the same network with time convolutions that see only past frames and a
causal STFT (frame t ends one hop after sample t·hop, zeros before the start): an output sample
then depends on no input sample after it, so the model can stream hop by hop
(kdsd.models.streaming). Its frame t covers the teacher's frame t shifted by one hop, and both
have ``1 + N // hop`` frames, so KD taps line up frame by frame.

Every forward pass can return named feature taps (``enc1..encL``, ``latent``,
``dec1..decL``) so KD methods read features without editing model code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
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
        causal: bool = False,
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
        if causal:  # recorded only when set: non-causal model files stay as they were
            self.args["causal"] = True
        self.causal = bool(causal)
        self.n_fft, self.hop, self.compress, self.depth = n_fft, hop, compress, depth
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

        chans = [width * min(2**i, max_channels_factor) for i in range(depth)]
        self.channels = chans
        self.encoders = nn.ModuleList()
        c_in = 1
        for c in chans:
            self.encoders.append(make_block(block, c_in, c, stride_freq=2, expansion=expansion,
                                            causal=causal))
            c_in = c
        self.bottleneck = make_block(block, c_in, c_in, stride_freq=1, expansion=expansion,
                                     causal=causal)
        self.latent_channels = c_in
        self.latent_freq = n_freq // 2**depth

        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth)):
            # Decode at this level's resolution (latent ⊕ skip), then double the frequency rows.
            c_out = chans[level - 1] if level > 0 else width
            self.decoders.append(make_block(block, c_in + chans[level], c_out, stride_freq=1,
                                            expansion=expansion, causal=causal))
            self.upsamplers.append(nn.ConvTranspose2d(c_out, c_out, (2, 1), stride=(2, 1)))
            c_in = c_out
        self.mask_head = nn.Conv2d(c_in, 1, 1)

    # -- signal helpers -------------------------------------------------------------------
    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` → ``(B, n_fft/2 + 1, 1 + N // hop)`` complex. Non-causal: frames centred on
        ``t·hop`` (reflect padding). Causal: frame t is the ``n_fft`` samples ending at
        ``(t + 1)·hop``, zeros outside the input."""
        if not self.causal:
            return torch.stft(wave, self.n_fft, self.hop, window=self.window, return_complex=True)
        n = wave.shape[-1]
        padded = F.pad(wave, (self.n_fft - self.hop, (n // self.hop + 1) * self.hop - n))
        return torch.stft(padded, self.n_fft, self.hop, window=self.window, center=False,
                          return_complex=True)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        if not self.causal:
            return torch.istft(spec, self.n_fft, self.hop, window=self.window, length=length)
        # Weighted overlap-add divided by the summed squared window, as torch.istft does; done by
        # hand because torch.istft refuses center=False (the window is 0 at the first sample).
        frames = torch.fft.irfft(spec, self.n_fft, dim=1) * self.window[:, None]
        out_len = (spec.shape[-1] - 1) * self.hop + self.n_fft
        fold = dict(output_size=(1, out_len), kernel_size=(1, self.n_fft), stride=(1, self.hop))
        wave = F.fold(frames, **fold)[:, 0, 0]
        envelope = F.fold((self.window ** 2)[None, :, None].expand(1, -1, spec.shape[-1]), **fold)
        start = self.n_fft - self.hop
        return wave[:, start:start + length] / envelope[0, 0, 0, start:start + length]

    def features_in(self, spec: torch.Tensor) -> torch.Tensor:
        """Compressed magnitude without the Nyquist bin: ``(B, 1, n_fft/2, T)``."""
        return self.compressed(spec.abs())

    def compressed(self, magnitude: torch.Tensor) -> torch.Tensor:
        """``(B, n_fft/2 + 1, T)`` magnitude → the network input ``(B, 1, n_fft/2, T)``."""
        return self.floored_magnitude(magnitude) ** self.compress

    @staticmethod
    def floored_magnitude(magnitude: torch.Tensor) -> torch.Tensor:
        """The rows the network sees (Nyquist bin dropped), floored so that compression has a
        finite gradient at 0: ``(B, n_fft/2 + 1, T)`` → ``(B, 1, n_fft/2, T)``."""
        return magnitude[:, None, :-1] + 1e-8

    def algorithmic_latency_ms(self, sample_rate: int = 16000) -> float:
        """Window plus look-ahead: how far an output sample's inputs reach past it, in ms.

        Causal: one window (an output sample needs every frame covering it, the last of which
        ends ``n_fft - 1`` samples later). Non-causal: half a window of centred framing, plus
        half a window for each look-ahead frame the convolutions read, plus their hops.
        """
        if self.causal:
            return 1000.0 * self.n_fft / sample_rate
        look_ahead_frames = 2 * self.depth + 1  # one frame per 3-wide conv on the deepest path
        return 1000.0 * (self.n_fft + look_ahead_frames * self.hop) / sample_rate

    # -- network --------------------------------------------------------------------------
    def forward(self, noisy: torch.Tensor, return_features: bool = False):
        """Denoise ``(B, N)`` waveforms; optionally also return the feature-tap dict."""
        if noisy.dim() != 2:
            raise ValueError(f"UNetDAE expects (batch, samples), got shape {tuple(noisy.shape)}")
        spec = self.stft(noisy)
        mask, feats = self.mask_from_features(self.features_in(spec))
        estimate = self.istft(spec * mask, noisy.shape[-1])
        return (estimate, feats) if return_features else estimate

    def mask_from_magnitude(self, magnitude: torch.Tensor) -> torch.Tensor:
        """The network between STFT and iSTFT (what ONNX export writes):
        ``(B, n_fft/2 + 1, T)`` magnitude → ``(B, n_fft/2 + 1, T)`` mask in (0, 1)."""
        return self.mask_from_features(self.compressed(magnitude))[0]

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
        """Bounded (sigmoid) magnitude mask ``(B, n_fft/2 + 1, T)`` and the feature taps; the
        Nyquist bin, which the network never sees, gets the mask of the bin below it."""
        feats = self._encoder_taps(x)
        skips = [feats[f"enc{i}"] for i in range(1, self.depth + 1)]
        x = feats["latent"]
        for i, (up, dec) in enumerate(zip(self.upsamplers, self.decoders), start=1):
            x = dec(torch.cat([x, skips.pop()], dim=1))
            feats[f"dec{i}"] = x
            x = up(x)
        mask = torch.sigmoid(self.mask_head(x))[:, 0]
        return torch.cat([mask, mask[:, -1:]], dim=1), feats

    def tap_names(self) -> list[str]:
        return ([f"enc{i}" for i in range(1, self.depth + 1)] + ["latent"]
                + [f"dec{i}" for i in range(1, self.depth + 1)])


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
