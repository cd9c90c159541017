"""The base every KD method builds on, and the registry that names them.

A method wraps a student (trainable), an optional teacher (frozen, eval mode, no grad) and any
adapters it needs (projectors, hint layers). All methods share one return contract::

    estimate, {"sup": L_sup, "kd": L_kd} = method(noisy, clean, epoch)

and the trainer minimises ``w_sup·L_sup + w_kd·L_kd`` with weights from ``loss_weights``.
Adapters are counted apart from the student and never saved in the deployable model.
"""
from __future__ import annotations

import difflib
from typing import ClassVar

import torch
from torch import nn

from kdsd.errors import KdsdError

_REGISTRY: dict[str, type["DistillationMethod"]] = {}


def register(cls: type["DistillationMethod"]) -> type["DistillationMethod"]:
    """Class decorator: make a method available under ``cls.name``; duplicates are refused."""
    name = cls.name
    if name in _REGISTRY:
        raise ValueError(f"KD method {name!r} is already registered by {_REGISTRY[name].__module__}")
    _REGISTRY[name] = cls
    return cls


def method_names() -> list[str]:
    return sorted(_REGISTRY)


def get_method(name: str) -> type["DistillationMethod"]:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KdsdError(f"unknown KD method {name!r}{hint}; valid: {', '.join(method_names())}")
    return _REGISTRY[name]


class DistillationMethod(nn.Module):
    """Student + frozen teacher + adapters; subclasses implement :meth:`kd_loss`."""

    name: ClassVar[str]
    needs_teacher: ClassVar[bool] = True

    def __init__(self, student: nn.Module, teacher: nn.Module | None, sup_loss: nn.Module,
                 kd_weight: float = 1.0, **options):
        super().__init__()
        if self.needs_teacher and teacher is None:
            raise KdsdError(f"KD method {self.name!r} needs a teacher model")
        if options:
            raise KdsdError(f"KD method {self.name!r}: unknown options {', '.join(sorted(options))}")
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.eval()
        self.sup_loss = sup_loss
        self.kd_weight = kd_weight

    # The teacher stays in eval mode (frozen batch-norm statistics) whatever the trainer does.
    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, noisy: torch.Tensor, clean: torch.Tensor, epoch: int = 0):
        estimate, student_feats = self.student(noisy, return_features=True)
        losses = {"sup": self.sup_loss(estimate, clean)}
        if self.teacher is None:
            losses["kd"] = estimate.new_zeros(())
        else:
            with torch.no_grad():
                teacher_out, teacher_feats = self.teacher(self.teacher_input(noisy, clean),
                                                          return_features=True)
            losses["kd"] = self.kd_loss(student_feats, teacher_feats, estimate, teacher_out)
        return estimate, losses

    def teacher_input(self, noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        return noisy

    def kd_loss(self, student_feats: dict, teacher_feats: dict, student_out: torch.Tensor,
                teacher_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss_weights(self, epoch: int, epochs: int) -> tuple[float, float]:
        """``(w_sup, w_kd)`` for a 0-based epoch out of ``epochs``."""
        return 1.0, self.kd_weight

    def adapter_modules(self) -> dict[str, nn.Module]:
        return {n: m for n, m in self.named_children() if n not in ("student", "teacher", "sup_loss")}

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = list(self.student.parameters())
        for module in self.adapter_modules().values():
            params += list(module.parameters())
        return params

    def adapter_parameter_count(self) -> int:
        return sum(p.numel() for m in self.adapter_modules().values() for p in m.parameters())

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Student + adapter weights (what a checkpoint must hold; the teacher is on disk already)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("teacher.")}
