"""Denoise waveforms with a trained model: in memory (scoring), files and folders (`kdsd enhance`).

Long inputs go through the network in chunks, so memory does not grow with the recording.
Each chunk is read with ``context_samples(model)`` extra samples on both sides: every input
sample that can change an output sample in the chunk's kept centre (the model's receptive field
in time), so the kept centres, laid end to end, equal the whole-file output up to float
rounding. Chunks start on the STFT hop grid so their frames are the whole file's frames.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf
import torch
from torch import nn
from tqdm import tqdm

from kdsd import SAMPLE_RATE
from kdsd.atomic import atomic_path
from kdsd.audio import (READ_ERRORS, audio_info, check_finite, resample, resample_with_note,
                        to_mono, unreadable)
from kdsd.errors import KdsdError

CHUNK_S = 10.0          # seconds of output per network pass: ~150 MB of activations for the teacher
PROGRESS_MIN_S = 60.0   # files at least this long show a progress bar
MONO_HINT = "pass --channel N to pick one or --mix to average them"
# libsndfile formats that carry their own header (RAW needs the user to describe it)
AUDIO_SUFFIXES = tuple(sorted({f".{f.lower()}" for f in sf.available_formats() if f != "RAW"}
                              | {".oga", ".aif", ".snd"}))
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE", "VORBIS", "OPUS")


def time_radius_frames(model: nn.Module) -> int:
    """STFT frames either side of a frame that can change its mask.

    The UNet's convolutions lie in series along its deepest path (skip connections only
    shorten paths), so the radius is the sum of their half-widths in time:
    ``2 * depth + 1`` for both block types (3-wide kernels, 1-wide up-samplers and head).
    """
    return sum((m.kernel_size[1] - 1) // 2 * m.dilation[1] for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def context_samples(model: nn.Module) -> int:
    """Input samples either side of an output sample that can change it, on the hop grid.

    An output sample is the overlap-add of the frames covering it (``n_fft/2`` either side);
    each frame's mask reads ``time_radius_frames`` frames either side, and each of those frames
    reads ``n_fft/2`` samples either side of its centre.
    """
    return model.n_fft + time_radius_frames(model) * model.hop


def min_samples(model: nn.Module) -> int:
    """The shortest input the model's STFT can take (its reflect padding needs n_fft/2 + 1)."""
    return model.n_fft


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def native_transposed_convolutions(model: nn.Module):
    """Run the model's ``ConvTranspose2d`` layers with PyTorch's own kernel instead of oneDNN's.

    oneDNN builds a new primitive for every new input shape, about 15 ms per transposed
    convolution on one thread, and a test set's utterances all differ in length: one thread
    enhanced a 2-3 s utterance in 61 ms with a width-1/8 student (7.6 ms with the native kernel),
    72 ms (20) at width 1/2, 101 ms (41) with the teacher. The native kernel is no slower on
    repeated shapes; the other layers keep oneDNN. The estimates were equal sample for sample
    (the UNet's up-samplers have kernel = stride: no overlapping sums; tests/test_enhance.py).
    """
    layers = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    if not layers or not torch.backends.mkldnn.is_available():
        yield
        return
    enabled = torch.backends.mkldnn.enabled
    hooks = [h for layer in layers for h in (
        layer.register_forward_pre_hook(lambda *_: setattr(torch.backends.mkldnn, "enabled", False)),
        layer.register_forward_hook(lambda *_: setattr(torch.backends.mkldnn, "enabled", enabled)))]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
        torch.backends.mkldnn.enabled = enabled


class OnnxModel:
    """An exported offline graph (``model.onnx``) in a model's place for files and folders: the
    numpy STFT, the mask network under onnxruntime, the numpy iSTFT
    (:class:`kdsd.models.export.OnnxDenoiser`), chunked like the PyTorch model."""

    def __init__(self, path: str | Path, threads: int = 1):
        import json

        from kdsd.models.export import OnnxDenoiser
        from kdsd.models.io import build_model

        self.denoiser = OnnxDenoiser(path, threads)
        if [i.name for i in self.denoiser.session.get_inputs()] != ["magnitude"]:
            raise KdsdError(f"{path}: a streaming graph (history inputs); run it with --stream, or "
                            "give the offline graph, model.onnx")
        self.n_fft, self.hop = self.denoiser.signal["n_fft"], self.denoiser.signal["hop"]
        args = json.loads(self.denoiser.session.get_modelmeta().custom_metadata_map["model_args"])
        # an untrained twin of the exported network: its layers give the receptive field in time
        self.context = context_samples(build_model("UNetDAE", args))


def _block_runner(model) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """A function from input samples to their estimate, and the context it needs either side."""
    if isinstance(model, OnnxModel):
        return model.denoiser, model.context
    model.eval()
    device = model_device(model)

    def run(block: np.ndarray) -> np.ndarray:
        noisy = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))[None].to(device)
        with native_transposed_convolutions(model):
            return model(noisy)[0].float().cpu().numpy()
    return run, context_samples(model)


@torch.no_grad()
def enhance_blocks(model: nn.Module | OnnxModel, read: Callable[[int, int], np.ndarray], length: int,
                   chunk: int) -> Iterator[np.ndarray]:
    """Consecutive pieces of the estimate of a ``length``-sample input; ``read(a, b)`` returns
    input samples ``a..b-1``. Pieces are at most ``chunk`` samples (rounded to the hop)."""
    run, context = _block_runner(model)
    hop = model.hop
    chunk = max(hop, int(chunk) // hop * hop)
    if length <= chunk + 2 * context:
        yield run(read(0, length))
        return
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        first, last = max(0, start - context), min(length, stop + context)
        yield run(read(first, last))[start - first: stop - first]


def enhance_wave(model: nn.Module, wave: np.ndarray, chunk_s: float = CHUNK_S) -> np.ndarray:
    """``(N,)`` float32 noisy samples → ``(N,)`` estimate (same length), on the model's device."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"enhance_wave expects (samples,), got shape {wave.shape}")
    if len(wave) < min_samples(model):
        raise KdsdError(f"input: {len(wave)} samples is too short to enhance "
                        f"(at least {min_samples(model)})")
    pieces = enhance_blocks(model, lambda a, b: wave[a:b], len(wave), int(chunk_s * SAMPLE_RATE))
    return np.concatenate(list(pieces))


# ------------------------------------------------------------------------ files and folders

@dataclass(frozen=True)
class EnhanceOptions:
    """What `kdsd enhance` does with each file."""
    channel: int | None = None   # 1-based channel to enhance from a multi-channel file
    mix: bool = False            # average all channels instead
    keep_rate: bool = False      # write at the input's sample rate instead of 16 kHz
    chunk_s: float = CHUNK_S


class _Source:
    """A file's mono 16 kHz samples, read on demand: streamed from disk at 16 kHz, held in
    memory (after resampling) at any other rate."""

    def __init__(self, path: Path, options: EnhanceOptions):
        self.path, self.options = path, options
        info = audio_info(path)
        self.rate = info.samplerate
        if info.channels > 1 and options.channel is None and not options.mix:
            raise KdsdError(f"{path}: has {info.channels} channels; kdsd expects mono audio "
                            f"({MONO_HINT})")
        if self.rate == SAMPLE_RATE:
            self.memory = None
            self.length = info.frames
        else:
            whole = self._read(0, None)  # to the end: compressed formats may not know their length
            self.memory = resample_with_note(whole, path, self.rate, SAMPLE_RATE)
            self.length = len(self.memory)

    def _read(self, first: int, last: int | None) -> np.ndarray:
        try:
            with sf.SoundFile(str(self.path)) as f:
                f.seek(first)
                block = f.read(-1 if last is None else last - first, dtype="float32",
                               always_2d=True)
        except READ_ERRORS as exc:
            raise unreadable(self.path, exc) from None
        if last is not None and len(block) != last - first:
            raise KdsdError(f"{self.path}: ends after {first + len(block)} samples although its "
                            f"header says {last} (truncated file?)")
        mono = to_mono(block, self.path, self.options.channel, self.options.mix, MONO_HINT)
        return check_finite(mono, self.path)

    def __call__(self, first: int, last: int) -> np.ndarray:
        return self.memory[first:last] if self.memory is not None else self._read(first, last)


def output_format(path: Path) -> tuple[str, str]:
    """(libsndfile format, subtype) for an output path: from its suffix; WAV as 32-bit float."""
    fmt = {".oga": "OGG", ".aif": "AIFF", ".snd": "AU"}.get(path.suffix.lower(),
                                                             path.suffix[1:].upper())
    if fmt not in sf.available_formats() or fmt == "RAW":
        raise KdsdError(f"{path}: unknown output audio format {path.suffix!r}; use a suffix "
                        "libsndfile writes: .wav, .flac, .ogg, .aiff, ...")
    return fmt, "FLOAT" if fmt in ("WAV", "WAVEX", "RF64", "W64") else sf.default_subtype(fmt)


def enhance_file(model: nn.Module, in_path: str | Path, out_path: str | Path,
                 options: EnhanceOptions = EnhanceOptions()) -> Path:
    """Enhance one audio file into ``out_path`` (written atomically, format from its suffix)."""
    in_path, out_path = Path(in_path), Path(out_path)
    fmt, subtype = output_format(out_path)
    source = _Source(in_path, options)
    if source.length < min_samples(model):
        raise KdsdError(f"{in_path}: {source.length} samples is too short to enhance (at least "
                        f"{min_samples(model)} samples = {min_samples(model) / SAMPLE_RATE * 1000:.0f} "
                        f"ms at 16 kHz)")
    rate = source.rate if options.keep_rate else SAMPLE_RATE
    pieces = enhance_blocks(model, source, source.length, int(options.chunk_s * SAMPLE_RATE))
    if rate != SAMPLE_RATE:  # the input is in memory already; so is its estimate
        pieces = iter([resample(np.concatenate(list(pieces)), SAMPLE_RATE, rate)])
    clip = subtype not in FLOAT_SUBTYPES  # integer formats wrap around past full scale
    with _new_folders_removed_on_error(out_path.parent), atomic_path(out_path) as tmp, \
            _progress(in_path, source.length) as bar:
        with sf.SoundFile(str(tmp), "w", samplerate=rate, channels=1, format=fmt,
                          subtype=subtype) as out:
            for piece in pieces:
                out.write(np.clip(piece, -1.0, 1.0) if clip else piece)
                bar.update(len(piece) * SAMPLE_RATE // rate)
    return out_path


@contextlib.contextmanager
def _new_folders_removed_on_error(folder: Path):
    """Folders created for an output that then fails are removed again (if still empty)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        for p in missing:  # deepest first
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


def _progress(path: Path, length: int):
    return tqdm(total=length, desc=str(path.name), unit="sample", unit_scale=True, file=sys.stderr,
                leave=False, disable=length < PROGRESS_MIN_S * SAMPLE_RATE, mininterval=2)


def plan_outputs(in_path: str | Path, out_path: str | Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one file, or every audio file under a folder (recursively),
    keeping relative paths under the output folder. Refuses writing over an input."""
    wants_folder = str(out_path).endswith(("/", os.sep))
    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.is_dir():
        if out_path.is_dir() or wants_folder:
            out_path = out_path / in_path.name
        pairs = [(in_path, out_path)]
    else:
        if out_path.exists() and not out_path.is_dir():
            raise KdsdError(f"{out_path}: exists and is a file; the input is a folder, so the "
                            "output must be a folder")
        if _same_file(in_path, out_path):
            raise KdsdError(f"{out_path}: is the input folder; choose another output folder")
        inputs = [p for p in sorted(in_path.rglob("*")) if _is_audio_name(p)
                  and not _inside(p, out_path)]  # an output folder inside the input is skipped
        if not inputs:
            raise KdsdError(f"{in_path}: no audio files in this folder (any format libsndfile "
                            "reads: .wav, .flac, .ogg, .aiff, ...)")
        pairs = [(p, out_path / p.relative_to(in_path)) for p in inputs]
    for src, dst in pairs:
        if _same_file(src, dst):
            raise KdsdError(f"{dst}: is the input file; choose another output path")
    return pairs


def enhance_paths(model: nn.Module, in_path: str | Path, out_path: str | Path,
                  options: EnhanceOptions = EnhanceOptions()) -> list[Path]:
    """Enhance a file or a folder. A file that fails is reported by name and the others still
    finish; a :class:`KdsdError` at the end names the failures."""
    pairs = plan_outputs(in_path, out_path)
    if len(pairs) == 1 and not Path(in_path).is_dir():
        return [enhance_file(model, *pairs[0], options)]
    written, failed = [], []
    for src, dst in pairs:
        try:
            written.append(enhance_file(model, src, dst, options))
            print(f"kdsd: wrote {dst}", file=sys.stderr)
        except KdsdError as exc:
            print(f"kdsd: error: {exc}", file=sys.stderr)
            failed.append(src)
    if failed:
        raise KdsdError(f"{in_path}: {len(failed)} of {len(pairs)} files failed "
                        f"({', '.join(str(p.relative_to(in_path)) for p in failed)}); "
                        f"the other {len(written)} were written")
    return written


def _is_audio_name(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".") and path.is_file()


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve() or (b.exists() and a.exists() and a.samefile(b))


# ---------------------------------------------------------------------- streaming, hop by hop

FrameMask = Callable[[np.ndarray], np.ndarray]  # (n_fft/2 + 1,) magnitude → (n_fft/2 + 1,) mask
# Floor of the squared-window sum: only the discarded pre-roll (window 0 at its first sample)
# gets near it; every kept sample has a sum above 1e-9.
TINY = 1e-30


class HopStream:
    """One hop of samples in, one hop of the estimate out, ``n_fft - hop`` samples late.

    It keeps the last ``n_fft`` input samples (zeros before the start), masks their windowed
    spectrum with ``frame_mask`` (which carries the model's own state) and overlap-adds the
    result; the oldest hop is then final (no later frame covers it) and is divided by the
    squared-window sum it received, exactly as the offline causal iSTFT does.
    """

    def __init__(self, frame_mask: FrameMask, n_fft: int, hop: int):
        from kdsd.models.numpy_signal import hann

        self.frame_mask, self.n_fft, self.hop = frame_mask, n_fft, hop
        self.window = hann(n_fft)
        self.recent = np.zeros(n_fft, dtype=np.float32)   # input samples of the current frame
        self.summed = np.zeros(n_fft, dtype=np.float64)   # overlap-added output, oldest first
        self.weight = np.zeros(n_fft, dtype=np.float64)   # overlap-added squared window

    def push(self, samples: np.ndarray) -> np.ndarray:
        hop = self.hop
        self.recent = np.concatenate([self.recent[hop:], samples])
        spec = np.fft.rfft(self.recent * self.window)
        mask = self.frame_mask(np.abs(spec).astype(np.float32))
        self.summed += np.fft.irfft(spec * mask, self.n_fft) * self.window
        self.weight += self.window.astype(np.float64) ** 2
        done = (self.summed[:hop] / np.maximum(self.weight[:hop], TINY)).astype(np.float32)
        self.summed = np.concatenate([self.summed[hop:], np.zeros(hop)])
        self.weight = np.concatenate([self.weight[hop:], np.zeros(hop)])
        return done

    def flush(self) -> np.ndarray:
        """The ``n_fft - hop`` samples still overlapping (end of input: no more frames)."""
        tail = slice(0, self.n_fft - self.hop)
        return (self.summed[tail] / np.maximum(self.weight[tail], TINY)).astype(np.float32)


@dataclass(frozen=True)
class StreamResult:
    estimate: np.ndarray       # (N,) float32, equal to the offline causal estimate
    hop_seconds: np.ndarray    # compute time of each hop (FFT, network, inverse FFT, overlap-add)
    hop_duration_s: float      # audio per hop
    hop_cpu_seconds: np.ndarray  # the same hops' thread CPU time (preemption excluded)

    def hop_ms(self) -> dict[str, float]:
        """Median and p99 per hop in ms, wall clock (what a live caller waits) and thread CPU:
        keys ``median``, ``p99``, ``median_cpu``, ``p99_cpu``."""
        return {f"{name}{suffix}": 1000 * float(np.percentile(times, q))
                for suffix, times in (("", self.hop_seconds), ("_cpu", self.hop_cpu_seconds))
                for name, q in (("median", 50), ("p99", 99))}

    def timing_line(self) -> str:
        ms, hop_ms = self.hop_ms(), self.hop_duration_s * 1000
        return (f"per-hop compute: median {ms['median']:.3f} ms, p99 {ms['p99']:.3f} ms wall (CPU: median "
                f"{ms['median_cpu']:.3f} ms, p99 {ms['p99_cpu']:.3f} ms) for a {hop_ms:g} ms hop "
                f"({100 * ms['p99'] / hop_ms:.1f} % of the hop at p99; {len(self.hop_seconds)} hops)")


def stream_wave(frame_mask: FrameMask, wave: np.ndarray, n_fft: int, hop: int) -> StreamResult:
    """Process ``(N,)`` samples hop by hop as a live input would arrive (the last hop padded
    with zeros), timing each hop; the estimate is realigned to the input (delay removed)."""
    import time

    wave = np.asarray(wave, dtype=np.float32)
    frames = 1 + len(wave) // hop
    padded = np.pad(wave, (0, frames * hop - len(wave)))
    stream, pieces = HopStream(frame_mask, n_fft, hop), []
    seconds, cpu_seconds = np.empty(frames), np.empty(frames)
    for t in range(frames):
        start, cpu_start = time.perf_counter(), time.thread_time()
        pieces.append(stream.push(padded[t * hop:(t + 1) * hop]))
        seconds[t], cpu_seconds[t] = time.perf_counter() - start, time.thread_time() - cpu_start
    pieces.append(stream.flush())
    delay = n_fft - hop
    estimate = np.concatenate(pieces)[delay:delay + len(wave)]
    return StreamResult(estimate, seconds, hop / SAMPLE_RATE, cpu_seconds)


def torch_frame_mask(model: nn.Module) -> FrameMask:
    """A causal model's streaming form as a frame function (its history kept in the closure)."""
    from kdsd.models.streaming import StreamingMask

    stream = StreamingMask(model)
    bins = model.n_fft // 2 + 1
    with torch.no_grad():  # warm-up (lazy allocations) on a throwaway state, outside the timing
        stream(torch.zeros(1, bins, 1), *stream.initial_history())
    history = stream.initial_history()

    @torch.no_grad()
    def frame_mask(magnitude: np.ndarray) -> np.ndarray:
        nonlocal history
        mask, *history = stream(torch.from_numpy(magnitude)[None, :, None], *history)
        return mask[0, :, 0].numpy()
    return frame_mask


def onnx_frame_mask(path: str | Path, threads: int = 1) -> tuple[FrameMask, dict]:
    """The streaming ONNX graph (``model.stream.onnx``) as a frame function, and its framing."""
    from kdsd.models.export import onnx_session, session_metadata

    session = onnx_session(path, threads)
    signal = session_metadata(session, path)
    inputs = session.get_inputs()
    if [i.name for i in inputs[:1]] != ["magnitude"] or inputs[0].shape[2] != 1 or len(inputs) < 2:
        raise KdsdError(f"{path}: not a kdsd streaming ONNX graph (expects one magnitude frame and "
                        "history tensors; export a causal model: its model.stream.onnx)")
    history = {i.name: np.zeros(i.shape, dtype=np.float32) for i in inputs[1:]}
    names = ["mask"] + [f"new_{name}" for name in history]
    silence = np.zeros(inputs[0].shape, dtype=np.float32)
    session.run(names, {"magnitude": silence, **history})  # warm-up, its new state discarded

    def frame_mask(magnitude: np.ndarray) -> np.ndarray:
        mask, *new = session.run(names, {"magnitude": magnitude[None, :, None], **history})
        history.update(zip(history, new))
        return mask[0, :, 0]
    return frame_mask, signal


def stream_file(in_path: str | Path, out_path: str | Path, *, model: nn.Module | None = None,
                onnx_path: str | Path | None = None, options: EnhanceOptions = EnhanceOptions(),
                threads: int = 1) -> StreamResult:
    """`kdsd enhance --stream`: one file through a causal model's streaming form (PyTorch, or
    its streaming ONNX graph under onnxruntime), written as 16 kHz (or ``keep_rate``)."""
    in_path, out_path = Path(in_path), Path(out_path)
    if onnx_path is not None:
        frame_mask, signal = onnx_frame_mask(onnx_path, threads)
        n_fft, hop = signal["n_fft"], signal["hop"]
    else:
        frame_mask, n_fft, hop = torch_frame_mask(model), model.n_fft, model.hop
    source = _Source(in_path, options)
    result = stream_wave(frame_mask, source(0, source.length), n_fft, hop)
    estimate = result.estimate
    rate = source.rate if options.keep_rate else SAMPLE_RATE
    if rate != SAMPLE_RATE:
        estimate = resample(estimate, SAMPLE_RATE, rate)
    fmt, subtype = output_format(out_path)
    with _new_folders_removed_on_error(out_path.parent), atomic_path(out_path) as tmp:
        sf.write(str(tmp), estimate if subtype in FLOAT_SUBTYPES else np.clip(estimate, -1, 1),
                 rate, format=fmt, subtype=subtype)
    return result
