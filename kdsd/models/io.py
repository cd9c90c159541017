"""Saving and loading models as name + constructor args + state dict + provenance.

Loaded with ``torch.load(weights_only=True)``: a model file never executes code.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from kdsd.atomic import atomic_path
from kdsd.errors import KdsdError
from kdsd.models.unet import UNetDAE
from kdsd.provenance import versions

MODEL_CLASSES: dict[str, type[nn.Module]] = {"UNetDAE": UNetDAE}


def build_model(name: str, args: dict) -> nn.Module:
    if name not in MODEL_CLASSES:
        raise KdsdError(f"model: unknown model class {name!r}; valid: {', '.join(MODEL_CLASSES)}")
    try:
        return MODEL_CLASSES[name](**args)
    except TypeError as exc:
        raise KdsdError(f"model: arguments {args} do not fit {name} ({exc})") from None


def save_model(path: str | Path, model: nn.Module, *, config: dict, seed: int,
               history: list[dict], extra: dict | None = None) -> Path:
    """Write the deployable model (adapters excluded) with everything needed to rebuild it."""
    payload = {
        "name": type(model).__name__,
        "args": dict(model.args),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "versions": versions(),
        "config": config,
        "seed": int(seed),
        "history": history,
        **(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_payload(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise KdsdError(f"{path}: is a folder, not a model file")
    if not path.is_file():
        raise KdsdError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise KdsdError(f"{path}: not a kdsd model file ({type(exc).__name__})") from None
    missing = {"name", "args", "state_dict"} - set(payload if isinstance(payload, dict) else ())
    if missing:
        raise KdsdError(f"{path}: not a kdsd model file (missing {', '.join(sorted(missing))})")
    return payload


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """The model in eval mode and its full payload."""
    payload = load_payload(path)
    try:
        model = build_model(payload["name"], payload["args"])
        model.load_state_dict(payload["state_dict"])
    except KdsdError as exc:
        raise KdsdError(f"{path}: {str(exc).removeprefix('model: ')}") from None
    except RuntimeError as exc:  # weights of another architecture
        raise KdsdError(f"{path}: its weights do not fit {payload['name']}({payload['args']}) "
                        f"({str(exc).splitlines()[0]})") from None
    return model.eval(), payload
