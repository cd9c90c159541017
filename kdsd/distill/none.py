"""``none``: the student trained alone (supervised loss only), the reference every KD method must beat."""
from __future__ import annotations

from kdsd.distill.base import DistillationMethod, register


@register
class NoDistillation(DistillationMethod):
    name = "none"
    needs_teacher = False

    def __init__(self, student, teacher, sup_loss, kd_weight: float = 0.0, **options):
        # The teacher is not needed: dropping it saves its forward pass on every batch.
        super().__init__(student, None, sup_loss, kd_weight=0.0, **options)

    def loss_weights(self, epoch: int, epochs: int) -> tuple[float, float]:
        return 1.0, 0.0
