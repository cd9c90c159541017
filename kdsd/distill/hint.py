"""``hint``: FitNets-style KD — a linear 1×1 adapter maps the student latent to the teacher's
channels (frequency resampled when depths differ) and MSE pulls it onto the teacher latent.

It shares the cosine method's projector, so ``hint`` vs ``cosine`` isolates the distance.
"""
from __future__ import annotations

from kdsd.distill.base import register
from kdsd.distill.cosine import CosineLatentDistillation


@register
class HintDistillation(CosineLatentDistillation):
    name = "hint"
    default_distance = "mse"
