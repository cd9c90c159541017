"""Procedural noise families for the synthetic noisy-speech corpus.

Each family draws its own parameters (tilt, mains frequency, rotation rate, scale, ...)
from the generator it is given, so two seeds differ audibly, not just sample by sample.
:func:`make_noise` seeds the generator and normalises the result, once, for every family.
"""
from __future__ import annotations

import difflib
import operator
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import fft as sfft
from scipy import signal

from kdsd.errors import KdsdError

GenerateFn = Callable[[int, int, np.random.Generator, Sequence[np.ndarray]], np.ndarray]

MIN_SAMPLE_RATE = 4000  # below this, hum/engine harmonics and the speech spectrum have no room
_TABLE_SIZE = 4096  # one period of a harmonic waveform; linear lookup error is far below -80 dB


@dataclass(frozen=True)
class NoiseFamily:
    """A named noise generator: ``generate(n_samples, sample_rate, rng, babble_sources)``."""

    name: str
    description: str
    generate: GenerateFn


# --- shared building blocks -------------------------------------------------------------


def _rms(x: np.ndarray) -> float:
    """Root mean square, or 1.0 for an all-zero signal so callers can always divide by it."""
    return float(np.sqrt(np.mean(np.square(x)))) or 1.0


def _shaped_noise(n: int, sr: int, rng: np.random.Generator, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Gaussian noise filtered by the magnitude response ``gain(f)`` in the frequency domain."""
    m = sfft.next_fast_len(n, real=True)  # prime n would make the FFT slow; crop afterwards
    spec = sfft.rfft(rng.standard_normal(m))
    return sfft.irfft(spec * gain(sfft.rfftfreq(m, 1.0 / sr)), m)[:n]


def _high_pass(f: np.ndarray, corner: float) -> np.ndarray:
    """Magnitude of a 2nd-order high-pass: removes sub-audio drift and DC."""
    r = (f / corner) ** 2
    return r / np.sqrt(1.0 + r * r)


def _slow_curve(n: int, sr: int, rng: np.random.Generator, bandwidth: float) -> np.ndarray:
    """Smooth zero-mean, unit-variance random curve with content up to ``bandwidth`` Hz (< 50)."""
    rate = 100.0  # built at a control rate and interpolated: far cheaper than audio-rate filtering
    m = int(np.ceil(n * rate / sr)) + 2
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m, 1.0 / rate)
    spec[(f == 0) | (f > bandwidth)] = 0
    curve = np.fft.irfft(spec, m)
    curve /= max(float(curve.std()), 1e-12)  # a signal shorter than one cycle stays flat
    return np.interp(np.arange(n) * (rate / sr), np.arange(m), curve)


def _harmonic_table(amps: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """One period of ``sum_k a_k sin(2π k θ + φ_k)`` sampled on a fixed grid."""
    theta = np.arange(_TABLE_SIZE) / _TABLE_SIZE
    k = np.arange(1, len(amps) + 1)[:, None]
    return (amps[:, None] * np.sin(2 * np.pi * k * theta + phases[:, None])).sum(axis=0)


def _lookup(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Evaluate a periodic table at phase ``cycles`` (in periods), linearly interpolated.

    One lookup replaces a sine per harmonic per sample, which keeps rich tones cheap.
    """
    pos = (cycles % 1.0) * _TABLE_SIZE
    i = pos.astype(np.int64)
    lo = table[i]
    return lo + (pos - i) * (table[(i + 1) % _TABLE_SIZE] - lo)


def _max_harmonics(f0: float, sr: int) -> int:
    """Harmonics of ``f0`` that stay below 0.45·sr, so nothing aliases."""
    return max(1, int(0.45 * sr / f0))


# --- the families -----------------------------------------------------------------------


def _white(n: int, sr: int, rng: np.random.Generator, sources: Sequence[np.ndarray]) -> np.ndarray:
    return rng.standard_normal(n)


def _pink(n: int, sr: int, rng: np.random.Generator, sources: Sequence[np.ndarray]) -> np.ndarray:
    exponent = rng.uniform(0.9, 1.1)  # power ∝ 1/f^exponent: 2.7–3.3 dB/octave
    return _shaped_noise(n, sr, rng, lambda f: np.maximum(f, 10.0) ** (-exponent / 2))


def _brown(n: int, sr: int, rng: np.random.Generator, sources: Sequence[np.ndarray]) -> np.ndarray:
    exponent = rng.uniform(1.9, 2.1)  # 5.7–6.3 dB/octave
    corner = rng.uniform(15.0, 25.0)
    return _shaped_noise(
        n, sr, rng, lambda f: _high_pass(f, corner) * np.maximum(f, 1.0) ** (-exponent / 2)
    )


def _speech_shaped(n: int, sr: int, rng: np.random.Generator, sources: Sequence[np.ndarray]) -> np.ndarray:
    knee = rng.uniform(400.0, 600.0)  # LTASS is flat-ish up to about 500 Hz ...
    slope = rng.uniform(6.5, 9.0)  # ... then falls 6.5–9 dB/octave
    low_cut = rng.uniform(80.0, 120.0)  # voices carry little energy below the pitch range
    # A gentle ±1–2 dB ripple over log-frequency, standing in for talker-specific formant bias.
    ripple_db, cycles_per_oct, phase = rng.uniform(0.5, 2.0, 3), rng.uniform(0.3, 1.0, 3), rng.uniform(0, 2 * np.pi, 3)

    def gain(f: np.ndarray) -> np.ndarray:
        octaves = np.log2(np.maximum(f, 1.0) / knee)
        ripple = (ripple_db[:, None] * np.cos(2 * np.pi * cycles_per_oct[:, None] * octaves + phase[:, None])).sum(0)
        return _high_pass(f, low_cut) * 10 ** ((ripple - slope * np.maximum(octaves, 0.0)) / 20)

    return _shaped_noise(n, sr, rng, gain)


def _hum(n: int, sr: int, rng: np.random.Generator, sources: Sequence[np.ndarray]) -> np.ndarray:
    mains = rng.choice([50.0, 60.0]) * (1 + rng.uniform(-0.002, 0.002))  # grids drift ~0.1 Hz
    count = min(int(rng.integers(3, 13)), _max_harmonics(mains, sr))
    k = np.arange(1, count + 1)
    amps = k ** -rng.uniform(0.7, 2.0) * rng.uniform(0.5, 1.0, count)
    if count > 1 and rng.random() < 0.5:
        amps[1] = amps[0] * rng.uniform(1.0, 2.0)  # transformer magnetostriction hums at twice mains
    hum = _lookup(_harmonic_table(amps, rng.uniform(0, 2 * np.pi, count)), mains * np.arange(n) / sr)
    drive = rng.uniform(0.5, 3.0) / _rms(hum)
    hum = hum + rng.uniform(0.0, 0.5) * np.tanh(drive * hum) / drive  # saturation buzz: more odd harmonics
    hum *= 1 + rng.uniform(0.0, 0.1) * _slow_curve(n, sr, rng, 1.0)  # load changes wobble the level
    floor = _shaped_noise(n, sr, rng, lambda f: np.maximum(f, 10.0) ** -0.5)
    return hum / _rms(hum) + 10 ** (-rng.uniform(25, 40) / 20) * floor / _rms(floor)


def _engine(n: int, sr: int, rng: np.random.Generator, sources: Sequence[np.ndarray]) -> np.ndarray:
    rotation = rng.uniform(12.0, 50.0)  # crank rate, 720–3000 rpm
    firing = rotation * rng.choice([2, 3, 4, 6, 8]) / 2  # four-stroke: each cylinder fires every 2 turns
    depth = rng.uniform(0.03, 0.15)
    rate = firing * (1 + depth * np.clip(_slow_curve(n, sr, rng, rng.uniform(0.1, 0.5)), -2.5, 2.5))
    cycles = np.cumsum(rate) / sr  # integrate the wandering rate so the phase stays continuous
    count = min(int(rng.integers(6, 25)), _max_harmonics(firing * (1 + 2.5 * depth), sr))
    amps = np.arange(1, count + 1) ** -rng.uniform(0.5, 1.5) * rng.uniform(0.3, 1.0, count)
    tonal = _lookup(_harmonic_table(amps, rng.uniform(0, 2 * np.pi, count)), cycles)
    # Intake/exhaust noise: low-passed and pulsing with the firing cycle.
    sos = signal.butter(4, min(rng.uniform(150.0, 800.0), 0.45 * sr), fs=sr, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(n)) * (1 + rng.uniform(0.2, 0.8) * np.cos(2 * np.pi * cycles))
    return 10 ** (rng.uniform(0.0, 15.0) / 20) * tonal / _rms(tonal) + noise / _rms(noise)


def _babble_source(source: np.ndarray, index: int, sr: int) -> np.ndarray:
    """One talker: validated, zero-mean, unit-RMS, with 5 ms fades so its loop point doesn't click."""
    x = np.asarray(source, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise KdsdError(f"babble source {index} must be a non-empty, finite, 1-D signal (got shape {x.shape})")
    x = x - x.mean()
    if not np.any(x):
        raise KdsdError(f"babble source {index} is silent")
    fade = min(int(0.005 * sr), x.size // 4)
    if fade:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        x[:fade] *= ramp
        x[-fade:] *= ramp[::-1]
    return x / _rms(x)


def _babble(n: int, sr: int, rng: np.random.Generator, sources: Sequence[np.ndarray]) -> np.ndarray:
    if len(sources) == 0:
        raise KdsdError("noise family 'babble' needs speech sources (babble_sources is empty)")
    talkers = int(rng.integers(3, 8))
    # Distinct talkers when there are enough sources; otherwise reuse them at other offsets.
    if len(sources) >= talkers:
        picks = rng.permutation(len(sources))[:talkers]
    else:
        picks = rng.integers(0, len(sources), talkers)
    out = np.zeros(n)
    for index in picks:
        speech = _babble_source(sources[index], int(index), sr)
        start = int(rng.integers(speech.size))
        gain = 10 ** (rng.uniform(-3.0, 3.0) / 20)
        out += gain * np.resize(np.roll(speech, -start), n)  # np.resize repeats: the talker loops
    return out


def _clicks(n: int, sr: int, rng: np.random.Generator, sources: Sequence[np.ndarray]) -> np.ndarray:
    out = np.zeros(n)
    rate = rng.uniform(0.5, 6.0)  # events per second
    for _ in range(max(1, int(rng.poisson(rate * n / sr)))):  # at least one, so it is never just hiss
        start = int(rng.integers(n))
        length = min(max(2, int(sr * rng.uniform(0.001, 0.02))), n - start)
        t = np.arange(length)
        envelope = np.exp(-t / (length / rng.uniform(3.0, 6.0)))
        # A click excites a resonance (crackle, keyboard, relay) plus broadband energy.
        ring = np.sin(2 * np.pi * rng.uniform(500.0, 0.4 * sr) * t / sr + rng.uniform(0, 2 * np.pi))
        mix = rng.uniform(0.0, 1.0)
        burst = envelope * (mix * ring + (1 - mix) * rng.standard_normal(length))
        burst[0] += 1.0  # sharp onset
        out[start : start + length] += rng.choice([-1.0, 1.0]) * 10 ** (-rng.uniform(0.0, 20.0) / 20) * burst
    # Hiss floor set 10-25 dB below the clicks' total energy: relative to their peaks it would
    # swamp short, rare clicks and leave the mixture hardly impulsive.
    floor = _rms(out) * 10 ** (-rng.uniform(10.0, 25.0) / 20)
    return out + floor * rng.standard_normal(n)


def _gate(n: int, sr: int, rng: np.random.Generator, rate: float) -> np.ndarray:
    """On/off envelope: exponential segment lengths (mean 1/(2·rate) s) with smoothed edges."""
    gate = np.empty(n)
    on, pos = bool(rng.random() < 0.5), 0
    while pos < n:
        length = max(1, int(sr * rng.exponential(0.5 / rate)))
        gate[pos : pos + length] = 1.0 if on else 10 ** (-rng.uniform(20.0, 40.0) / 20)
        on, pos = not on, pos + length
    alpha = 1.0 / (sr * rng.uniform(0.005, 0.03))  # one-pole smoothing: 5–30 ms ramps, no clicks
    return signal.lfilter([alpha], [1.0, alpha - 1.0], gate, zi=[gate[0] * (1 - alpha)])[0]


def _modulated(n: int, sr: int, rng: np.random.Generator, sources: Sequence[np.ndarray]) -> np.ndarray:
    tilt = rng.uniform(0.0, 1.5)  # carrier between white and slightly steeper than pink
    carrier = _shaped_noise(n, sr, rng, lambda f: np.maximum(f, 20.0) ** (-tilt / 2))
    rate = rng.uniform(0.5, 4.0)
    if rng.random() < 0.5:
        return carrier * _gate(n, sr, rng, rate)  # intermittent source: traffic, machinery cycling
    depth_db = rng.uniform(15.0, 35.0)  # about ±2σ of the log envelope
    return carrier * 10 ** (depth_db / 80 * _slow_curve(n, sr, rng, rate))


_SCALES = (
    (0, 2, 4, 5, 7, 9, 11),  # major
    (0, 2, 3, 5, 7, 8, 10),  # natural minor
    (0, 2, 3, 5, 7, 9, 10),  # dorian
    (0, 2, 4, 7, 9),  # major pentatonic
    (0, 3, 5, 7, 10),  # minor pentatonic
)


def _tones(n: int, sr: int, rng: np.random.Generator, sources: Sequence[np.ndarray]) -> np.ndarray:
    scale = _SCALES[int(rng.integers(len(_SCALES)))]
    root = int(rng.integers(45, 61))  # MIDI A2..C4
    # Melody spans two octaves; a third holds the upper tones of triads built on top notes.
    pitches = [root + 12 * octave + step for octave in range(3) for step in scale]
    span = 2 * len(scale)
    top_hz = 440.0 * 2 ** ((pitches[span + 3] - 69) / 12)
    partials = min(int(rng.integers(3, 9)), _max_harmonics(top_hz, sr))
    amps = np.arange(1, partials + 1) ** -rng.uniform(0.7, 2.0)  # timbre: bright to mellow
    table = _harmonic_table(amps, rng.uniform(0, 2 * np.pi, partials))
    beat = rng.uniform(0.15, 0.5)
    attack, decay, release = rng.uniform(0.003, 0.04), rng.uniform(0.15, 1.0), rng.uniform(0.03, 0.3)
    chord_prob = rng.uniform(0.0, 0.5)

    out = np.zeros(n)
    onset, degree = 0, int(rng.integers(span))
    while onset < n:
        gap = int(sr * beat * rng.choice([0.5, 1.0, 1.0, 2.0]))
        length = min(gap + int(sr * release), n - onset)  # a note rings into the next one, then fades
        t = np.arange(length) / sr
        envelope = np.minimum(t / attack, 1.0) * np.exp(-np.maximum(t - attack, 0.0) / decay)
        envelope *= np.clip((length / sr - t) / release, 0.0, 1.0)
        degree = int(np.clip(degree + rng.integers(-3, 4), 0, span - 1))  # melodic steps
        chord = (0, 2, 4) if rng.random() < chord_prob else (0,)  # triad built within the scale
        velocity = rng.uniform(0.5, 1.0)
        for offset in chord:
            hz = 440.0 * 2 ** ((pitches[degree + offset] - 69) / 12)
            out[onset : onset + length] += velocity * envelope * _lookup(table, hz * t + rng.random())
        onset += gap
    return out


FAMILIES: dict[str, NoiseFamily] = {
    family.name: family
    for family in (
        NoiseFamily("white", "Gaussian white noise: flat spectrum, like electronic hiss", _white),
        NoiseFamily("pink", "1/f noise (about -3 dB/octave, random tilt): rain, ventilation", _pink),
        NoiseFamily("brown", "1/f² noise (about -6 dB/octave, high-passed near 20 Hz): rumble, surf", _brown),
        NoiseFamily(
            "speech_shaped",
            "Gaussian noise with a long-term average speech spectrum (flat to ~500 Hz, then -6.5…-9 dB/octave)",
            _speech_shaped,
        ),
        NoiseFamily("hum", "50/60 Hz mains hum with decaying harmonics, saturation buzz and a noise floor", _hum),
        NoiseFamily(
            "engine", "Engine/fan: harmonics of a wandering firing rate plus pulsing low-passed noise", _engine
        ),
        NoiseFamily("babble", "3–7 overlapping talkers looped from the corpus's own speech", _babble),
        NoiseFamily("clicks", "Sparse clicks and short decaying bursts over a faint hiss floor", _clicks),
        NoiseFamily(
            "modulated", "Non-stationary noise: 0.5–4 Hz random amplitude modulation or on/off gating", _modulated
        ),
        NoiseFamily("tones", "Music-like notes and triads from a random scale with attack/decay envelopes", _tones),
    )
}


def family_names() -> list[str]:
    """Registered family names, in registry order."""
    return list(FAMILIES)


def _family(name: str) -> NoiseFamily:
    if name in FAMILIES:
        return FAMILIES[name]
    close = difflib.get_close_matches(str(name), FAMILIES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise KdsdError(f"unknown noise family {name!r}{hint}; valid families: {', '.join(FAMILIES)}")


def _check_int(value: object, what: str, minimum: int) -> int:
    try:
        number = operator.index(value)  # accepts numpy integers, rejects floats
    except TypeError:
        raise KdsdError(f"{what} must be an integer, got {value!r}") from None
    if number < minimum:
        raise KdsdError(f"{what} must be at least {minimum}, got {number}")
    return number


def make_noise(
    family: str, n_samples: int, sample_rate: int, seed: int, babble_sources: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """``n_samples`` of noise from ``family``: float32, zero mean, unit RMS.

    Fully determined by the arguments. The family name is mixed into the seed so that,
    e.g., white and pink noise with the same seed are not built from the same draws.
    ``babble_sources`` are speech signals at ``sample_rate``; only ``babble`` uses them.
    """
    spec = _family(family)
    n = _check_int(n_samples, "n_samples", 2)  # one sample cannot be zero-mean with unit RMS
    sr = _check_int(sample_rate, "sample_rate", MIN_SAMPLE_RATE)
    rng = np.random.default_rng([_check_int(seed, "seed", 0), zlib.crc32(spec.name.encode())])
    x = np.asarray(spec.generate(n, sr, rng, babble_sources), dtype=np.float64)
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x * x)))
    if not np.isfinite(rms) or rms < 1e-12:
        raise KdsdError(f"noise family {family!r} produced a silent or non-finite signal for n_samples={n}")
    return (x / rms).astype(np.float32)
