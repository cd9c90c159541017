"""Synthetic room impulse responses: a seeded, numpy-only shoebox model.

A ``Room`` is a shoebox (length x width x height), a microphone, a speech source and a noise
source, and a reverberation time ``rt60``: the mid-frequency value (500 Hz - 2 kHz bands, e.g.
the 1 kHz octave); the broadband T30 comes out ~8 % lower, as high bands decay faster.
``make_rir(room, seed, which=...)`` builds the response from one of the two sources to the
microphone in three parts:

1. **Direct path**: one sample at ``round(d / c * fs)`` (c = 343 m/s), the response's first
   non-zero sample; the whole RIR is scaled so that it equals 1.
2. **Early reflections**: the image sources of the shoebox up to order ``MAX_IMAGE_ORDER``
   (Allen & Berkley), each at its own integer delay, with amplitude ``beta**order * d / d_image``
   times a seeded +-20 % jitter for wall irregularity. The wall reflection coefficient comes from
   Sabine's formula: ``alpha = 0.161 V / (S rt60)``, ``beta = sqrt(1 - alpha)``.
3. **Late tail**: seeded white Gaussian noise split into six octave-wide bands (smooth,
   complementary FFT masks, edges 250 / 500 / 1k / 2k / 4k Hz). Band ``b`` decays by 60 dB in
   ``rt60 * RT60_FACTORS[b]`` (longer below 500 Hz, shorter above 2 kHz, as walls and air absorb
   high frequencies more), counted from the direct arrival; it fades in (raised cosine) from the
   first reflection over the mixing time ``sqrt(V)`` ms.

The tail's gain sets the direct-to-reverberant ratio to the diffuse-field value
``DRR = 20 log10(d_c / d)`` with critical distance ``d_c = 0.057 sqrt(V / rt60)`` m, so
``Room.drr_db`` is exact for every seed (the reflections are capped at half of the
reverberant energy, so the exponential tail dominates the decay). ``draw_room`` keeps the
speech source within ``2 d_c`` (DRR >= -6 dB) and the noise source within ``3 d_c``. The direct
path is always the largest sample: reflections are capped at ``MAX_REVERB_PEAK`` and a tail draw
that would reach it is drawn again from the same seeded generator.

``reverberate`` aligns its output to the direct path by default, so the dry signal remains a
sample-aligned target for the reverberant one.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from kdsd import SAMPLE_RATE
from kdsd.errors import KdsdError

SPEED_OF_SOUND = 343.0           # m/s
MAX_IMAGE_ORDER = 3              # early reflections: images with |kx| + |ky| + |kz| <= 3
BAND_EDGES_HZ = (250.0, 500.0, 1000.0, 2000.0, 4000.0)
RT60_FACTORS = (1.2, 1.1, 1.0, 1.0, 0.85, 0.7)   # per band, low to high
REFLECTION_JITTER = 0.2
MAX_REFLECTION_SHARE = 0.5       # of the reverberant energy; the tail keeps the rest
MAX_REVERB_PEAK = 0.9           # no reflection or tail sample reaches the direct path's 1
MAX_TAIL_DRAWS = 20
TAIL_LENGTH = 1.25               # RIR lasts the slowest band's RT60 x this (to about -75 dB)
SOURCES = ("speech", "noise")

# draw_room ranges
ROOM_SIZE_M = ((4.0, 10.0), (3.0, 8.0), (2.5, 4.0))
WALL_MARGIN_M = 0.5
MIC_HEIGHT_M = (0.8, 1.5)
SOURCE_HEIGHT_M = (1.1, 1.9)
SPEECH_DISTANCE_M = (0.5, 2.5)
NOISE_DISTANCE_M = (1.0, 4.0)
SPEECH_MAX_CRITICAL = 2.0        # speech source at most 2 critical distances away (DRR >= -6 dB)
NOISE_MAX_CRITICAL = 3.0


@dataclass(frozen=True)
class Room:
    """A shoebox room with a microphone, a speech source and a noise source (metres, seconds)."""

    rt60: float
    size: tuple[float, float, float]
    mic: tuple[float, float, float]
    speech_source: tuple[float, float, float]
    noise_source: tuple[float, float, float]

    @property
    def volume(self) -> float:
        return float(np.prod(self.size))

    @property
    def critical_distance_m(self) -> float:
        return 0.057 * float(np.sqrt(self.volume / self.rt60))

    def source(self, which: str = "speech") -> tuple[float, float, float]:
        if which not in SOURCES:
            raise KdsdError(f"unknown RIR source {which!r}; valid: {', '.join(SOURCES)}")
        return self.speech_source if which == "speech" else self.noise_source

    def distance(self, which: str = "speech") -> float:
        return float(np.linalg.norm(np.subtract(self.source(which), self.mic)))

    def drr(self, which: str = "speech") -> float:
        """Direct-to-reverberant ratio (dB) of ``make_rir(self, seed, which=which)``."""
        return 20.0 * float(np.log10(self.critical_distance_m / self.distance(which)))

    @property
    def distance_m(self) -> float:
        return self.distance("speech")

    @property
    def drr_db(self) -> float:
        return self.drr("speech")


def draw_room(rng: np.random.Generator, rt60_range: tuple[float, float] = (0.3, 0.9)) -> Room:
    """A random room: size, RT60 uniform in ``rt60_range``, microphone and two sources."""
    lo, hi = float(rt60_range[0]), float(rt60_range[1])
    if not 0.05 <= lo <= hi <= 5.0:
        raise KdsdError(f"rt60 range {rt60_range} must satisfy 0.05 <= low <= high <= 5 s")
    size = tuple(round(float(rng.uniform(a, b)), 2) for a, b in ROOM_SIZE_M)
    rt60 = round(float(rng.uniform(lo, hi)), 3)
    mic = (float(rng.uniform(WALL_MARGIN_M, size[0] - WALL_MARGIN_M)),
           float(rng.uniform(WALL_MARGIN_M, size[1] - WALL_MARGIN_M)),
           float(rng.uniform(*MIC_HEIGHT_M)))
    d_c = 0.057 * np.sqrt(np.prod(size) / rt60)
    speech = _place_source(rng, size, mic, SPEECH_DISTANCE_M, SPEECH_MAX_CRITICAL * d_c)
    noise = _place_source(rng, size, mic, NOISE_DISTANCE_M, NOISE_MAX_CRITICAL * d_c)
    return Room(rt60=rt60, size=size, mic=_round(mic), speech_source=_round(speech),
                noise_source=_round(noise))


def make_rir(room: Room, seed: int, sample_rate: int = SAMPLE_RATE, which: str = "speech"
             ) -> np.ndarray:
    """Impulse response (float32) from ``room``'s ``which`` source to its microphone.

    Geometry comes from ``room``; ``seed`` draws the reflection jitter and the tail noise, so the
    same (room, seed, which) always gives the same samples.
    """
    src = np.asarray(room.source(which), dtype=np.float64)
    mic = np.asarray(room.mic, dtype=np.float64)
    size = np.asarray(room.size, dtype=np.float64)
    if room.rt60 <= 0 or np.any(src <= 0) or np.any(src >= size) or np.any(mic <= 0) \
            or np.any(mic >= size):
        raise KdsdError(f"room {describe(room)}: rt60 must be positive and source and microphone "
                        "inside the room")
    if int(seed) < 0:
        raise KdsdError(f"RIR seed must be a non-negative integer, got {seed}")
    rng = np.random.default_rng([int(seed), SOURCES.index(which)])
    fs = float(sample_rate)
    d = float(np.linalg.norm(src - mic))
    t0 = int(round(d / SPEED_OF_SOUND * fs))
    longest = room.rt60 * max(RT60_FACTORS)
    n = t0 + int(np.ceil(TAIL_LENGTH * longest * fs))
    rir = np.zeros(n)
    rir[t0] = 1.0

    # early reflections (image sources), amplitudes relative to the direct path
    beta = _wall_reflection(room)
    delays, amps = [], []
    for k in itertools.product(range(-MAX_IMAGE_ORDER, MAX_IMAGE_ORDER + 1), repeat=3):
        order = sum(abs(i) for i in k)
        if order == 0 or order > MAX_IMAGE_ORDER:
            continue
        k = np.asarray(k)
        image = k * size + np.where(k % 2 == 0, src, size - src)
        dist = float(np.linalg.norm(image - mic))
        delays.append(int(round(dist / SPEED_OF_SOUND * fs)))
        amps.append(beta**order * d / dist)
    delays = np.asarray(delays)
    amps = np.asarray(amps) * rng.uniform(1 - REFLECTION_JITTER, 1 + REFLECTION_JITTER, len(amps))
    keep = delays < n
    delays, amps = delays[keep], amps[keep]

    # energy budget: the reverberant part (all but the direct sample) carries 10**(-DRR/10)
    target = 10.0 ** (-room.drr(which) / 10.0)
    early = np.zeros(n)
    np.add.at(early, delays, amps)
    early = np.minimum(early, MAX_REVERB_PEAK)  # coincident reflections too
    if np.sum(early**2) > MAX_REFLECTION_SHARE * target:
        early *= np.sqrt(MAX_REFLECTION_SHARE * target / np.sum(early**2))
    # gain g with |early + g tail|^2 = target exactly (cross terms included). A tail draw whose
    # peak would rival the direct path (possible at low DRR and short rt60) is drawn again.
    for _ in range(MAX_TAIL_DRAWS):
        tail = _late_tail(rng, n, t0, int(delays.min()) if delays.size else t0 + 1,
                          room.rt60, np.sqrt(room.volume) * 1e-3 * fs, fs)
        a, b, c = np.sum(tail**2), np.sum(early * tail), np.sum(early**2) - target
        reverb = early + (-b + np.sqrt(b * b - a * c)) / a * tail
        if np.abs(reverb).max() < MAX_REVERB_PEAK:
            break
    else:  # pathological geometry (e.g. a custom room with huge reverberant energy)
        reverb = np.clip(reverb, -MAX_REVERB_PEAK, MAX_REVERB_PEAK)
    rir += reverb
    return rir.astype(np.float32)


def reverberate(wave: np.ndarray, rir: np.ndarray, align: bool = True) -> np.ndarray:
    """``wave`` convolved with ``rir`` (FFT), cut to ``len(wave)``, DC removed, float32.

    With ``align`` (default) the output starts at the RIR's direct path, so the direct sound
    stays sample-aligned with ``wave`` (use the dry wave as a time-aligned target); without it
    the propagation delay is kept. The reverberant tail of the last ``len(rir)`` samples is cut
    off: pad ``wave`` with silence first to keep it.
    """
    from scipy.signal import fftconvolve

    x = np.asarray(wave, dtype=np.float64)
    h = np.asarray(rir, dtype=np.float64)
    if x.ndim != 1 or h.ndim != 1 or h.size == 0:
        raise KdsdError("reverberate needs a mono wave and a non-empty 1-D impulse response")
    if x.size == 0:
        return np.zeros(0, dtype=np.float32)
    start = direct_index(h) if align else 0
    y = fftconvolve(x, h)[start: start + len(x)]
    return (y - y.mean()).astype(np.float32)


def describe(room: Room) -> str:
    """Short manifest text, e.g. ``rt60=0.62;drr=3.1;d=1.20;room=6.1x4.3x2.9``."""
    return (f"rt60={room.rt60:.2f};drr={room.drr_db:.1f};d={room.distance_m:.2f};"
            f"room={room.size[0]:.1f}x{room.size[1]:.1f}x{room.size[2]:.1f}")


# ---------------------------------------------------------------- measurement

def direct_index(rir: np.ndarray) -> int:
    """Index of the direct path: the first sample at the response's peak magnitude."""
    mag = np.abs(np.asarray(rir))
    return int(np.flatnonzero(mag >= mag.max())[0]) if mag.size else 0


def measure_rt60(rir: np.ndarray, sample_rate: int = SAMPLE_RATE,
                 db_range: tuple[float, float] = (-5.0, -35.0),
                 band_hz: tuple[float, float] | None = None) -> float:
    """RT60 by Schroeder backward integration: a line fitted to the energy decay curve between
    ``db_range`` (default -5..-35 dB: T30; use (-5, -25) for T20), extrapolated to -60 dB.
    ``band_hz`` first band-passes the response (Butterworth, 6th order: smooth, so unlike a
    brick-wall filter it does not smear the direct path's energy over the decay)."""
    h = np.asarray(rir, dtype=np.float64)
    if band_hz is not None:
        from scipy.signal import butter, sosfilt

        sos = butter(3, band_hz, btype="bandpass", fs=sample_rate, output="sos")
        h = sosfilt(sos, h)
    edc = np.cumsum(h[::-1] ** 2)[::-1]
    edc_db = 10.0 * np.log10(np.maximum(edc / edc[0], 1e-300))
    hi, lo = max(db_range), min(db_range)
    idx = np.flatnonzero((edc_db <= hi) & (edc_db >= lo))
    if idx.size < 2:
        raise KdsdError(f"impulse response decays less than {-lo:g} dB; cannot measure RT60")
    slope = np.polyfit(idx / sample_rate, edc_db[idx], 1)[0]
    return float(-60.0 / slope)


def measure_drr(rir: np.ndarray) -> float:
    """Direct-to-reverberant ratio (dB): the direct-path sample against all other samples."""
    h = np.asarray(rir, dtype=np.float64)
    k = direct_index(h)
    direct = h[k] ** 2
    return float(10.0 * np.log10(direct / (np.sum(h**2) - direct)))


# ---------------------------------------------------------------- internals

def _round(p) -> tuple[float, float, float]:
    return tuple(round(float(v), 3) for v in p)


def _place_source(rng: np.random.Generator, size, mic, distance_range, max_distance
                  ) -> tuple[float, float, float]:
    """A point inside the room (WALL_MARGIN_M/2 from walls), ``distance_range`` from the mic
    (upper end capped at ``max_distance``, lower end kept)."""
    lo = distance_range[0]
    hi = max(min(distance_range[1], max_distance), lo)
    margin = WALL_MARGIN_M / 2
    for _ in range(1000):
        d = rng.uniform(lo, hi)
        z = rng.uniform(*SOURCE_HEIGHT_M)
        dz = z - mic[2]
        if abs(dz) >= d:
            continue
        az = rng.uniform(0.0, 2.0 * np.pi)
        r = np.sqrt(d**2 - dz**2)
        p = (mic[0] + r * np.cos(az), mic[1] + r * np.sin(az), z)
        if all(margin <= p[i] <= size[i] - margin for i in range(3)):
            return p
    raise KdsdError(f"cannot place a source {lo:.2f}-{hi:.2f} m from the microphone in a "
                    f"{size[0]:.1f}x{size[1]:.1f}x{size[2]:.1f} m room")


def _wall_reflection(room: Room) -> float:
    """Pressure reflection coefficient of the walls from Sabine's formula."""
    lx, ly, lz = room.size
    surface = 2.0 * (lx * ly + lx * lz + ly * lz)
    alpha = float(np.clip(0.161 * room.volume / (surface * room.rt60), 0.01, 0.99))
    return float(np.sqrt(1.0 - alpha))


def _band_masks(n_fft: int, fs: float) -> np.ndarray:
    """Smooth complementary octave masks (rows sum to one at every frequency)."""
    f = np.maximum(np.fft.rfftfreq(n_fft, 1.0 / fs), 1e-3)
    # lowpass at each edge, raised-cosine transition one octave wide (edge/sqrt2 .. edge*sqrt2)
    lows = [0.5 * (1.0 - np.sin(np.pi * np.clip(np.log2(f / e), -0.5, 0.5)))
            for e in BAND_EDGES_HZ]
    bounds = [np.zeros_like(f), *lows, np.ones_like(f)]
    return np.stack([bounds[i + 1] - bounds[i] for i in range(len(RT60_FACTORS))])


def _late_tail(rng: np.random.Generator, n: int, t0: int, t_first: int, rt60: float,
               mixing: float, fs: float) -> np.ndarray:
    noise_spec = np.fft.rfft(rng.standard_normal(n))
    bands = np.fft.irfft(noise_spec[None, :] * _band_masks(n, fs), n)
    t = (np.arange(n) - t0) / fs
    tail = np.zeros(n)
    for band, factor in zip(bands, RT60_FACTORS):
        tail += band * 10.0 ** (-3.0 * np.maximum(t, 0.0) / (rt60 * factor))  # -60 dB at rt60
    ramp = np.clip((np.arange(n) - t_first) / max(mixing, 1.0), 0.0, 1.0)
    tail *= 0.5 - 0.5 * np.cos(np.pi * ramp)
    fade = min(n - t0 - 1, int(0.01 * fs))  # 10 ms fade-out at the (about -75 dB) end
    if fade > 0:
        tail[-fade:] *= np.linspace(1.0, 0.0, fade)
    return tail
