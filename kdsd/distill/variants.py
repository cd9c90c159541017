"""Names in ``students.methods``: registered KD methods and named variants from the ``kd`` section.

``kd.<name>`` holds the options of the registered method ``<name>``. An entry with a ``method``
key is a *variant*: that registered method with the base's options overridden by the entry's::

    kd:
      cosine: {kd_weight: 10.0}
      cosine_mse: {method: cosine, distance: mse}     # kd_weight 10.0, distance mse

A variant is a config entry, never a new code path; its students are stored, scored and
tabulated under the variant's name, with the base method recorded beside it.
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


def resolve(kd_cfg: dict, name: str) -> tuple[str, dict]:
    """``(registered method name, its options)`` for a method or variant name."""
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
    return base, {**(kd_cfg.get(base) or {}), **entry}


def _unknown(kd_cfg: dict, name: str):
    valid = method_names() + variant_names(kd_cfg)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise KdsdError(f"students.methods: unknown KD method or variant {name!r}{hint}; "
                    f"valid: {', '.join(valid)}")
