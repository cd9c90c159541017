"""``output``: response KD — the student's compressed magnitude spectrum imitates the teacher's."""
from __future__ import annotations

import torch.nn.functional as F

from kdsd.distill.base import DistillationMethod, register
from kdsd.losses import compressed_magnitude


@register
class OutputDistillation(DistillationMethod):
    name = "output"

    def kd_loss(self, student_feats, teacher_feats, student_out, teacher_out):
        s, t = (compressed_magnitude(w, self.student.n_fft, self.student.hop, self.student.compress)
                for w in (student_out, teacher_out))
        return F.mse_loss(s, t)
