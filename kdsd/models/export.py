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

import copy
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


class _MaxPReLU(torch.nn.Module):
    """PReLU as ``max(x, a·x)``: the same values while every slope ``a`` is at most 1."""

    def __init__(self, prelu: torch.nn.PReLU):
        super().__init__()
        self.register_buffer("slope", prelu.weight.detach().clone()[:, None, None])

    def forward(self, x):
        return torch.maximum(x, x * self.slope)


def _upsampler_with_head(up: torch.nn.ConvTranspose2d, head: torch.nn.Conv2d) -> torch.nn.ConvTranspose2d:
    """The last upsampler followed by the 1×1 mask head, as one transposed convolution (both
    are linear, so their weights compose)."""
    head_weight = head.weight.detach()[:, :, 0, 0]  # (1, C)
    fused = torch.nn.ConvTranspose2d(up.in_channels, 1, up.kernel_size, stride=up.stride)
    with torch.no_grad():
        fused.weight.copy_(torch.einsum("icks,oc->ioks", up.weight, head_weight))
        fused.bias.copy_(head_weight @ up.bias + head.bias)
    return fused


def deploy_form(model: UNetDAE) -> UNetDAE:
    """A copy of ``model`` that computes the same mask with operators onnxruntime runs faster
    (measured per node with onnxruntime's profiler on the width-1/8 student, one thread):
    - PReLU (slopes ≤ 1) as ``max(x, a·x)``: onnxruntime's PRelu kernel branches per element and
      costs up to 10x more on convolution outputs of mixed sign;
    - the last upsampler and the 1×1 mask head as one transposed convolution: the network's
      widest tensor (``width × n_fft/2 × T``) is never written.
    """
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.PReLU) and bool((child.weight <= 1).all()):
                setattr(module, name, _MaxPReLU(child))
    model.upsamplers[-1] = _upsampler_with_head(model.upsamplers[-1], model.mask_head)
    model.mask_head = torch.nn.Identity()
    return model


class _MaskNet(torch.nn.Module):
    """``mask_from_magnitude`` of :func:`deploy_form`, its compression ``x**c`` written as
    ``exp(c·log x)`` (onnxruntime's Pow is a scalar loop; its Log and Exp are vectorised)."""

    def __init__(self, model: UNetDAE):
        super().__init__()
        self.model = deploy_form(model)

    def forward(self, magnitude):
        floored = self.model.floored_magnitude(magnitude)
        return self.model.mask_from_features(torch.exp(torch.log(floored) * self.model.compress))[0]


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


# onnxruntime's NCHWc layout (part of its highest optimisation level) pads every convolution's
# output channels to the SIMD block (16 floats with AVX-512, 8 with AVX2) and converts back to
# NCHW after each convolution. On the offline graph, students narrower than this lose more than
# they gain (trained students, one thread, AVX-512, 20 s: without it width 2 takes 28 % less CPU,
# width 4 6 % more, width 8 17 % more); on the one-frame streaming graph it is faster (widths 2
# and 4: 22-33 % less CPU per hop).
NCHWC_MIN_WIDTH = 4


def disabled_optimizers(path: str | Path) -> list[str]:
    """onnxruntime graph optimisers to leave out for the ONNX file at ``path``: the NCHWc layout
    for a kdsd offline graph (a ``frames`` axis of any length) narrower than ``NCHWC_MIN_WIDTH``."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception:  # not an ONNX file: onnxruntime says so (onnx_session)
        return []
    width = json.loads({p.key: p.value for p in graph.metadata_props}.get("model_args", "{}")).get("width")
    dims = graph.graph.input[0].type.tensor_type.shape.dim if graph.graph.input else []
    offline = len(dims) == 3 and dims[2].dim_param == "frames"
    return ["NchwcTransformer"] if offline and width is not None and width < NCHWC_MIN_WIDTH else []


def onnx_session(path: str | Path, threads: int = 1, profile_prefix: str | None = None):
    """An onnxruntime CPU session with ``threads`` intra-op threads, no inter-op pool, and the
    NCHWc layout only where it pays (:func:`disabled_optimizers`). With ``profile_prefix``,
    onnxruntime records each node's time to a JSON file there (``session.end_profiling()``)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise KdsdError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=disabled_optimizers(path))
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
    numpy STFT, the ONNX mask network under onnxruntime, numpy iSTFT (the three stages are
    methods so that `kdsd bench-deploy` can time each)."""

    def __init__(self, path: str | Path, threads: int = 1):
        self.session = onnx_session(path, threads)
        self.signal = session_metadata(self.session, path)

    def spectrum(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The complex STFT ``(bins, frames)`` and the graph's input ``(1, bins, frames)``."""
        spec = stft(np.asarray(wave, dtype=np.float32), self.signal["n_fft"], self.signal["hop"],
                    self.signal["causal"])
        return spec, np.abs(spec).astype(np.float32)[None]

    def mask(self, magnitude: np.ndarray) -> np.ndarray:
        return self.session.run(["mask"], {"magnitude": magnitude})[0][0]

    def synthesis(self, spec: np.ndarray, mask: np.ndarray, length: int) -> np.ndarray:
        """The iSTFT of the masked spectrum."""
        # spec is a (bins, frames) view of a frame-major array: multiplying in that memory order
        # takes 40 % less time than mixing the two layouts
        masked = np.multiply(spec.T, mask.T).T
        return istft(masked, self.signal["n_fft"], self.signal["hop"], self.signal["causal"], length)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        spec, magnitude = self.spectrum(wave)
        return self.synthesis(spec, self.mask(magnitude), len(wave))
