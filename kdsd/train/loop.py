"""One training loop for teachers and students: seeded, resumable, checkpoint chosen on `valid`.

The teacher is trained as the ``none`` method with no teacher of its own, so there is exactly
one loop to trust. Each epoch ends with an atomic ``checkpoint.pt`` (weights, optimiser, best
weights so far, history); a rerun in the same folder resumes after the last finished epoch.
"""
from __future__ import annotations

import copy
import math
import platform
import random
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.profiler import record_function
from tqdm import tqdm

from kdsd.atomic import atomic_path
from kdsd.distill.base import SHARED_STREAM, DistillationMethod, supervised_forward
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
    compile: bool = False  # torch.compile each step's student + loss and the teacher forward
    lr_schedule: str = "constant"  # or "cosine": per step from lr down to 0 over each phase
    valid_utterances: int | None = None  # validate on the first n `valid` utterances (None: all)
    sample_rate: int = 16_000


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def valid_batch_size(device: torch.device) -> int:
    """Utterances per validation batch: batched on a GPU; one at a time on a CPU, where batching
    gains nothing and unpadded utterances keep the scores independent of their neighbours."""
    return 16 if device.type == "cuda" else 1


@torch.no_grad()
def validate(model: torch.nn.Module, valid: PairSet, device: torch.device,
             batch_size: int | None = None) -> float:
    """Mean SI-SDR (dB) of the model's estimates on whole `valid` utterances.

    Utterances are sorted by length and batched (``batch_size``, default per device), each batch
    zero-padded to its longest member; every utterance is scored on its own samples only.
    """
    model.eval()
    batch_size = batch_size or valid_batch_size(device)
    noisy_all, clean_all = valid.tensors(pin_memory=device.type == "cuda")
    by_length = sorted(range(len(valid)), key=lambda i: len(noisy_all[i]))
    scores = []
    for first in range(0, len(by_length), batch_size):
        picks = by_length[first:first + batch_size]
        lengths = [len(noisy_all[i]) for i in picks]
        noisy = torch.zeros((len(picks), max(lengths)), pin_memory=device.type == "cuda")
        for row, i in enumerate(picks):
            noisy[row, :lengths[row]] = noisy_all[i]
        estimates = model(noisy.to(device, non_blocking=True)).float().cpu()
        for row, i in enumerate(picks):
            scores.append(si_sdr(estimates[row:row + 1, :lengths[row]], clean_all[i][None]).item())
    return float(np.mean(scores))


def prepare_device(method: DistillationMethod, device: torch.device, compile_models: bool) -> None:
    """Move the method (student, teacher, adapters) to ``device`` and set it up for speed there.

    On CUDA: channels_last weights (the 2-D convolutions then run in NHWC, about twice as fast
    for this UNet family) and cuDNN autotuning (training crops have one fixed shape).
    ``compile_models``: the student's forward with its supervised loss runs as one compiled graph
    (:func:`compiled`), shared by every student of the same architecture in the process, and the
    weights are channels_last on the CPU too (compiled, 15–40 % less CPU per step than eager
    NCHW on this UNet family; eager, channels_last slows the narrow students down).
    """
    method.to(device)
    if device.type == "cuda" or compile_models:
        method.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if compile_models:
        method.supervised = compiled(supervised_forward)


def compiled(function):
    """``function`` under torch.compile, made once per process and shared by every caller.

    Static shapes (``dynamic=False``): each batch shape gets its own graph, whatever order shapes
    arrive in, so a student's kernels never depend on what else its process trained before it
    (grouped training stays bit-identical to training alone). The recompile limit is raised so
    that no architecture of a large group silently falls back to eager code.
    """
    if function not in _COMPILED:
        import torch._dynamo
        import torch._inductor.config

        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        if platform.machine() in ("x86_64", "AMD64"):
            # cpuinfo's flags decide the SIMD level; the build-and-load probe of each level would
            # cost every process several subprocesses that import torch
            torch._inductor.config.cpp.vec_isa_ok = True
        # the STFT's complex tensors stay eager ops inside the graph; inductor says so at every compile
        warnings.filterwarnings("ignore", message="Torchinductor does not support code generation for complex")
        _COMPILED[function] = torch.compile(function, dynamic=False)
    return _COMPILED[function]


_COMPILED: dict = {}


@dataclass
class Member:
    """One student of a side-by-side group: its method (student, teacher, adapters), its output
    folder (checkpoint), the fingerprint of its job's configuration, and its own seed (data
    streams) and settings (learning rate, epochs) where they differ from the group's."""
    method: DistillationMethod
    out_dir: Path
    fingerprint: str = ""
    seed: int | None = None
    settings: TrainSettings | None = None


@dataclass
class _Run:
    """A member's training state in the loop."""
    member: Member
    settings: TrainSettings
    optimiser: torch.optim.Optimizer
    state: dict
    phases: list[range]
    epochs: int
    lead_in: int  # epochs before its first shared-stream epoch (sp2step's step 1)

    def data_key(self, epoch: int) -> tuple[int, int, int]:
        """(seed, stream, stream epoch) of the batches its 0-based ``epoch`` trains on."""
        return (self.member.seed, *self.member.method.data_epoch(epoch, self.settings.epochs))


# Settings every member of a group shares: they define the batches the group steps on together.
SHARED_SETTINGS = ("batch_size", "segment_s", "sample_rate", "valid_utterances", "compile")


def fit(method: DistillationMethod, train: PairSet, valid: PairSet, settings: TrainSettings,
        out_dir: str | Path, seed: int, fingerprint: str = "") -> tuple[dict, list[dict]]:
    """Train ``method.student`` alone; return its best-on-valid state dict and per-epoch history.

    ``fingerprint`` identifies the job's configuration: a checkpoint left by a run with another
    configuration is not resumed (training starts afresh).
    """
    return fit_together([Member(method, Path(out_dir), fingerprint)], train, valid, settings, seed)[0]


def fit_together(members: list[Member], train: PairSet, valid: PairSet, settings: TrainSettings,
                 seed: int) -> list[tuple[dict, list[dict]]]:
    """Train several students side by side; per member, as :func:`fit`. ``settings`` and
    ``seed`` are the group's, for members that bring none of their own.

    Training runs in rounds: in round r every member trains the epoch whose batches are the
    shared stream's epoch r (a method's own lead-in phase, such as sp2step's KD-only step 1,
    runs in the rounds before 0). Members on the same batches share one data pipeline and, per
    batch, one forward of each teacher on each input they ask for (encoder only unless one needs
    the decoder). Each member keeps its own optimiser, learning-rate schedule, epochs,
    checkpoint, resume and selection on ``valid``, so a student trained here is bit-identical
    (CPU) to the same student trained alone: grouping is an execution choice, not part of the
    experiment.
    """
    device = pick_device()
    seed_everything(seed)
    runs = [_start_run(member, settings, seed, device) for member in members]
    shared = {name: {getattr(run.settings, name) for run in runs} for name in SHARED_SETTINGS}
    if any(len(values) > 1 for values in shared.values()):
        differing = [name for name, values in shared.items() if len(values) > 1]
        raise ValueError(f"students trained together must share {', '.join(differing)}")
    valid = valid.first(settings.valid_utterances)
    segment = int(settings.segment_s * settings.sample_rate)
    n_batches = math.ceil(len(train) / settings.batch_size)
    first_round = min((run.state["next_epoch"] - run.lead_in for run in runs), default=0)
    last_round = max((run.epochs - run.lead_in for run in runs), default=0)
    for round_ in range(first_round, last_round):
        active = [run for run in runs if run.state["next_epoch"] <= round_ + run.lead_in < run.epochs]
        if not active:  # every member resumed past this round
            continue
        started = time.time()
        epochs = [round_ + run.lead_in for run in active]
        for run, epoch in zip(active, epochs):
            if run.member.method.resets_optimiser_at(epoch, run.settings.epochs):
                run.optimiser = _new_optimiser(run.member.method, run.settings)  # e.g. sp2step's step 2
        sums = _train_epoch(active, epochs, train, segment, device, n_batches)
        seconds = (time.time() - started) / len(active)  # the round's time, shared equally
        for run, epoch, epoch_sums in zip(active, epochs, sums):
            _end_epoch(run, epoch_sums, valid, device, epoch, seconds)
    return [(run.state["best_state"], run.state["history"]) for run in runs]


def _start_run(member: Member, settings: TrainSettings, seed: int, device) -> _Run:
    """Set a member up: its seed and settings, device, optimiser, resumed state and schedule."""
    member.seed = seed if member.seed is None else member.seed
    own = member.settings or settings
    member.out_dir.mkdir(parents=True, exist_ok=True)
    prepare_device(member.method, device, own.compile)
    optimiser = _new_optimiser(member.method, own)
    state = _resume(member.out_dir / "checkpoint.pt", member.method, optimiser, member.fingerprint)
    method = member.method
    epochs = method.schedule_epochs(own.epochs)
    lead_in = next((e for e in range(epochs) if method.data_epoch(e, own.epochs)[0] == SHARED_STREAM), 0)
    return _Run(member, own, optimiser, state, training_phases(method, own.epochs), epochs, lead_in)


def _end_epoch(run: _Run, sums: dict, valid: PairSet, device, epoch: int, train_seconds: float) -> None:
    """Validate one member after an epoch, keep its best weights, log and checkpoint."""
    started = time.time()
    method, state = run.member.method, run.state
    w_sup, w_kd = method.loss_weights(epoch, run.settings.epochs)
    valid_si_sdr = validate(method.student, valid, device)
    improved = valid_si_sdr > state["best_valid"]
    if improved:
        state["best_valid"] = valid_si_sdr
        state["best_state"] = copy.deepcopy({k: v.cpu() for k, v in method.student.state_dict().items()})
    state["history"].append({
        "epoch": epoch + 1, **sums, "valid_loss": -valid_si_sdr, "valid_si_sdr": valid_si_sdr,
        "w_sup": w_sup, "w_kd": w_kd, "seconds": round(train_seconds + time.time() - started, 2),
        "best": int(improved)})
    print(f"{run.member.out_dir}: epoch {epoch + 1}/{run.epochs}: train {sums['train_loss']:.3f} "
          f"valid SI-SDR {valid_si_sdr:.2f} dB{' (best)' if improved else ''}", file=sys.stderr)
    state["next_epoch"] = epoch + 1
    _save_checkpoint(run.member.out_dir / "checkpoint.pt", method, run.optimiser, state,
                     run.member.fingerprint)


def training_phases(method: DistillationMethod, epochs: int) -> list[range]:
    """The epochs of each optimiser lifetime: a method that resets the optimiser (sp2step at
    its switch to supervised training) starts a new phase, and the LR schedule with it."""
    total = method.schedule_epochs(epochs)
    starts = [0] + [e for e in range(1, total) if method.resets_optimiser_at(e, epochs)]
    return [range(a, b) for a, b in zip(starts, starts[1:] + [total])]


def epoch_learning_rates(settings: TrainSettings, phases: list[range], epoch: int,
                         n_batches: int) -> list[float]:
    """The learning rate of each step of a 0-based epoch.

    ``cosine`` anneals from ``lr`` towards 0 over the steps of the epoch's phase (half a cosine,
    the last step just above 0); it depends on the epoch only, so a resumed run follows it exactly.
    """
    if settings.lr_schedule == "constant":
        return [settings.lr] * n_batches
    phase = next(p for p in phases if epoch in p)
    total = len(phase) * n_batches
    first = (epoch - phase.start) * n_batches
    return [settings.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            for step in range(first, first + n_batches)]


def _new_optimiser(method: DistillationMethod, settings: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.AdamW(method.trainable_parameters(), lr=settings.lr,
                             weight_decay=settings.weight_decay)


def _train_epoch(runs: list[_Run], epochs: list[int], train: PairSet, segment: int, device,
                 n_batches: int) -> list[dict]:
    """One epoch of every run (run i its ``epochs[i]``), runs on the same (seed, stream, epoch)
    stepping on the same batches; the mean losses of each run."""
    for run in runs:
        run.member.method.train()
    weights = [run.member.method.loss_weights(epoch, run.settings.epochs) for run, epoch in zip(runs, epochs)]
    lrs = [epoch_learning_rates(run.settings, run.phases, epoch, n_batches) for run, epoch in zip(runs, epochs)]
    keys = [run.data_key(epoch) for run, epoch in zip(runs, epochs)]
    batch_size = runs[0].settings.batch_size
    taps = compiled(teacher_taps) if runs[0].settings.compile else teacher_taps
    streams = {key: train.batches(batch_size, segment, key[0], key[2], pin_memory=device.type == "cuda",
                                  stream=key[1]) for key in dict.fromkeys(keys)}
    bar = tqdm(zip(*streams.values()), total=n_batches, desc=f"epoch {max(epochs) + 1}", file=sys.stderr,
               leave=False, mininterval=5)
    # Sums stay on the device (float64, the same sums as Python floats) so that no step waits
    # for the GPU; a non-finite loss is caught at the end of the epoch, before any checkpoint.
    totals = [{k: torch.zeros((), dtype=torch.float64, device=device)
               for k in ("train_loss", "train_sup", "train_kd")} for _ in runs]
    for step, batches in enumerate(bar):
        shared = {}
        for key, (noisy, clean) in zip(streams, batches):
            noisy, clean = noisy.to(device, non_blocking=True), clean.to(device, non_blocking=True)
            shared[key] = SharedBatch(noisy, clean, taps)
        for run, key, (w_sup, w_kd), run_lrs, sums in zip(runs, keys, weights, lrs, totals):
            for group in run.optimiser.param_groups:
                group["lr"] = run_lrs[step]
            batch = shared[key]
            losses = train_step(run.member.method, run.optimiser, batch.noisy, batch.clean, w_sup, w_kd,
                                run.settings.grad_clip, device, batch)
            for name, value in losses.items():
                sums[name] += value.double()
    means = []
    for run, epoch, sums in zip(runs, epochs, totals):
        mean = {k: v.item() / n_batches for k, v in sums.items()}
        if not math.isfinite(mean["train_loss"]):
            raise FloatingPointError(f"{run.member.out_dir}: non-finite training loss in epoch "
                                     f"{epoch + 1}: {mean}")
        means.append(mean)
    return means


def teacher_taps(teacher: torch.nn.Module, wave: torch.Tensor, full: bool):
    """``(output, taps)`` of a frozen teacher: the whole network, or the encoder only (output None)."""
    return teacher(wave, return_features=True) if full else (None, teacher.encode(wave))


class SharedBatch:
    """What the students stepping on one batch compute once: the teacher's taps. They do not
    depend on a student's weights, so each member gets exactly what it would compute alone.
    (The input's STFT could be shared too, but it is 2 % of a step, and a compiled student given
    it as an input ran slower: `kdsd bench --profile`.)

    Taps are keyed by teacher, input (noisy or clean) and path: the whole teacher for
    members that read its decoder taps or output, the encoder only for the others (a compiled
    encoder and a compiled whole network need not round alike). A method with its own
    ``teacher_forward`` runs it itself. ``taps``: :func:`teacher_taps`, or its compiled copy.
    """

    def __init__(self, noisy: torch.Tensor, clean: torch.Tensor, taps=teacher_taps):
        self.noisy, self.clean, self.taps = noisy, clean, taps
        self.cache: dict[tuple, tuple] = {}

    def teacher(self, method: DistillationMethod, wave: torch.Tensor):
        if type(method).teacher_forward is not DistillationMethod.teacher_forward:
            return method.teacher_forward(wave)
        full = not method.teacher_encoder_only
        return self._once(("teacher", id(method.teacher), id(wave), full),
                          lambda: self.taps(method.teacher, wave, full))

    def _once(self, key: tuple, compute):
        if key not in self.cache:
            with torch.no_grad(), record_function(STAGES[key[0]]):
                self.cache[key] = compute()
        return self.cache[key]


# Profiler ranges of a training step (`kdsd bench --profile` sums them).
STAGES = {"teacher": "kdsd: teacher forward", "step": "kdsd: student forward + losses",
          "backward": "kdsd: backward", "optimiser": "kdsd: optimiser"}


def train_step(method, optimiser, noisy, clean, w_sup, w_kd, grad_clip, device,
               shared: SharedBatch | None = None) -> dict:
    """One optimiser step on a batch; returns the detached losses (``train_loss/_sup/_kd``).

    ``shared`` holds what the other students of a group compute on the same batch.
    bf16 autocast on CUDA (the methods compute their similarity terms in float32); float32 on CPU.
    """
    noisy, clean = noisy.to(device, non_blocking=True), clean.to(device, non_blocking=True)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"), \
            record_function(STAGES["step"]):
        _, losses = method(noisy, clean, kd=w_kd != 0, shared=shared)
        loss = w_sup * losses["sup"].float() + w_kd * losses["kd"].float()
    optimiser.zero_grad(set_to_none=True)
    with record_function(STAGES["backward"]):
        loss.backward()
    with record_function(STAGES["optimiser"]):
        torch.nn.utils.clip_grad_norm_(method.trainable_parameters(), grad_clip)
        optimiser.step()
    return {"train_loss": loss.detach(), "train_sup": losses["sup"].detach(),
            "train_kd": losses["kd"].detach()}


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
