"""ONNX export of kdsd models, and running the exports with onnxruntime (no PyTorch needed).

What is exported is the network between STFT and iSTFT (``UNetDAE.mask_from_magnitude``):
``magnitude (1, n_fft/2 + 1, T) → mask (1, n_fft/2 + 1, T)``; the STFT and iSTFT are a few
lines of numpy (kdsd.models.numpy_signal). The TorchScript exporter (``dynamo=False``) is
pinned: the graph is plain convolutions, it exports each student in a fraction of a second
where the dynamo exporter takes seconds (the export runs for every student of every run), and
its output does not change with onnxscript's rewrite passes. Causal models also get a streaming
graph (kdsd.models.streaming): one frame and the convolution history in, mask and new history out.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from kdsd.atomic import atomic_path
from kdsd.errors import KdsdError
from kdsd.models.numpy_signal import istft, stft
from kdsd.models.streaming import StreamingMask
from kdsd.models.unet import UNetDAE

OPSET = 17
EXPORTER = "torchscript"  # torch.onnx.export(dynamo=False); see the module docstring
SAMPLE_RATE = 16000


def signal_metadata(model: UNetDAE) -> dict[str, str]:
    """What a runtime needs besides the graph: framing, rate and latency (ONNX metadata_props)."""
    return {"n_fft": str(model.n_fft), "hop": str(model.hop), "sample_rate": str(SAMPLE_RATE),
            "causal": json.dumps(model.causal),
            "algorithmic_latency_ms": f"{model.algorithmic_latency_ms(SAMPLE_RATE):g}",
            "model_args": json.dumps(model.args), "exporter": EXPORTER, "opset": str(OPSET)}


class _MaskNet(torch.nn.Module):
    def __init__(self, model: UNetDAE):
        super().__init__()
        self.model = model

    def forward(self, magnitude):
        return self.model.mask_from_magnitude(magnitude)


def _export(module: torch.nn.Module, example: tuple, path: Path, input_names: list[str],
            output_names: list[str], dynamic_axes: dict, metadata: dict[str, str]) -> Path:
    import onnx

    module.eval()  # a wrapper left in train mode would hand train mode back to the model
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, example, str(tmp), input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
        graph = onnx.load(str(tmp))
        for key, value in metadata.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(tmp))
    return path


def export_onnx(model: UNetDAE, path: str | Path) -> Path:
    """The offline mask network, any number of frames (``T`` is a dynamic axis)."""
    model = model.eval()
    example = (torch.rand(1, model.n_fft // 2 + 1, 16),)
    return _export(_MaskNet(model), example, Path(path), ["magnitude"], ["mask"],
                   {"magnitude": {2: "frames"}, "mask": {2: "frames"}}, signal_metadata(model))


def history_names(count: int) -> tuple[list[str], list[str]]:
    return [f"history_{i}" for i in range(count)], [f"new_history_{i}" for i in range(count)]


def export_streaming_onnx(model: UNetDAE, path: str | Path) -> Path:
    """The one-frame streaming graph of a causal model (all shapes fixed, batch 1)."""
    stream = StreamingMask(model)
    inputs, outputs = history_names(len(stream.convs))
    example = (torch.rand(1, model.n_fft // 2 + 1, 1), *stream.initial_history())
    return _export(stream, example, Path(path), ["magnitude", *inputs], ["mask", *outputs], {},
                   signal_metadata(model))


def streaming_path(onnx_path: str | Path) -> Path:
    """Where the streaming graph of ``…/model.onnx`` goes: ``…/model.stream.onnx``."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.stream.onnx")


def export_all(model: UNetDAE, onnx_path: str | Path) -> list[Path]:
    """``model.onnx``, plus ``model.stream.onnx`` for a causal model."""
    written = [export_onnx(model, onnx_path)]
    if model.causal:
        written.append(export_streaming_onnx(model, streaming_path(onnx_path)))
    return written


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads and no inter-op pool."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise KdsdError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        raise KdsdError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None


def session_metadata(session, path) -> dict:
    props = session.get_modelmeta().custom_metadata_map
    missing = {"n_fft", "hop", "causal"} - set(props)
    if missing:
        raise KdsdError(f"{path}: not a kdsd ONNX export (metadata lacks {', '.join(sorted(missing))})")
    return {"n_fft": int(props["n_fft"]), "hop": int(props["hop"]),
            "causal": json.loads(props["causal"])}


class OnnxDenoiser:
    """``(N,)`` float32 noisy wave → ``(N,)`` estimate with an exported ``model.onnx``:
    numpy STFT, the ONNX mask network under onnxruntime, numpy iSTFT."""

    def __init__(self, path: str | Path, threads: int = 1):
        self.session = onnx_session(path, threads)
        self.signal = session_metadata(self.session, path)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        n_fft, hop, causal = self.signal["n_fft"], self.signal["hop"], self.signal["causal"]
        spec = stft(np.asarray(wave, dtype=np.float32), n_fft, hop, causal)
        magnitude = np.abs(spec).astype(np.float32)[None]
        mask = self.session.run(["mask"], {"magnitude": magnitude})[0][0]
        return istft(spec * mask, n_fft, hop, causal, len(wave))
