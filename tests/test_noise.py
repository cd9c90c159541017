"""Procedural noise families: output contract, determinism and spectral character."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import signal, stats

from kdsd.corpus.noise import FAMILIES, family_names, make_noise
from kdsd.errors import KdsdError

SR = 16_000
N = 2 * SR
SEEDS = (0, 1, 2)


def _sources() -> list[np.ndarray]:
    """Three distinct, speech-like (low-pass, non-white) stand-ins of different lengths."""
    rng = np.random.default_rng(1234)
    return [signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(length)) for length in (8000, 9000, 11000)]


SOURCES = _sources()


def _digest(x: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes()).hexdigest()


def _slope_db_per_octave(x: np.ndarray) -> float:
    f, p = signal.welch(x, SR, nperseg=2048)
    band = (f >= 100) & (f <= 4000)
    return float(np.polyfit(np.log2(f[band]), 10 * np.log10(p[band]), 1)[0])


def _frame_energy_cv2(x: np.ndarray, frame: int = 320) -> float:
    """Variance of 20 ms frame energies relative to their squared mean."""
    energy = np.square(x[: x.size // frame * frame].reshape(-1, frame).astype(np.float64)).mean(axis=1)
    return float(energy.var() / energy.mean() ** 2)


def test_registry_has_the_required_families() -> None:
    required = {"white", "pink", "brown", "speech_shaped", "hum", "engine", "babble", "clicks", "modulated", "tones"}
    assert required <= set(family_names())
    assert family_names() == list(FAMILIES)
    for name, family in FAMILIES.items():
        assert family.name == name
        assert family.description and "\n" not in family.description


@pytest.mark.parametrize("family", family_names())
def test_output_contract(family: str) -> None:
    x = make_noise(family, N, SR, seed=7, babble_sources=SOURCES)
    assert x.shape == (N,) and x.dtype == np.float32
    assert np.all(np.isfinite(x))
    x64 = x.astype(np.float64)
    assert abs(x64.mean()) < 1e-3
    assert abs(np.sqrt(np.mean(x64**2)) - 1.0) < 1e-3


@pytest.mark.parametrize("family", family_names())
def test_deterministic_per_seed(family: str) -> None:
    first = make_noise(family, N, SR, seed=3, babble_sources=SOURCES)
    again = make_noise(family, N, SR, seed=3, babble_sources=SOURCES)
    other = make_noise(family, N, SR, seed=4, babble_sources=SOURCES)
    assert _digest(first) == _digest(again)
    assert _digest(first) != _digest(other)
    # Not just different samples: different seeds draw different parameters, so the
    # two signals should not be near-copies either.
    assert abs(np.corrcoef(first, other)[0, 1]) < 0.9


def test_families_do_not_share_random_draws() -> None:
    white = make_noise("white", N, SR, seed=0)
    pink = make_noise("pink", N, SR, seed=0)
    assert abs(np.corrcoef(white, pink)[0, 1]) < 0.1


@pytest.mark.parametrize("family", family_names())
@pytest.mark.parametrize(("n", "sr"), [(2, SR), (101, 8000), (4410, 44_100)])
def test_short_signals_and_other_sample_rates(family: str, n: int, sr: int) -> None:
    x = make_noise(family, n, sr, seed=5, babble_sources=SOURCES)
    assert x.shape == (n,) and np.all(np.isfinite(x))
    assert abs(np.sqrt(np.mean(x.astype(np.float64) ** 2)) - 1.0) < 1e-3


@pytest.mark.parametrize(("family", "expected"), [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
@pytest.mark.parametrize("seed", SEEDS)
def test_power_law_slopes(family: str, expected: float, seed: int) -> None:
    slope = _slope_db_per_octave(make_noise(family, N, SR, seed))
    assert slope == pytest.approx(expected, abs=1.5)


@pytest.mark.parametrize("seed", SEEDS)
def test_brown_has_no_drift(seed: int) -> None:
    x = make_noise("brown", 4 * SR, SR, seed)
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / SR)
    # Unfiltered 1/f² noise would keep ~90% of its power below 10 Hz; high-passed near 20 Hz, < 20%.
    assert power[f < 10].sum() < 0.2 * power.sum()


@pytest.mark.parametrize("seed", SEEDS)
def test_speech_shaped_is_low_heavy(seed: int) -> None:
    f, p = signal.welch(make_noise("speech_shaped", N, SR, seed), SR, nperseg=2048)
    low, high = p[f < 1000].sum(), p[f > 4000].sum()
    assert 10 * np.log10(low / high) > 10


@pytest.mark.parametrize("seed", range(6))
def test_hum_peaks_on_a_mains_harmonic(seed: int) -> None:
    f, p = signal.welch(make_noise("hum", 4 * SR, SR, seed), SR, nperseg=8192)
    peak = f[np.argmax(p)]
    bin_width = f[1]
    off_harmonic = min(abs(peak - base * round(peak / base)) for base in (50.0, 60.0))
    assert 40 <= peak < 1000
    assert off_harmonic <= bin_width
    assert p.max() > 1e3 * np.median(p)  # a line spectrum, not a coloured noise


@pytest.mark.parametrize("seed", SEEDS)
def test_modulated_is_non_stationary(seed: int) -> None:
    white = _frame_energy_cv2(make_noise("white", N, SR, seed))
    modulated = _frame_energy_cv2(make_noise("modulated", N, SR, seed))
    assert modulated > 10 * white


@pytest.mark.parametrize("seed", SEEDS)
def test_clicks_are_impulsive(seed: int) -> None:
    assert stats.kurtosis(make_noise("clicks", N, SR, seed)) > 10


def _peak_circular_correlation(mixture: np.ndarray, source: np.ndarray) -> float:
    """Best normalised correlation of ``mixture[:len(source)]`` with any rotation of ``source``."""
    segment = mixture[: source.size].astype(np.float64)
    ref = source - source.mean()
    xcorr = np.fft.irfft(np.fft.rfft(segment) * np.conj(np.fft.rfft(ref)), source.size)
    return float(np.abs(xcorr).max() / (np.linalg.norm(segment) * np.linalg.norm(ref)))


@pytest.mark.parametrize("seed", SEEDS)
def test_babble_is_built_from_its_sources(seed: int) -> None:
    babble = make_noise("babble", N, SR, seed, babble_sources=SOURCES)
    best = max(_peak_circular_correlation(babble, source) for source in SOURCES)
    unrelated = np.random.default_rng(99).standard_normal(SOURCES[1].size)
    # Each talker is a looped rotation of one source; with ≤ 7 talkers the loudest one
    # alone explains ≥ 1/√7 ≈ 0.38 of the mixture.
    assert best > 0.3
    assert _peak_circular_correlation(babble, unrelated) < 0.1


def test_babble_depends_on_its_sources() -> None:
    a = make_noise("babble", N, SR, 0, babble_sources=SOURCES)
    b = make_noise("babble", N, SR, 0, babble_sources=SOURCES[::-1])
    assert _digest(a) != _digest(b)


def test_babble_needs_sources() -> None:
    with pytest.raises(KdsdError, match="babble.*speech sources"):
        make_noise("babble", N, SR, 0)


@pytest.mark.parametrize("bad", [np.zeros(100), np.zeros((2, 100)), np.array([]), np.array([1.0, np.nan])])
def test_babble_rejects_unusable_sources(bad: np.ndarray) -> None:
    with pytest.raises(KdsdError, match="babble source 0"):
        make_noise("babble", N, SR, 0, babble_sources=[bad])


def test_unknown_family_lists_valid_names() -> None:
    with pytest.raises(KdsdError) as info:
        make_noise("pnik", N, SR, 0)
    message = str(info.value)
    assert "'pnik'" in message and "did you mean 'pink'" in message
    for name in family_names():
        assert name in message


@pytest.mark.parametrize(
    ("n", "sr", "seed", "fragment"),
    [(1, SR, 0, "n_samples"), (10.0, SR, 0, "n_samples"), (100, 1000, 0, "sample_rate"), (100, SR, -1, "seed")],
)
def test_invalid_arguments(n: object, sr: int, seed: int, fragment: str) -> None:
    with pytest.raises(KdsdError, match=fragment):
        make_noise("white", n, sr, seed)  # type: ignore[arg-type]
