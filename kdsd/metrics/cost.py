"""Inference cost of denoisers: parameters, multiply-accumulates per second, real-time factor
(PyTorch and onnxruntime, one thread each) and algorithmic latency.

Latency (``latency_ms``) is how long the first input sample of a frame waits before the output
sample it belongs to can exist, ignoring compute time: the model's look-ahead past a sample plus
the framing. For kdsd models it is :meth:`UNetDAE.algorithmic_latency_ms` (causal: one window;
non-causal: a window plus the frames its convolutions read ahead). For frame-based references it
is their measured output delay plus one frame of input buffering; see ``REFERENCE_LATENCY``.

MACs come from PyTorch's own FLOP counter (``torch.utils.flop_counter.FlopCounterMode``),
halved, so numbers are reproducible without a third-party profiler. What that counter sees
is limited; see :func:`count_macs`.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator, Union

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kdsd.models.unet import count_parameters

SAMPLE_RATE = 16000
# Long enough that STFT framing edge effects (one extra frame) are negligible per second.
MACS_SECONDS = 10.0
RTF_SEED = 0

Denoiser = Union[nn.Module, Callable[[np.ndarray], np.ndarray]]


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode + no grad for the block, restoring the caller's train/eval flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


@contextmanager
def _num_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _count_macs_on(model: nn.Module, example_input: torch.Tensor) -> int:
    """MACs of ``model(example_input)`` in eval mode, as counted by ``FlopCounterMode``."""
    with _eval_mode(model), FlopCounterMode(display=False) as counter:
        model(example_input)
    # The counter reports 2 FLOPs per multiply-accumulate for every op it knows.
    return counter.get_total_flops() // 2


def count_macs(model: nn.Module, seconds: float = 1.0, sample_rate: int = SAMPLE_RATE) -> int:
    """Multiply-accumulates of one forward pass on a ``(1, seconds*sample_rate)`` waveform.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2), eval mode,
    no grad. The counter only has formulas for matmul-like aten ops (convolution, including
    transposed and grouped/depthwise; mm/addmm/bmm; attention). For ``UNetDAE`` everything
    it reports is ``aten.convolution``; it does NOT count: the STFT/iSTFT (``_fft_r2c``,
    ``_fft_c2r``, windowing, overlap-add), the magnitude/compression (``abs``, ``pow``),
    batch norm (not folded in eval), PReLU, sigmoid, residual adds, mask multiply,
    concatenation/padding, and convolution or linear biases.
    """
    # Values do not affect the count; zeros keep the call deterministic and cheap.
    example = torch.zeros(1, int(round(seconds * sample_rate)))
    return _count_macs_on(model, example)


def macs_per_second(model: nn.Module, sample_rate: int = SAMPLE_RATE) -> float:
    """MACs per second of audio, measured on 10 s so per-utterance edge frames don't dominate."""
    return count_macs(model, MACS_SECONDS, sample_rate) / MACS_SECONDS


def fixed_noise(seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    rng = np.random.default_rng(RTF_SEED)
    return (0.1 * rng.standard_normal(int(round(seconds * sample_rate)))).astype(np.float32)


def _runner(model_or_fn: Denoiser, wave: np.ndarray) -> Callable[[], object]:
    """Zero-argument call that denoises ``wave`` once; modules get a ``(1, N)`` tensor."""
    if isinstance(model_or_fn, nn.Module):
        tensor = torch.from_numpy(wave)[None]
        return lambda: model_or_fn(tensor)
    return lambda: model_or_fn(wave)


def real_time_factor(model_or_fn: Denoiser, seconds: float = 10.0, repeats: int = 5,
                     threads: int = 1, sample_rate: int = SAMPLE_RATE) -> float:
    """Median wall time / audio duration of denoising fixed seeded noise, after one warm-up.

    Accepts an ``nn.Module`` (called in eval mode, no grad, on ``(1, N)``) or a callable
    ``np.ndarray -> np.ndarray`` (called on a 1-D float32 array). Torch's thread count is set
    to ``threads`` for the measurement and restored afterwards.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 (got {repeats})")
    run = _runner(model_or_fn, fixed_noise(seconds, sample_rate))
    guard = _eval_mode(model_or_fn) if isinstance(model_or_fn, nn.Module) else nullcontext()
    with _num_threads(threads), guard:
        wall, _ = median_seconds(run, repeats)
    return wall / seconds


def median_seconds(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of ``run()`` over ``repeats`` calls, after one warm-up
    (the first call pays for allocator growth and kernel selection)."""
    run()
    wall, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return statistics.median(wall), statistics.median(cpu)


def model_cost(model: nn.Module, *, repeats: int = 5, threads: int = 1,
               onnx_path=None) -> dict:
    """Deployment cost: parameters of ``model`` (no adapters), MACs per second, 1-thread RTF in
    PyTorch and (given its export ``onnx_path``) in onnxruntime, algorithmic latency in ms."""
    return {**architecture_cost(model), **timing(model, onnx_path, repeats=repeats, threads=threads)}


def architecture_cost(model: nn.Module) -> dict:
    """What follows from the architecture alone (no timing): parameters, MACs, latency."""
    return {"params": count_parameters(model), "macs_per_s": macs_per_second(model),
            "latency_ms": model.algorithmic_latency_ms(SAMPLE_RATE),
            "causal": bool(getattr(model, "causal", False))}


def timing(model: nn.Module, onnx_path=None, *, repeats: int = 5, threads: int = 1) -> dict:
    """1-thread real-time factors in PyTorch and, given its export, in onnxruntime."""
    from kdsd.models.export import OnnxDenoiser

    onnx_rtf = (real_time_factor(OnnxDenoiser(onnx_path, threads=threads), repeats=repeats)
                if onnx_path is not None else float("nan"))
    return {"rtf_1thread": real_time_factor(model, repeats=repeats, threads=threads),
            "rtf_onnx_1thread": onnx_rtf}


def cost_record(payload: dict, model_name: str, cost: dict) -> dict:
    """A cost JSON record: the model's identity and training budget from its ``model.pt``
    payload, and ``cost``."""
    return {"model": model_name, "kind": payload.get("role", "unknown"),
            "method": payload.get("method", "unknown"), "scenario": payload.get("scenario", "unknown"),
            "seed": payload.get("seed", -1), **cost,
            "adapter_params": payload.get("adapter_params", 0),
            "base_method": payload.get("base_method", payload.get("method", "unknown")),
            # the epoch chosen on `valid` (0: not recorded by an older model file)
            "selected_epoch": payload.get("selected_epoch", 0),
            "epochs_trained": len(payload.get("history", [])),
            **payload.get("budget", {})}


def write_model_cost(model_path, model_name: str, out_json, onnx_out=None) -> None:
    """The DAG's cost job: identity + :func:`model_cost` of a saved kdsd model, as JSON.

    The model is exported to ONNX first (``onnx_out``, plus ``model.stream.onnx`` beside it for
    a causal model; a temporary folder when None), so the onnxruntime RTF is that of the file
    users deploy.
    """
    import tempfile
    from pathlib import Path

    from kdsd.models.export import export_all
    from kdsd.models.io import load_model

    model, payload = load_model(model_path)
    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = Path(onnx_out) if onnx_out is not None else Path(scratch) / "model.onnx"
        export_all(model, onnx_path)
        cost = model_cost(model, onnx_path=onnx_path)
    _write_json(out_json, cost_record(payload, model_name, cost))


def export_student(model: nn.Module, payload: dict, model_name: str, onnx_out, cost_json) -> None:
    """A trained student's deployable files and untimed cost record, written by its training
    job: ``model.onnx`` (plus ``model.stream.onnx`` when causal) and its cost JSON, whose RTF
    columns come from its scenario's timing (:func:`write_scenario_timing`; the students of a
    scenario share one architecture)."""
    from kdsd.models.export import export_all

    export_all(model, onnx_out)
    cost = {**architecture_cost(model), "rtf_1thread": float("nan"), "rtf_onnx_1thread": float("nan")}
    _write_json(cost_json, cost_record(payload, model_name, cost))


def write_scenario_timing(model_path, onnx_path, scenario: str, out_json) -> None:
    """One-thread RTFs (PyTorch, onnxruntime) of a scenario's architecture, timed on one of its
    students: every student of the scenario takes them (kdsd.analysis.pipeline.load_costs)."""
    from kdsd.models.io import load_model

    model, _ = load_model(model_path)
    _write_json(out_json, {"kind": "scenario_timing", "scenario": scenario, "timed_model": str(model_path),
                           **timing(model, onnx_path)})


def _write_json(path, record: dict) -> None:
    import json

    from kdsd.atomic import write_text

    write_text(path, json.dumps(record, indent=2) + "\n")


# Algorithmic latency of the references (ms) and where it comes from. Frame-based ones: the
# output delay measured in kdsd.references (cross-correlation, tests/test_references.py) plus
# one frame that has to be buffered before it is processed.
REFERENCE_LATENCY: dict[str, tuple[float, str]] = {
    "rnnoise": (30.0, "20 ms measured output delay (10 ms window overlap + 10 ms look-ahead of "
                "the v0.2 gains) + one 10 ms frame; Valin 2018: 10 ms frames, 20 ms windows"),
    "deepfilternet3": (40.0, "30 ms measured output delay (10 ms overlap + 2-frame look-ahead) "
                       "+ one 10 ms frame; the DeepFilterNet2/3 papers state 40 ms"),
    "spectral_gating": (float("nan"), "offline: noisereduce estimates its noise statistics over "
                        "the whole input (chunks of 600,000 samples), so no streaming latency"),
}


def write_reference_cost(name: str, out_json) -> None:
    """Cost record of an external reference denoiser: its own parameter count, 1-thread RTF and
    latency (MACs are not countable: no PyTorch graph); ``available``/``reason`` say if it can
    run here."""
    import json

    from kdsd.atomic import write_text
    from kdsd.references import availability, denoise, describe

    ok, reason = availability(name)
    info = describe(name)
    rtf = real_time_factor(lambda wave: denoise(name, wave)) if ok else float("nan")
    record = {"model": f"references/{name}", "kind": "reference", "method": name,
              "scenario": "reference", "seed": 0, "params": info["params"], "macs_per_s": float("nan"),
              "rtf_1thread": rtf, "rtf_onnx_1thread": float("nan"),
              "latency_ms": REFERENCE_LATENCY[name][0], "latency_source": REFERENCE_LATENCY[name][1],
              "causal": not np.isnan(REFERENCE_LATENCY[name][0]),
              "adapter_params": 0, "available": ok, "reason": reason,
              "package": info["package"], "version": info["version"]}
    write_text(out_json, json.dumps(record, indent=2) + "\n")
