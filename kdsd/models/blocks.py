"""Convolution blocks of the UNet: ``plain`` and MobileNetV2-style ``inverted_residual``.

All blocks take ``(B, C_in, F, T)`` and return ``(B, C_out, F // stride_freq, T)``; striding
is along frequency only so every feature tap keeps one column per STFT frame.

With ``causal=True`` every 3-wide time convolution is a :class:`CausalConv2d`: it sees the
current and two past frames (left padding in time), never a future one. The parameters and
state-dict keys are those of the non-causal block, so KD methods and loaders see no difference.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv2d(nn.Conv2d):
    """A (freq × time) convolution padded on the past side of time only.

    Offline the past is zeros before the first frame. For frame-by-frame streaming set
    ``stream_history`` to the last ``history_frames`` input frames ``(B, C_in, F, history)``:
    the forward then reads them instead of zeros and leaves the updated history in
    ``stream_history_out`` (kdsd.models.streaming routes these through explicit tensors).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride_freq: int, groups: int = 1,
                 bias: bool = False):
        super().__init__(c_in, c_out, kernel, stride=(stride_freq, 1), padding=(kernel // 2, 0),
                         groups=groups, bias=bias)
        self.history_frames = (self.kernel_size[1] - 1) * self.dilation[1]
        self.stream_history: torch.Tensor | None = None
        self.stream_history_out: torch.Tensor | None = None

    def forward(self, x):
        if self.stream_history is None:
            return super().forward(F.pad(x, (self.history_frames, 0)))
        x = torch.cat([self.stream_history, x], dim=-1)
        self.stream_history_out = x[..., x.shape[-1] - self.history_frames:]
        return super().forward(x)


def _conv3(c_in: int, c_out: int, stride_freq: int, causal: bool, groups: int = 1) -> nn.Conv2d:
    if causal:
        return CausalConv2d(c_in, c_out, 3, stride_freq, groups=groups)
    return nn.Conv2d(c_in, c_out, 3, stride=(stride_freq, 1), padding=1, groups=groups, bias=False)


class PlainBlock(nn.Sequential):
    """3×3 convolution → batch norm → PReLU."""

    def __init__(self, c_in: int, c_out: int, stride_freq: int, causal: bool = False):
        super().__init__(
            _conv3(c_in, c_out, stride_freq, causal),
            nn.BatchNorm2d(c_out),
            nn.PReLU(c_out),
        )


class InvertedResidualBlock(nn.Module):
    """1×1 expand → depthwise 3×3 → 1×1 linear projection; residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride_freq: int, expansion: int,
                 causal: bool = False):
        super().__init__()
        hidden = c_in * expansion
        self.body = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.PReLU(hidden),
            _conv3(hidden, hidden, stride_freq, causal, groups=hidden),
            nn.BatchNorm2d(hidden),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.residual = stride_freq == 1 and c_in == c_out

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def make_block(kind: str, c_in: int, c_out: int, stride_freq: int, expansion: int = 2,
               causal: bool = False) -> nn.Module:
    if kind == "plain":
        return PlainBlock(c_in, c_out, stride_freq, causal)
    if kind == "inverted_residual":
        return InvertedResidualBlock(c_in, c_out, stride_freq, expansion, causal)
    raise ValueError(f"unknown block type {kind!r}")
