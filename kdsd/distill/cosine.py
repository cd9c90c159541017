"""``cosine``: the proposed method (Luong et al., AES 2025).

A linear inverted bottleneck ``P`` (bias-free 1×1 convolution expanding the student's latent
channels to the teacher's) maps the student latent into the teacher's latent space, and
``L_kd = 1 − cos(P(z_s), z_t)`` per time frame over (channel·frequency), averaged. Cosine keeps
direction and ignores scale; the projector frees the student from the teacher's channel order
and dimensionality. ``P`` is dropped after training.

Ablation switches (options, so named variants in the config measure each ingredient):
``distance`` (cosine | mse), ``projector`` (linear | mlp | none), ``granularity``
(frame | utterance), ``teacher_input`` (noisy | clean). The loss is computed in float32 even
under bf16 autocast, and the teacher runs its encoder only (the latent is all it needs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdsd.distill.adapters import LatentProjector, check_same_frames, full_precision
from kdsd.distill.base import DistillationMethod, register
from kdsd.errors import KdsdError

GRANULARITIES = ("frame", "utterance")
DISTANCES = ("cosine", "mse")
TEACHER_INPUTS = ("noisy", "clean")


def _vectors(z: torch.Tensor, granularity: str) -> torch.Tensor:
    """``(B, C, F, T)`` → ``(B, C·F, T)`` per frame, or ``(B, C·F·T, 1)`` per utterance."""
    b, c, f, t = z.shape
    z = z.reshape(b, c * f, t)
    return z if granularity == "frame" else z.reshape(b, c * f * t, 1)


@full_precision
def cosine_latent_loss(z_student: torch.Tensor, z_teacher: torch.Tensor,
                       granularity: str = "frame") -> torch.Tensor:
    """``1 − cos`` between projected student and teacher latents, both ``(B, C, F, T)``, averaged."""
    if z_student.shape != z_teacher.shape:
        raise ValueError(f"cosine loss: shapes differ {tuple(z_student.shape)} vs {tuple(z_teacher.shape)}")
    s, t = _vectors(z_student, granularity), _vectors(z_teacher, granularity)
    return (1.0 - F.cosine_similarity(s, t, dim=1, eps=1e-8)).mean()


@full_precision
def latent_mse_loss(z_student: torch.Tensor, z_teacher: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(z_student, z_teacher)


@register
class CosineLatentDistillation(DistillationMethod):
    name = "cosine"
    default_distance = "cosine"
    teacher_encoder_only = True

    def __init__(self, student, teacher, sup_loss, kd_weight: float = 1.0, *,
                 projector: str = "linear", granularity: str = "frame",
                 teacher_input: str = "noisy", distance: str | None = None, **options):
        super().__init__(student, teacher, sup_loss, kd_weight=kd_weight, **options)
        distance = distance or self.default_distance
        for key, value, valid in (("granularity", granularity, GRANULARITIES),
                                  ("teacher_input", teacher_input, TEACHER_INPUTS),
                                  ("distance", distance, DISTANCES)):
            if value not in valid:
                raise KdsdError(f"KD method {self.name!r}: {key}={value!r}; valid: {', '.join(valid)}")
        self.granularity, self.teacher_source, self.distance = granularity, teacher_input, distance
        self.projector = LatentProjector(student.latent_channels, teacher.latent_channels, projector)

    def teacher_input(self, noisy, clean):
        return clean if self.teacher_source == "clean" else noisy

    def kd_loss(self, student_feats, teacher_feats, student_out, teacher_out):
        z_t = teacher_feats["latent"]
        check_same_frames(student_feats["latent"], z_t, self.name)
        z_s = self.projector(student_feats["latent"], z_t.shape[2])
        if self.distance == "mse":
            return latent_mse_loss(z_s, z_t)
        return cosine_latent_loss(z_s, z_t, self.granularity)
