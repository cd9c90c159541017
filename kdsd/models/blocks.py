"""Convolution blocks of the UNet: ``plain`` and MobileNetV2-style ``inverted_residual``.

All blocks take ``(B, C_in, F, T)`` and return ``(B, C_out, F // stride_freq, T)``; striding
is along frequency only so every feature tap keeps one column per STFT frame.
"""
from __future__ import annotations

from torch import nn


class PlainBlock(nn.Sequential):
    """3×3 convolution → batch norm → PReLU."""

    def __init__(self, c_in: int, c_out: int, stride_freq: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, stride=(stride_freq, 1), padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.PReLU(c_out),
        )


class InvertedResidualBlock(nn.Module):
    """1×1 expand → depthwise 3×3 → 1×1 linear projection; residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride_freq: int, expansion: int):
        super().__init__()
        hidden = c_in * expansion
        self.body = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, hidden, 3, stride=(stride_freq, 1), padding=1, groups=hidden,
                      bias=False),
            nn.BatchNorm2d(hidden),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.residual = stride_freq == 1 and c_in == c_out

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def make_block(kind: str, c_in: int, c_out: int, stride_freq: int, expansion: int = 2) -> nn.Module:
    if kind == "plain":
        return PlainBlock(c_in, c_out, stride_freq)
    if kind == "inverted_residual":
        return InvertedResidualBlock(c_in, c_out, stride_freq, expansion)
    raise ValueError(f"unknown block type {kind!r}")
