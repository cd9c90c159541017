"""Names in ``students.methods``: registered KD methods and named variants from the ``kd`` section.

``kd.<name>`` holds the options of the registered method ``<name>``. An entry with a ``method``
key is a *variant*: that registered method with the base's options overridden by the entry's::

    kd:
      cosine: {kd_weight: 10.0}
      cosine_mse: {method: cosine, distance: mse}     # kd_weight 10.0, distance mse

A variant is a config entry, never a new code path; its students are stored, scored and
tabulated under the variant's name, with the base method recorded beside it.

An entry's ``train`` block changes how its students are trained, not the method: ``lr`` (the
learning rate, e.g. a sweep's candidates for ``none``) and ``epochs_of`` (train for as many
epochs as the named method's schedule takes, e.g. the budget control
``none_budget: {method: none, train: {epochs_of: sp2step}}``).
"""
from __future__ import annotations

import difflib

from kdsd.distill.base import method_names
from kdsd.errors import KdsdError


def variant_names(kd_cfg: dict) -> list[str]:
    return sorted(name for name, entry in kd_cfg.items() if (entry or {}).get("method"))


def base_method(kd_cfg: dict, name: str) -> str:
    """The registered method behind ``name`` (itself, unless ``name`` is a variant)."""
    entry = kd_cfg.get(name) or {}
    return entry.get("method") or name


TRAIN_OPTIONS = ("lr", "epochs_of")


def resolve(kd_cfg: dict, name: str) -> tuple[str, dict]:
    """``(registered method name, its options)`` for a method or variant name (the ``train``
    block left out: :func:`train_options`)."""
    base, options = _resolve_entry(kd_cfg, name)
    options.pop("train", None)
    return base, options


def train_options(kd_cfg: dict, name: str) -> dict:
    """A method's or variant's ``train`` block (the variant's over its base's)."""
    train = {k: v for k, v in (_resolve_entry(kd_cfg, name)[1].get("train") or {}).items() if v is not None}
    unknown = sorted(set(train) - set(TRAIN_OPTIONS))
    if unknown:
        raise KdsdError(f"kd.{name}.train: unknown option {unknown[0]!r}; valid: {', '.join(TRAIN_OPTIONS)}")
    target = train.get("epochs_of")
    if target is not None and (target == name or target not in kd_cfg and target not in method_names()):
        raise KdsdError(f"kd.{name}.train.epochs_of: {target!r} is not another method or variant")
    return train


def related_methods(kd_cfg: dict, name: str) -> set[str]:
    """The methods a method's students depend on: itself, its base and, through
    ``train.epochs_of``, the method whose schedule it copies (and that one's)."""
    names, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in names:
            continue
        names |= {current, base_method(kd_cfg, current)}
        target = train_options(kd_cfg, current).get("epochs_of")
        todo += [target] if target else []
    return names


def _resolve_entry(kd_cfg: dict, name: str) -> tuple[str, dict]:
    entry = dict(kd_cfg.get(name) or {})
    base = entry.pop("method", None)
    if base is None:
        if name not in method_names():
            _unknown(kd_cfg, name)
        return name, entry
    if name in method_names():
        raise KdsdError(f"kd.{name}: a variant cannot take the name of the registered method {name!r}")
    if base not in method_names():
        raise KdsdError(f"kd.{name}.method: {base!r} is not a registered KD method; "
                        f"valid: {', '.join(method_names())}")
    base_entry = kd_cfg.get(base) or {}
    train = {**(base_entry.get("train") or {}), **(entry.get("train") or {})}  # a variant keeps its base's lr
    return base, {**base_entry, **entry, **({"train": train} if train else {})}


def _unknown(kd_cfg: dict, name: str):
    valid = method_names() + variant_names(kd_cfg)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise KdsdError(f"students.methods: unknown KD method or variant {name!r}{hint}; "
                    f"valid: {', '.join(valid)}")
