"""Synthetic room impulse responses from pyroomacoustics, seeded.

A ``Room`` is a shoebox (length x width x height), a microphone, a speech source and a noise
source, and a reverberation time ``rt60``: the mid-frequency value (500 Hz - 2 kHz bands, e.g.
the 1 kHz octave). ``make_rir(room, seed, which=...)`` simulates the response from one of the
two sources to the microphone with pyroomacoustics' hybrid simulator:

* walls: one material whose mid-band energy absorption comes from the RT60 by inverse Sabine
  (``pyroomacoustics.inverse_sabine``), more absorbing above 2 kHz and less below 500 Hz
  (``ABSORPTION_BY_BAND``, as real walls), with light scattering (``SCATTERING``) so the late
  field becomes diffuse;
* early part: image sources up to order ``ISM_ORDER`` (fractional delays);
* late part: ray tracing (the ``seed`` drives its random rays), plus air absorption.

The response is normalised to a direct-path peak of 1 at sample ``round(d / c * fs)`` (the
simulator's fractional-delay filter latency is removed) and cut to a fixed length.
``Room.drr`` is the diffuse-field prediction ``20 log10(d_c / d)`` with critical distance
``d_c = 0.057 sqrt(V / rt60)``; simulated responses measure (``measure_drr``) a few dB above it
(their late field is less dense than a diffuse one) but follow its change with distance, so the
manifest records the measured value. ``draw_room`` keeps the speech source within ``2 d_c`` and
the noise source within ``3 d_c``.

``reverberate`` aligns its output to the direct path by default, so the dry signal remains a
sample-aligned target for the reverberant one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kdsd import SAMPLE_RATE
from kdsd.errors import KdsdError

SPEED_OF_SOUND = 343.0           # m/s, pyroomacoustics' constant c (a ShoeBox has no setting)
ISM_ORDER = 8                    # image sources up to this order, ray tracing beyond
SCATTERING = 0.05
HIGHPASS_HZ = 10.0               # DC blocker, as pyroomacoustics' own (but causal)
BAND_CENTRES_HZ = (125, 250, 500, 1000, 2000, 4000, 8000)
ABSORPTION_BY_BAND = (1 / 1.2, 1 / 1.1, 1.0, 1.0, 1 / 0.85, 1 / 0.7, 1 / 0.6)  # x mid-band value
TAIL_LENGTH = 1.5                # RIR lasts the rt60 x this after the direct path (about -90 dB)
DIRECT_WINDOW_S = 0.0025         # direct sound = +-2.5 ms around its peak (for measure_drr)
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
        """Diffuse-field direct-to-reverberant ratio (dB) at the ``which`` source's distance."""
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

    Geometry comes from ``room``; ``seed`` drives the simulator's random rays, so the same
    (room, seed, which) always gives the same samples.
    """
    import pyroomacoustics as pra
    from scipy.signal import butter, sosfilt

    src, mic = np.asarray(room.source(which), dtype=np.float64), np.asarray(room.mic, dtype=np.float64)
    size = np.asarray(room.size, dtype=np.float64)
    if room.rt60 <= 0 or np.any(src <= 0) or np.any(src >= size) or np.any(mic <= 0) \
            or np.any(mic >= size):
        raise KdsdError(f"room {describe(room)}: rt60 must be positive and source and microphone "
                        "inside the room")
    if int(seed) < 0:
        raise KdsdError(f"RIR seed must be a non-negative integer, got {seed}")
    try:
        absorption, _ = pra.inverse_sabine(room.rt60, list(room.size), c=SPEED_OF_SOUND)
    except ValueError:
        raise KdsdError(f"room {describe(room)}: too large for an RT60 of {room.rt60} s "
                        "(walls would absorb more than all the energy)") from None
    material = pra.Material({"coeffs": [min(0.99, absorption * k) for k in ABSORPTION_BY_BAND],
                             "center_freqs": list(BAND_CENTRES_HZ)}, SCATTERING)
    # pyroomacoustics draws from package-wide generators: seed them for this response
    pra.random.seed(numpy=[int(seed), SOURCES.index(which)],
                    libroom=int(seed) * len(SOURCES) + SOURCES.index(which))
    sim = pra.ShoeBox(list(room.size), fs=sample_rate, materials=material, max_order=ISM_ORDER,
                      air_absorption=True, ray_tracing=True)
    sim.add_source(list(src))
    sim.add_microphone(list(mic))
    zero_phase_highpass = pra.constants.get("rir_hpf_enable")
    pra.constants.set("rir_hpf_enable", False)  # it would ring before the direct sound
    try:
        sim.compute_rir()
    finally:
        pra.constants.set("rir_hpf_enable", zero_phase_highpass)
    latency = pra.constants.get("frac_delay_length") // 2
    rir = sosfilt(butter(2, HIGHPASS_HZ, "highpass", fs=sample_rate, output="sos"),
                  np.asarray(sim.rir[0][0], dtype=np.float64))[latency:]
    n = int(round(float(np.linalg.norm(src - mic)) / SPEED_OF_SOUND * sample_rate)) \
        + int(np.ceil(TAIL_LENGTH * room.rt60 * sample_rate))
    rir = np.pad(rir, (0, max(0, n - len(rir))))[:n]
    return (rir / np.abs(rir).max()).astype(np.float32)


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


def describe(room: Room, drr_db: float | None = None) -> str:
    """Short manifest text, e.g. ``rt60=0.62;drr=3.1;d=1.20;room=6.1x4.3x2.9``; ``drr`` is
    ``drr_db`` (pass the measured value of the speech RIR) or else the diffuse-field prediction."""
    drr = room.drr_db if drr_db is None else drr_db
    return (f"rt60={room.rt60:.2f};drr={drr:.1f};d={room.distance_m:.2f};"
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


def measure_drr(rir: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Direct-to-reverberant ratio (dB): the energy within ``DIRECT_WINDOW_S`` of the peak
    against all the rest."""
    h = np.asarray(rir, dtype=np.float64)
    k, half = direct_index(h), int(round(DIRECT_WINDOW_S * sample_rate))
    direct = np.sum(h[max(0, k - half): k + half + 1] ** 2)
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
