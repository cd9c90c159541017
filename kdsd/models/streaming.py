"""Frame-by-frame form of a causal UNet: one STFT frame in, one mask frame out, the history of
every time convolution carried as explicit tensors (so an exported ONNX graph is stateless and
the caller owns the state, as a real-time loop must).

Shapes: ``forward(magnitude, *history)`` takes ``(B, n_fft/2 + 1, 1)`` and one
``(B, C_in, F_in, 2)`` tensor per causal convolution (:meth:`StreamingMask.initial_history`:
zeros, the offline model's left padding) and returns ``(mask, *new_history)`` of the same shapes.
"""
from __future__ import annotations

import torch
from torch import nn

from kdsd.errors import KdsdError
from kdsd.models.blocks import CausalConv2d
from kdsd.models.unet import UNetDAE


class StreamingMask(nn.Module):
    def __init__(self, model: UNetDAE):
        super().__init__()
        if not getattr(model, "causal", False):
            raise KdsdError("model: only a causal model (scenario option `causal: true`) can "
                            "stream frame by frame; this one reads future frames")
        self.model = model.eval()
        self.convs = [m for m in model.modules() if isinstance(m, CausalConv2d)]
        self.history_shapes = self._history_shapes()
        self.eval()  # inference only; also keeps train() of a wrapper from reaching the model

    def _history_shapes(self) -> list[tuple[int, ...]]:
        """``(C_in, F_in, history)`` of each causal convolution, from one offline frame."""
        shapes = {}

        def record(conv, inputs):  # returns None: the input passes unchanged
            shapes[conv] = (*inputs[0].shape[1:3], conv.history_frames)
        hooks = [conv.register_forward_pre_hook(record) for conv in self.convs]
        try:
            with torch.no_grad():
                self.model.mask_from_magnitude(torch.zeros(1, self.model.n_fft // 2 + 1, 1))
        finally:
            for hook in hooks:
                hook.remove()
        return [shapes[conv] for conv in self.convs]

    def initial_history(self, batch: int = 1) -> list[torch.Tensor]:
        return [torch.zeros(batch, *shape) for shape in self.history_shapes]

    def forward(self, magnitude: torch.Tensor, *history: torch.Tensor):
        if len(history) != len(self.convs):
            raise ValueError(f"StreamingMask expects {len(self.convs)} history tensors, "
                             f"got {len(history)}")
        for conv, past in zip(self.convs, history):
            conv.stream_history = past
        try:
            mask = self.model.mask_from_magnitude(magnitude)
            new_history = [conv.stream_history_out for conv in self.convs]
        finally:  # leave the model as an offline model again
            for conv in self.convs:
                conv.stream_history = conv.stream_history_out = None
        return (mask, *new_history)
