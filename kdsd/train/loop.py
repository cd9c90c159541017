"""One training loop for teachers and students: seeded, resumable, checkpoint chosen on `valid`.

The teacher is trained as the ``none`` method with no teacher of its own, so there is exactly
one loop to trust. Each epoch ends with an atomic ``checkpoint.pt`` (weights, optimiser, best
weights so far, history); a rerun in the same folder resumes after the last finished epoch.
"""
from __future__ import annotations

import copy
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kdsd.atomic import atomic_path
from kdsd.distill.base import DistillationMethod
from kdsd.train.data import PairSet
from kdsd.losses import si_sdr


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int
    segment_s: float
    lr: float
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    sample_rate: int = 16_000


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def validate(model: torch.nn.Module, valid: PairSet, device: torch.device) -> float:
    """Mean SI-SDR (dB) of the model's estimates on whole `valid` utterances."""
    model.eval()
    scores = []
    for noisy, clean in zip(valid.noisy, valid.clean):
        estimate = model(torch.from_numpy(noisy)[None].to(device))
        scores.append(si_sdr(estimate.float().cpu(), torch.from_numpy(clean)[None]).item())
    return float(np.mean(scores))


def fit(method: DistillationMethod, train: PairSet, valid: PairSet, settings: TrainSettings,
        out_dir: str | Path, seed: int, fingerprint: str = "") -> tuple[dict, list[dict]]:
    """Train ``method.student``; return its best-on-valid state dict and the per-epoch history.

    ``fingerprint`` identifies the job's configuration: a checkpoint left by a run with another
    configuration is not resumed (training starts afresh).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device()
    seed_everything(seed)
    method.to(device)
    if device.type == "cuda":
        method.to(memory_format=torch.channels_last)
    optimiser = _new_optimiser(method, settings)
    state = _resume(out_dir / "checkpoint.pt", method, optimiser, fingerprint)
    segment = int(settings.segment_s * settings.sample_rate)

    for epoch in range(state["next_epoch"], method.schedule_epochs(settings.epochs)):
        started = time.time()
        if method.resets_optimiser_at(epoch, settings.epochs):
            optimiser = _new_optimiser(method, settings)  # e.g. a switch to another objective
        w_sup, w_kd = method.loss_weights(epoch, settings.epochs)
        sums = _train_epoch(method, optimiser, train, settings, segment, seed, epoch, w_sup, w_kd, device)
        valid_si_sdr = validate(method.student, valid, device)
        improved = valid_si_sdr > state["best_valid"]
        if improved:
            state["best_valid"] = valid_si_sdr
            state["best_state"] = copy.deepcopy({k: v.cpu() for k, v in method.student.state_dict().items()})
        state["history"].append({
            "epoch": epoch + 1, **sums, "valid_loss": -valid_si_sdr, "valid_si_sdr": valid_si_sdr,
            "w_sup": w_sup, "w_kd": w_kd, "seconds": round(time.time() - started, 2),
            "best": int(improved)})
        print(f"epoch {epoch + 1}/{method.schedule_epochs(settings.epochs)}: train {sums['train_loss']:.3f} "
              f"valid SI-SDR {valid_si_sdr:.2f} dB{' (best)' if improved else ''}", file=sys.stderr)
        state["next_epoch"] = epoch + 1
        _save_checkpoint(out_dir / "checkpoint.pt", method, optimiser, state, fingerprint)
    return state["best_state"], state["history"]


def _new_optimiser(method: DistillationMethod, settings: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.AdamW(method.trainable_parameters(), lr=settings.lr,
                             weight_decay=settings.weight_decay)


def _train_epoch(method, optimiser, train, settings, segment, seed, epoch, w_sup, w_kd, device):
    method.train()
    totals = {"train_loss": 0.0, "train_sup": 0.0, "train_kd": 0.0}
    n_batches = math.ceil(len(train) / settings.batch_size)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    bar = tqdm(train.batches(settings.batch_size, segment, seed, epoch), total=n_batches,
               desc=f"epoch {epoch + 1}", file=sys.stderr, leave=False, mininterval=5)
    for noisy, clean in bar:
        noisy, clean = noisy.to(device), clean.to(device)
        with autocast:
            _, losses = method(noisy, clean, kd=w_kd != 0)
        loss = w_sup * losses["sup"].float() + w_kd * losses["kd"].float()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at epoch {epoch + 1}: {losses}")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(method.trainable_parameters(), settings.grad_clip)
        optimiser.step()
        totals["train_loss"] += loss.item()
        totals["train_sup"] += losses["sup"].item()
        totals["train_kd"] += losses["kd"].item()
    return {k: v / n_batches for k, v in totals.items()}


def _resume(path: Path, method, optimiser, fingerprint: str) -> dict:
    fresh = {"next_epoch": 0, "best_valid": -math.inf, "best_state": None, "history": []}
    if not path.is_file():
        return fresh
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("fingerprint", "") != fingerprint:
        print(f"note: {path} was written with another configuration; starting afresh", file=sys.stderr)
        return fresh
    method.load_state_dict(ckpt["method_state"], strict=False)
    optimiser.load_state_dict(ckpt["optimiser"])
    print(f"resuming from {path} after epoch {ckpt['next_epoch']}", file=sys.stderr)
    return {k: ckpt[k] for k in fresh}


def _save_checkpoint(path: Path, method, optimiser, state: dict, fingerprint: str) -> None:
    with atomic_path(path) as tmp:
        torch.save({"method_state": method.trainable_state(), "optimiser": optimiser.state_dict(),
                    "fingerprint": fingerprint, **state}, tmp)
