"""``sp2step``: two-step similarity-preserving KD (Nathoo, Kegler, Stamenovic, ICASSP 2024),
the state-of-the-art baseline.

For each matched layer and each sample, the frame × frame Gram matrix of the activations
(flattened over channel·frequency) is row-L2-normalised; the loss is the MSE between student
and teacher Grams, summed over layers. Being T×T, the Grams compare across any channel count.
Step 1 trains with the KD loss only; step 2 with the supervised loss only, from a fresh
optimiser state (AdamW's moments from step 1 were set by the tiny Gram-loss gradients; option
``reset_optimiser``). ``step2_epochs`` sets the supervised budget: ``remainder`` (the last
``1 − step1_fraction`` of the configured epochs: the same total epochs as every other method)
or ``all`` (every configured epoch after step 1: as many supervised epochs as the others).
Grams are computed in float32 even under bf16 autocast; step 2 runs no teacher forward.
Step 1 draws its batches from a stream of its own, so step 2's epoch k sees the batches every
other method sees in its epoch k (the comparison with them stays paired by seed).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdsd.distill.adapters import check_same_frames, full_precision, pair_taps
from kdsd.distill.base import SHARED_STREAM, DistillationMethod, register
from kdsd.errors import KdsdError

STEP2_BUDGETS = ("remainder", "all")
STEP1_STREAM = 1  # the batches of the KD-only step, apart from the shared stream


@full_precision
def frame_gram(features: torch.Tensor) -> torch.Tensor:
    """``(B, C, F, T)`` → row-L2-normalised ``(B, T, T)`` Gram of the per-frame activations."""
    b, c, f, t = features.shape
    a = features.reshape(b, c * f, t).transpose(1, 2)  # (B, T, C·F)
    return F.normalize(a @ a.transpose(1, 2), p=2, dim=2)


@full_precision
def similarity_preserving_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    check_same_frames(student, teacher, "similarity-preserving loss")
    return F.mse_loss(frame_gram(student), frame_gram(teacher))


@register
class TwoStepSimilarityPreserving(DistillationMethod):
    name = "sp2step"

    def __init__(self, student, teacher, sup_loss, kd_weight: float = 1.0, *,
                 step1_fraction: float = 0.5, step2_epochs: str = "remainder",
                 reset_optimiser: bool = True, **options):
        super().__init__(student, teacher, sup_loss, kd_weight=kd_weight, **options)
        if not 0.0 < step1_fraction < 1.0:
            raise KdsdError(f"KD method 'sp2step': step1_fraction must be in (0, 1), got {step1_fraction}")
        if step2_epochs not in STEP2_BUDGETS:
            raise KdsdError(f"KD method 'sp2step': step2_epochs={step2_epochs!r}; "
                            f"valid: {', '.join(STEP2_BUDGETS)}")
        self.step1_fraction, self.step2_epochs, self.reset_optimiser = (
            step1_fraction, step2_epochs, reset_optimiser)
        self.pairs = pair_taps(student.depth, teacher.depth)

    def kd_loss(self, student_feats, teacher_feats, student_out, teacher_out):
        return sum(similarity_preserving_loss(student_feats[s], teacher_feats[t]) for s, t in self.pairs)

    def step1_epochs(self, epochs: int) -> int:
        """KD-only epochs for ``epochs`` configured (at least one; one left for step 2 in
        ``remainder`` mode)."""
        if self.step2_epochs == "all":
            return max(1, round(self.step1_fraction * epochs))
        return min(epochs - 1, max(1, round(self.step1_fraction * epochs))) if epochs > 1 else 1

    def schedule_epochs(self, epochs: int) -> int:
        return self.step1_epochs(epochs) + epochs if self.step2_epochs == "all" else epochs

    def loss_weights(self, epoch: int, epochs: int) -> tuple[float, float]:
        return (0.0, self.kd_weight) if epoch < self.step1_epochs(epochs) else (1.0, 0.0)

    def resets_optimiser_at(self, epoch: int, epochs: int) -> bool:
        return self.reset_optimiser and epoch == self.step1_epochs(epochs)

    def data_epoch(self, epoch: int, epochs: int) -> tuple[int, int]:
        step1 = self.step1_epochs(epochs)
        return (STEP1_STREAM, epoch) if epoch < step1 else (SHARED_STREAM, epoch - step1)
