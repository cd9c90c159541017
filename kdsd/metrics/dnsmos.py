"""DNSMOS P.835 (Reddy et al., ICASSP 2022): non-intrusive SIG / BAK / OVRL MOS estimates,
and the P.808 overall MOS (``model_v8.onnx``, shipped beside it) that DNS-Challenge tables report.

Runs Microsoft's ``sig_bak_ovr.onnx`` as shipped inside the ``speechmos`` wheel (0.0.1.1) on
the CPU with onnxruntime; nothing is downloaded. The inference is re-implemented here rather
than calling ``speechmos.dnsmos.run`` because that module imports librosa (undeclared, heavy)
and always runs the P.808 model too. The steps mirror ``speechmos.dnsmos.DNSMOS.__call__``
(the same scheme as the DNS-Challenge ``dnsmos_local.py``) so that scores match the reference:

* a clip shorter than the 9.01 s model window is looped by doubling (``x = x ++ x``) until it
  is at least that long, so a 4 s clip becomes 16 s and is scored on 7 windows;
* windows of 9.01 s start every 1 s; the reference's float end index ``int((i + 9.01) * sr)``
  makes some windows one sample short (i = 7..23, 119..122, ...) and those are skipped, as there;
* each window's raw (SIG, BAK, OVRL) is mapped through the non-personalised calibration
  polynomial, and the calibrated values are averaged over windows;
* P.808 scores the same windows less their last 160 samples as a 120-band log-mel spectrogram
  (librosa, n_fft 321, hop 160, ``(power_to_db(ref=max) + 40) / 40``), uncalibrated, averaged.
"""
from __future__ import annotations

import hashlib
import os
from importlib import resources

import numpy as np
import onnxruntime as ort

from kdsd.audio import resample
from kdsd.errors import KdsdError
from kdsd.metrics.intrusive import is_silent

DNSMOS_COLUMNS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
P808_COLUMN = "dnsmos_p808"
SAMPLE_RATE = 16_000
WINDOW_SECONDS = 9.01  # kept as the reference's float: its rounding decides which windows exist
WINDOW = int(WINDOW_SECONDS * SAMPLE_RATE)  # 144160 samples, the model's fixed input length
HOP = SAMPLE_RATE
MODEL_PACKAGE = "speechmos"
# Scores must not move silently: a different model file is an error, not a new baseline.
MODELS = {"p835": ("dnsmos_models/sig_bak_ovr.onnx",
                   "269fbebdb513aa23cddfbb593542ecc540284a91849ac50516870e1ac78f6edd"),
          "p808": ("dnsmos_models/model_v8.onnx",
                   "9246480c58567bc6affd4200938e77eef49468c8bc7ed3776d109c07456f6e91")}
# Non-personalised calibration (speechmos get_polyfit_val), highest power first; model output
# order is (SIG, BAK, OVRL).
CALIBRATION = (
    (-0.08397278, 1.22083953, 0.0052439),
    (-0.13166888, 1.60915514, -0.39604546),
    (-0.06766283, 1.11546468, 0.04602535),
)

_session: tuple[int, ort.InferenceSession] | None = None       # P.835
_p808_session: tuple[int, ort.InferenceSession] | None = None  # P.808


def _model_bytes(model: str = "p835") -> bytes:
    path, sha256 = MODELS[model]
    try:
        data = (resources.files(MODEL_PACKAGE) / path).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise KdsdError(f"DNSMOS: {MODEL_PACKAGE}/{path} not found "
                        "(install the pinned speechmos==0.0.1.1)") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise KdsdError(f"DNSMOS: {MODEL_PACKAGE}/{path} is not the pinned model "
                        "(expected speechmos==0.0.1.1)")
    return data


def _new_session(model: str) -> tuple[int, ort.InferenceSession]:
    options = ort.SessionOptions()
    # One thread each: metric workers run in parallel processes and must not oversubscribe.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle pool threads must not spin on cores other jobs need (measured: no slower).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return os.getpid(), ort.InferenceSession(_model_bytes(model), options,
                                             providers=["CPUExecutionProvider"])


def _get_session() -> ort.InferenceSession:
    """The process's P.835 session, made on first use; keyed by pid so a forked worker makes its own."""
    global _session
    if _session is None or _session[0] != os.getpid():
        _session = _new_session("p835")
    return _session[1]


def _get_p808_session() -> ort.InferenceSession:
    global _p808_session
    if _p808_session is None or _p808_session[0] != os.getpid():
        _p808_session = _new_session("p808")
    return _p808_session[1]


def _log_mel(window: np.ndarray) -> np.ndarray:
    """(1, frames, 120) P.808 input, as speechmos/dnsmos_local.py's audio_melspec."""
    import librosa  # heavy (numba); only the P.808 path needs it
    mel = librosa.feature.melspectrogram(y=window, sr=SAMPLE_RATE, n_fft=321, hop_length=160, n_mels=120)
    return ((librosa.power_to_db(mel, ref=np.max) + 40) / 40).T[np.newaxis].astype(np.float32)


def _p808(window: np.ndarray) -> float:
    session = _get_p808_session()
    return float(session.run(None, {session.get_inputs()[0].name: _log_mel(window[:-160])})[0][0][0])


def _windows(wave: np.ndarray):
    """The reference's 9.01 s analysis windows (loop-by-doubling for short input)."""
    while len(wave) < WINDOW:
        wave = np.concatenate([wave, wave])
    num_hops = int(np.floor(len(wave) / SAMPLE_RATE) - WINDOW_SECONDS) + 1
    for i in range(num_hops):
        window = wave[int(i * HOP): int((i + WINDOW_SECONDS) * HOP)]
        if len(window) == WINDOW:
            yield window


def _calibrated(raw: np.ndarray) -> np.ndarray:
    return np.array([np.polyval(coeffs, float(value)) for coeffs, value in zip(CALIBRATION, raw)])


def dnsmos(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, p808: bool = False) -> dict[str, float]:
    """DNSMOS P.835 SIG, BAK and OVRL (MOS scale) of a float mono clip, keyed by DNSMOS_COLUMNS,
    and with ``p808`` the P.808 MOS too (``P808_COLUMN``), over the same windows.

    Other sample rates are resampled to 16 kHz. Empty, non-finite or silent input (RMS below
    ``SILENCE_RMS``) gives NaNs: the model would return a confident-looking score for it.
    Samples are used as they are (no normalisation or clipping), since the model is level-dependent.
    """
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"dnsmos expects 1-D mono samples, got shape {wave.shape}")
    if not np.issubdtype(wave.dtype, np.floating):  # int16 PCM would be scored at 32768x level
        raise ValueError(f"dnsmos expects float samples in [-1, 1], got dtype {wave.dtype}")
    columns = DNSMOS_COLUMNS + ((P808_COLUMN,) if p808 else ())
    if wave.size == 0 or not np.isfinite(wave).all():
        return dict.fromkeys(columns, float("nan"))
    if is_silent(wave):
        return dict.fromkeys(columns, float("nan"))
    wave = resample(wave, sample_rate, SAMPLE_RATE)
    session = _get_session()
    name = session.get_inputs()[0].name
    windows = list(_windows(wave))
    scores = [_calibrated(session.run(None, {name: window[np.newaxis]})[0][0]) for window in windows]
    if p808:
        scores = [np.append(score, _p808(window)) for score, window in zip(scores, windows)]
    return dict(zip(columns, (float(v) for v in np.mean(scores, axis=0))))
