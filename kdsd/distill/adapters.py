"""Shared pieces of feature-based KD: latent projectors and teacher–student layer pairing."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from kdsd.errors import KdsdError

PROJECTORS = ("linear", "mlp", "none")


class LatentProjector(nn.Module):
    """Map a student feature map ``(B, C_s, F_s, T)`` onto the teacher's ``(B, C_t, F_t, T)``.

    ``linear`` is the paper's linear inverted bottleneck: a bias-free 1×1 convolution that expands
    C_s → C_t with no non-linearity. When the depths differ, frequency rows are resampled by area
    averaging (each teacher row is the mean of the student rows it covers), which keeps the map
    linear and gives every student row a gradient. ``mlp`` (ablation) inserts a PReLU hidden
    layer; ``none`` only resamples and needs C_s == C_t.
    """

    def __init__(self, c_student: int, c_teacher: int, kind: str = "linear"):
        super().__init__()
        if kind not in PROJECTORS:
            raise KdsdError(f"projector: unknown kind {kind!r}; valid: {', '.join(PROJECTORS)}")
        if kind == "none" and c_student != c_teacher:
            raise KdsdError(f"projector 'none' needs equal channels (student {c_student}, "
                            f"teacher {c_teacher}); use 'linear'")
        if kind == "linear":
            self.net = nn.Conv2d(c_student, c_teacher, 1, bias=False)
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Conv2d(c_student, c_teacher, 1), nn.PReLU(c_teacher),
                                     nn.Conv2d(c_teacher, c_teacher, 1))
        else:
            self.net = nn.Identity()

    def forward(self, z_student: torch.Tensor, freq_rows: int) -> torch.Tensor:
        z = self.net(z_student)
        if z.shape[2] != freq_rows:
            z = F.adaptive_avg_pool2d(z, (freq_rows, z.shape[3]))
        return z


def pair_taps(student_depth: int, teacher_depth: int) -> list[tuple[str, str]]:
    """Student→teacher tap pairs by relative depth: enc/dec level i ↔ round(i·L_t/L_s); latent ↔ latent."""
    pairs = []
    for prefix in ("enc", "dec"):
        for i in range(1, student_depth + 1):
            j = max(1, round(i * teacher_depth / student_depth))
            pairs.append((f"{prefix}{i}", f"{prefix}{j}"))
    pairs.append(("latent", "latent"))
    return pairs


def full_precision(loss_fn):
    """Run a KD loss in float32 even under bf16 autocast: Gram matrices and cosines of
    bf16 features (8-bit mantissa) are too coarse to match."""
    @functools.wraps(loss_fn)
    def wrapper(*args, **kwargs):
        args = [a.float() if torch.is_tensor(a) else a for a in args]
        with torch.autocast(args[0].device.type, enabled=False):
            return loss_fn(*args, **kwargs)
    return wrapper


def check_same_frames(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape[0] != b.shape[0] or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{what}: batch/frame mismatch {tuple(a.shape)} vs {tuple(b.shape)}")
