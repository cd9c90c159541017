"""`kdsd bench`: the real training loop against its ceiling, for the teacher and the smallest student.

For each model of a preset it measures, on this machine's device, in audio seconds per wall second:
- ``loop``: the training loop's own step (:func:`kdsd.train.loop.train_step` fed by
  :meth:`PairSet.batches`): cropping, host-to-device copies, the KD teacher forward, the
  optimiser; the student runs with a KD method (``cosine`` by default);
- ``ceiling``: the bare model's forward + backward on random tensors of the same shape already
  on the device, with the same precision and memory format (no data, no teacher, no optimiser);
- their ratio, inference throughput (same batch shape, no grad) and the one-thread real-time
  factor on the CPU (:func:`kdsd.metrics.cost.real_time_factor`);
- side by side: the students of one seed (every method × scenario of the preset) stepped on one
  batch each with its own teacher forward (``alone``) and with one shared forward
  (``together``, as :func:`kdsd.train.loop.fit_together` does), in audio seconds per wall second
  summed over the students, and their ratio. Per-job start-up, corpus loading and validation,
  which a group also pays once instead of k times, come on top.
Figures, not assertions: speed targets belong here, not in timed tests.
"""
from __future__ import annotations

import contextlib
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from snakemake.utils import update_config, validate
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from kdsd.distill import get_method
from kdsd.errors import KdsdError
from kdsd.metrics.cost import real_time_factor
from kdsd.models.unet import UNetDAE, count_parameters
from kdsd.train.data import PairSet
from kdsd.train.jobs import build_method, run_scenarios, run_students, student_args
from kdsd.train.loop import (STAGES, SharedBatch, pick_device, prepare_device,
                             seed_everything, train_step)
from kdsd.losses import SupervisedLoss

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SAMPLE_RATE = 16_000


def preset_config(preset: str) -> dict:
    """config.yaml with a preset merged over it (name in workflow/presets/ or a YAML path),
    every unset key filled from the schema, as the workflow resolves it."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if preset != "default":
        path = Path(preset) if preset.endswith((".yaml", ".yml")) else REPO / "workflow" / "presets" / f"{preset}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in (REPO / "workflow" / "presets").glob("*.yaml"))
            raise KdsdError(f"{path}: no such preset; valid: default, {', '.join(names)} or a YAML path")
        update_config(config, yaml.safe_load(path.read_text()) or {})
    validate(config, str(SCHEMA), set_default=True)
    return config


def smallest_student(config: dict) -> tuple[str, dict]:
    """(scenario name, constructor args) of the scenario with the fewest student parameters."""
    teacher = UNetDAE(**config["teacher"]["model"])
    scenarios = config["students"]["scenarios"]
    sizes = {name: student_args(teacher.args, scenarios[name]) for name in run_scenarios(config["students"])}
    name = min(sizes, key=lambda n: count_parameters(UNetDAE(**sizes[n])))
    return name, sizes[name]


def bench(preset: str = "default", method: str = "cosine", steps: int = 3, profile: bool = False) -> list[dict]:
    """Measure teacher and smallest student of ``preset``, each scenario's efficiency against the
    machine's single-core peak and one seed's group side by side; print tables; return the rows.
    ``profile``: also where one seed's group step spends its time, by stage and operator family."""
    config = preset_config(preset)
    device = pick_device()
    loss = SupervisedLoss(**config["loss"])
    seed_everything(0)
    teacher = UNetDAE(**config["teacher"]["model"])
    scenario, args = smallest_student(config)
    rows = [_measure("teacher", get_method("none")(teacher, None, loss), config["teacher"]["train"],
                     device, steps)]
    student, _ = build_method(config, teacher, method, scenario)
    rows.append(_measure(f"student {scenario} ({method})", student, config["students"]["train"],
                         device, steps))
    _print_table(rows, preset, device)
    side = side_by_side(config, teacher, device, steps)
    _print_side_by_side(side)
    efficiency = scenario_efficiency(config, teacher, device, steps)
    _print_efficiency(efficiency)
    if profile:
        print_profile(*group_profile(config, teacher, device, steps))
    return rows + [side] + efficiency


def _seed_group(config: dict, teacher, device: torch.device) -> list:
    """One seed's students: every method × run scenario, set up as the training job does."""
    train_cfg = config["students"]["train"]
    methods = []
    for scenario, name, _ in run_students({**config["students"], "seeds": [0]}):
        seed_everything(0)
        method, _ = build_method(config, teacher, name, scenario)
        prepare_device(method, device, train_cfg.get("compile", False))
        methods.append(method)
    return methods


def side_by_side(config: dict, teacher, device: torch.device, steps: int) -> dict:
    """One seed's students (every method × run scenario) stepped alone and together."""
    train_cfg = config["students"]["train"]
    batch, segment = train_cfg["batch_size"], int(train_cfg["segment_s"] * SAMPLE_RATE)
    methods = _seed_group(config, teacher, device)
    seconds = _seconds_per_step({"alone": _group_steps(methods, train_cfg, batch, segment, device, False),
                                 "together": _group_steps(methods, train_cfg, batch, segment, device, True)},
                                steps, device)
    audio_s = len(methods) * batch * segment / SAMPLE_RATE
    row = {"model": "side by side", "students": len(methods),
           **{name: audio_s / s for name, s in seconds.items()}}
    row["ratio"] = row["together"] / row["alone"]
    return row


def _group_steps(methods, train_cfg, batch, segment, device, shared: bool):
    """One step of every student on the same batch (KD on), with one teacher forward per batch
    shared by all (``shared``) or one per student."""
    rng = np.random.default_rng(0)
    clean = [0.1 * rng.standard_normal(segment * 3 // 2).astype(np.float32) for _ in range(batch * 64)]
    noisy = [c + 0.1 * rng.standard_normal(len(c)).astype(np.float32) for c in clean]
    batches = PairSet.from_arrays(noisy, clean).batches(batch, segment, seed=0, epoch=0,
                                                        pin_memory=device.type == "cuda")
    optimisers = [torch.optim.AdamW(m.trainable_parameters(), lr=train_cfg["lr"]) for m in methods]

    def step():
        noisy_batch, clean_batch = next(batches)
        noisy_batch, clean_batch = noisy_batch.to(device), clean_batch.to(device)
        in_common = SharedBatch(noisy_batch, clean_batch) if shared else None
        for method, optimiser in zip(methods, optimisers):
            method.train()
            train_step(method, optimiser, noisy_batch, clean_batch, 1.0, 1.0, train_cfg["grad_clip"],
                       device, in_common)
    return step


def peak_macs_per_second(size: int = 1024, repeats: int = 5) -> float:
    """This machine's single-core fp32 peak, measured on the spot: multiply-adds per CPU second
    of a ``size``² GEMM on one thread (the best of ``repeats``)."""
    with _threads(1):
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b  # warm-up: the BLAS picks its kernel
        seconds = []
        for _ in range(repeats):
            started = time.thread_time()
            a @ b
            seconds.append(time.thread_time() - started)
    return size ** 3 / min(seconds)


def step_macs(method, batch: int, segment: int) -> float:
    """Multiply-adds of one supervised training step of a student (forward and backward,
    PyTorch's FLOP counter: convolutions and matrix products; the STFT is not counted)."""
    noisy, clean = torch.randn(batch, segment) * 0.1, torch.randn(batch, segment) * 0.1
    method.train()
    with FlopCounterMode(display=False) as counter:
        _, losses = method(noisy, clean, kd=False)
        losses["sup"].backward()
    method.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def scenario_efficiency(config: dict, teacher, device: torch.device, steps: int) -> list[dict]:
    """Per scenario: a `none` student's training step on one CPU thread (as the training jobs run
    it, compiled where `students.train.compile` says so), its multiply-adds per CPU second and
    their share of :func:`peak_macs_per_second`."""
    train_cfg = config["students"]["train"]
    batch, segment = train_cfg["batch_size"], int(train_cfg["segment_s"] * SAMPLE_RATE)
    peak = peak_macs_per_second()
    rows = []
    with _threads(1):
        for scenario in run_scenarios(config["students"]):
            seed_everything(0)
            method, _ = build_method(config, teacher, "none", scenario)
            macs = step_macs(method, batch, segment)
            prepare_device(method, torch.device("cpu"), train_cfg.get("compile", False))
            step = _loop_steps(method, train_cfg, batch, segment, torch.device("cpu"))
            seconds = _cpu_seconds_per_step(step, steps)
            rows.append({"model": f"student {scenario}", "params": count_parameters(method.student),
                         "macs_per_step": macs, "cpu_ms_per_step": 1000 * seconds,
                         "macs_per_s": macs / seconds, "peak_macs_per_s": peak,
                         "share_of_peak": macs / seconds / peak})
    return rows


def _cpu_seconds_per_step(step, repeats: int) -> float:
    """Median CPU time of the calling thread per ``step()`` (after two warm-ups): robust to what
    else runs on the machine, unlike wall time."""
    times = []
    for _ in range(2 + repeats):
        started = time.thread_time()
        step()
        times.append(time.thread_time() - started)
    return statistics.median(times[2:])


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _print_efficiency(rows: list[dict]) -> None:
    print(f"\nefficiency: one training step of each scenario's student on one thread, against this "
          f"machine's single-core fp32 peak measured by a GEMM ({rows[0]['peak_macs_per_s'] / 1e9:.1f} "
          "GMAC/s)" if rows else "")
    print("| model | params | MMAC per step | CPU ms per step | GMAC/s | share of peak |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {r['macs_per_step'] / 1e6:,.0f} | {r['cpu_ms_per_step']:.0f} "
              f"| {r['macs_per_s'] / 1e9:.2f} | {100 * r['share_of_peak']:.1f} % |")


# Operator families of a training step, by the first pattern an operator name matches.
OP_FAMILIES = (("convolution, backward", r"convolution_backward|conv2d_backward|conv.*backward"),
               ("convolution, forward", r"convolution|conv2d|mkldnn"),
               ("compiled fused kernels", r"CompiledFxGraph|Torch-Compiled"),
               ("STFT / iSTFT", r"fft|stft|unfold|fold|col2im|index_add|abs|angle|complex|view_as_real"),
               ("batch norm, PReLU (eager)", r"batch_norm|prelu"),
               ("optimiser arithmetic", r"_foreach|addcdiv|lerp|sqrt"),
               ("copies", r"copy_|contiguous|clone|to_copy"))


def group_profile(config: dict, teacher, device: torch.device, steps: int) -> tuple[dict, dict, float]:
    """One seed's group (every scenario × method, KD on) stepping side by side on one batch at
    a time on one thread, under torch.profiler: CPU seconds per step by stage (:data:`STAGES`)
    and by operator family (:data:`OP_FAMILIES`), and the step's total CPU seconds."""
    methods = _seed_group(config, teacher, device)
    train_cfg = config["students"]["train"]
    batch, segment = train_cfg["batch_size"], int(train_cfg["segment_s"] * SAMPLE_RATE)
    step = _group_steps(methods, train_cfg, batch, segment, device, True)
    with _threads(1):  # as the training jobs run
        for _ in range(2):
            step()
        started = time.thread_time()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
        total = (time.thread_time() - started) / steps
    events = prof.key_averages()
    stage_total = {name: e.cpu_time_total / 1e6 / steps for e in events for key, name in STAGES.items()
                   if e.key == name}
    if STAGES["step"] in stage_total:  # the teacher runs inside the first asking member's forward
        stage_total[STAGES["step"]] -= stage_total.get(STAGES["teacher"], 0.0)
    families = dict.fromkeys([name for name, _ in OP_FAMILIES] + ["other operators"], 0.0)
    for e in events:
        if e.key.startswith("kdsd: "):
            continue
        family = next((name for name, pattern in OP_FAMILIES if re.search(pattern, e.key)), "other operators")
        families[family] += e.self_cpu_time_total / 1e6 / steps
    return stage_total, families, total


def print_profile(stages: dict, families: dict, total: float) -> None:
    print(f"\nwhere one seed's group step goes (CPU seconds per step of every student; "
          f"{total:.2f} s in all, profiler overhead included)")
    print("| stage | CPU s per step | share |")
    print("|---|---:|---:|")
    rest = total - sum(stages.values())
    for name, seconds in [*stages.items(), ("data, Python and the rest", rest)]:
        print(f"| {name.removeprefix('kdsd: ')} | {seconds:.3f} | {100 * seconds / total:.0f} % |")
    print("| operator family | CPU s per step | share |")
    print("|---|---:|---:|")
    for name, seconds in sorted(families.items(), key=lambda item: -item[1]):
        print(f"| {name} | {seconds:.3f} | {100 * seconds / total:.0f} % |")


def _print_side_by_side(row: dict) -> None:
    print(f"\nside by side: {row['students']} students of one seed, one step each on the same batch "
          "(audio seconds per wall second, summed over the students)")
    print("| alone (own teacher forward) | together (one shared forward) | together / alone |")
    print("|---:|---:|---:|")
    print(f"| {row['alone']:.1f} | {row['together']:.1f} | {row['ratio']:.2f} |")


def _measure(label: str, method, train_cfg: dict, device: torch.device, steps: int) -> dict:
    batch, segment = train_cfg["batch_size"], int(train_cfg["segment_s"] * SAMPLE_RATE)
    audio_s = batch * segment / SAMPLE_RATE
    prepare_device(method, device, train_cfg.get("compile", False))
    model = method.student
    row = {"model": label, "params": count_parameters(model), "batch": batch,
           "crop_s": train_cfg["segment_s"]}
    seconds = _seconds_per_step({"loop": _loop_steps(method, train_cfg, batch, segment, device),
                                 "ceiling": _bare_steps(model, batch, segment, device),
                                 "inference": _inference_steps(model, batch, segment, device)},
                                steps, device)
    row.update({name: audio_s / s for name, s in seconds.items()})
    row["ratio"] = row["loop"] / row["ceiling"]
    row["s_per_10h"] = 36_000 / row["loop"]
    cpu_model = UNetDAE(**model.args)
    cpu_model.load_state_dict({k: v.float().cpu() for k, v in model.state_dict().items()})
    row["rtf_1thread"] = real_time_factor(cpu_model, seconds=4.0, repeats=3, threads=1)
    return row


def _seconds_per_step(steps_by_name: dict, repeats: int, device: torch.device) -> dict:
    """Median wall time per call of each ``step()``, after two warm-up rounds (allocator, kernel
    choice). The steps take turns, so that a shared machine's load weighs on all alike."""
    times = {name: [] for name in steps_by_name}
    for _ in range(2 + repeats):
        for name, step in steps_by_name.items():
            started = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t[2:]) for name, t in times.items()}


def _loop_steps(method, train_cfg, batch, segment, device):
    """The real loop: batches cropped from an in-memory corpus (1.5 crops long), one step each."""
    rng = np.random.default_rng(0)
    clean = [0.1 * rng.standard_normal(segment * 3 // 2).astype(np.float32) for _ in range(batch * 64)]
    noisy = [c + 0.1 * rng.standard_normal(len(c)).astype(np.float32) for c in clean]
    batches = PairSet.from_arrays(noisy, clean).batches(batch, segment, seed=0, epoch=0,
                                                        pin_memory=device.type == "cuda")
    optimiser = torch.optim.AdamW(method.trainable_parameters(), lr=train_cfg["lr"])

    def step():
        method.train()
        noisy_batch, clean_batch = next(batches)
        train_step(method, optimiser, noisy_batch, clean_batch, 1.0, 1.0, train_cfg["grad_clip"], device)
    return step


def _bare_steps(model, batch, segment, device):
    noisy = torch.randn(batch, segment, device=device) * 0.1

    def step():
        model.train()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            estimate = model(noisy)
        estimate.float().pow(2).mean().backward()
        model.zero_grad(set_to_none=True)
    return step


def _inference_steps(model, batch, segment, device):
    noisy = torch.randn(batch, segment, device=device) * 0.1

    @torch.no_grad()
    def step():
        model.eval()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            model(noisy)
    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _print_table(rows: list[dict], preset: str, device: torch.device) -> None:
    if device.type == "cuda":
        where = f"{torch.cuda.get_device_name(device)}, bf16 autocast + channels_last"
    else:
        where = f"CPU, {torch.get_num_threads()} threads, float32"
    print(f"kdsd bench: preset {preset}, {where}; throughput in audio seconds per wall second")
    print("| model | params | batch × crop | loop | ceiling | loop/ceiling | inference | s per 10 h epoch "
          "| RTF (1 CPU thread) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {r['batch']} × {r['crop_s']:g} s | {r['loop']:.1f} "
              f"| {r['ceiling']:.1f} | {r['ratio']:.2f} | {r['inference']:.1f} | {r['s_per_10h']:,.0f} "
              f"| {r['rtf_1thread']:.4f} |")
