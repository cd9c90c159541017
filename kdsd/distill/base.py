"""The base every KD method builds on, and the registry that names them.

A method wraps a student (trainable), an optional teacher (frozen, eval mode, no grad) and any
adapters it needs (projectors, hint layers). All methods share one return contract::

    estimate, {"sup": L_sup, "kd": L_kd} = method(noisy, clean, kd=True)

and the trainer minimises ``w_sup·L_sup + w_kd·L_kd`` with weights from ``loss_weights``; it
passes ``kd=False`` when ``w_kd`` is zero, which skips the teacher forward and the KD loss.
The schedule hooks (``loss_weights``, ``schedule_epochs``, ``resets_optimiser_at``, ``data_epoch``)
let a method shape its training without the loop knowing any method by name.
Adapters are counted apart from the student and never saved in the deployable model.
"""
from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from kdsd.errors import KdsdError

# The batch stream every method shares: epoch k of any method sees the same batches (common random
# numbers keep paired differences small). A method's own extra phase (sp2step's KD-only step 1)
# draws from another stream (kdsd.train.data.PairSet.batches), so its supervised epochs stay paired.
SHARED_STREAM = 0

_REGISTRY: dict[str, type["DistillationMethod"]] = {}
# Method names are DAG wildcards and folder names.
NAME_PATTERN = re.compile(r"^[a-z0-9_]+$")


def register(cls: type["DistillationMethod"]) -> type["DistillationMethod"]:
    """Class decorator: make a method available under ``cls.name``; duplicates are refused."""
    name = cls.name
    if not NAME_PATTERN.match(name):
        raise KdsdError(f"KD method {name!r} ({cls.__module__}): names use lower-case letters, "
                        "digits and underscores only")
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


def supervised_forward(student: nn.Module, sup_loss: nn.Module, noisy: torch.Tensor, clean: torch.Tensor):
    """``(estimate, taps, L_sup)`` of a student on a batch: one graph, the part of a step every
    method shares (training may swap in a compiled copy, :func:`kdsd.train.loop.prepare_device`)."""
    estimate, feats = student(noisy, return_features=True)
    return estimate, feats, sup_loss(estimate, clean)


class DistillationMethod(nn.Module):
    """Student + frozen teacher + adapters; subclasses implement :meth:`kd_loss`."""

    name: ClassVar[str]
    needs_teacher: ClassVar[bool] = True
    # True when kd_loss reads only encoder taps and the latent: the teacher's decoder is skipped.
    teacher_encoder_only: ClassVar[bool] = False

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
        self.supervised = supervised_forward

    # The teacher stays in eval mode (frozen batch-norm statistics) whatever the trainer does.
    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, noisy: torch.Tensor, clean: torch.Tensor, kd: bool = True, shared=None):
        """``kd=False`` (an epoch whose KD weight is zero): no teacher forward, ``L_kd = 0``.
        ``shared`` (:class:`kdsd.train.loop.SharedBatch`), when given, gives the teacher's
        ``(output, taps)`` in place of :meth:`teacher_forward`: students trained side by side on
        one batch share one forward."""
        estimate, student_feats, sup = self.supervised(self.student, self.sup_loss, noisy, clean)
        losses = {"sup": sup}
        if self.teacher is None or not kd:
            losses["kd"] = estimate.new_zeros(())
        else:
            wave = self.teacher_input(noisy, clean)
            teacher_out, teacher_feats = shared.teacher(self, wave) if shared else self.teacher_forward(wave)
            losses["kd"] = self.kd_loss(student_feats, teacher_feats, estimate, teacher_out)
        return estimate, losses

    @torch.no_grad()
    def teacher_forward(self, wave: torch.Tensor):
        """``(output, taps)`` of the frozen teacher; output is None on the encoder-only path."""
        if self.teacher_encoder_only:
            return None, self.teacher.encode(wave)
        return self.teacher(wave, return_features=True)

    def teacher_input(self, noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        return noisy

    def kd_loss(self, student_feats: dict, teacher_feats: dict, student_out: torch.Tensor,
                teacher_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss_weights(self, epoch: int, epochs: int) -> tuple[float, float]:
        """``(w_sup, w_kd)`` for a 0-based epoch; ``epochs`` is the configured count."""
        return 1.0, self.kd_weight

    def schedule_epochs(self, epochs: int) -> int:
        """Epochs actually trained for ``epochs`` configured (a method may add its own phase)."""
        return epochs

    def resets_optimiser_at(self, epoch: int, epochs: int) -> bool:
        """True when the optimiser state must start afresh at this 0-based epoch."""
        return False

    def data_epoch(self, epoch: int, epochs: int) -> tuple[int, int]:
        """``(stream, epoch)`` of the batches a 0-based epoch trains on. Every method's epoch k on
        the shared stream sees the same batches (students of one seed stay paired); an extra phase
        of a method's own draws from a stream of its own (:data:`SHARED_STREAM` is the shared one)."""
        return SHARED_STREAM, epoch

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


_LOADED_FILES: dict[str, list[str]] = {}


def load_method_files(paths, key: str = "students.method_files") -> list[str]:
    """Import KD methods from Python files outside the package (config ``students.method_files``).

    Each file registers its methods with :func:`register` when imported. A file is imported
    once per process; the names each file registered are returned.
    """
    names = []
    for raw in paths:
        path = Path(raw).resolve()
        if str(path) not in _LOADED_FILES:
            _LOADED_FILES[str(path)] = _import_method_file(path, raw, key)
        names += _LOADED_FILES[str(path)]
    return names


def _import_method_file(path: Path, raw: str, key: str) -> list[str]:
    if path.suffix != ".py" or not path.is_file():
        raise KdsdError(f"{key}: {raw}: no such Python file")
    before = set(_REGISTRY)
    module_name = f"kdsd_user_methods_{len(_LOADED_FILES)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except KdsdError:
        raise
    except Exception as exc:  # the user's code: any error, reported in one line
        raise KdsdError(f"{key}: {raw}: import failed ({type(exc).__name__}: {exc})") from None
    added = sorted(set(_REGISTRY) - before)
    if not added:
        raise KdsdError(f"{key}: {raw}: registers no KD method (decorate a DistillationMethod "
                        "subclass with @register)")
    return added
