"""An example of a KD method kept outside the package: attention transfer (Zagoruyko and
Komodakis, ICLR 2017) on the encoder levels and the latent.

Each feature map ``(B, C, F, T)`` becomes an attention map: the mean over channels of the
squared activations, L2-normalised over (frequency, time); the loss is the MSE between student
and teacher maps, summed over the pairs of levels. The maps do not depend on channel counts;
when the depths differ, the student's map is area-averaged onto the teacher's frequency rows.

Use it without touching kdsd (docs/kd-methods.md#add-your-own-kd-method)::

    students:
      method_files: [examples/attention_transfer.py]
      methods: [none, attention]
    kd:
      attention: {kd_weight: 100.0}
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdsd.distill import DistillationMethod, register
from kdsd.distill.adapters import full_precision, pair_taps


@full_precision
def attention_map(features: torch.Tensor, freq_rows: int) -> torch.Tensor:
    """``(B, C, F, T)`` → ``(B, freq_rows·T)`` unit-norm map of where the activations are."""
    energy = features.pow(2).mean(dim=1, keepdim=True)
    energy = F.adaptive_avg_pool2d(energy, (freq_rows, energy.shape[-1]))
    return F.normalize(energy.flatten(1), dim=1)


@register
class AttentionTransfer(DistillationMethod):
    name = "attention"
    teacher_encoder_only = True  # encoder levels and latent only: the teacher's decoder is skipped

    def __init__(self, student, teacher, sup_loss, kd_weight: float = 100.0, **options):
        super().__init__(student, teacher, sup_loss, kd_weight=kd_weight, **options)
        self.pairs = [(s, t) for s, t in pair_taps(student.depth, teacher.depth)
                      if not s.startswith("dec")]

    def kd_loss(self, student_feats, teacher_feats, student_out, teacher_out):
        return sum(F.mse_loss(attention_map(student_feats[s], teacher_feats[t].shape[2]),
                              attention_map(teacher_feats[t], teacher_feats[t].shape[2]))
                   for s, t in self.pairs)
