"""kdsd.corpus.rir: seeded room impulse responses from pyroomacoustics."""
from __future__ import annotations

import re

import numpy as np
import pytest

from kdsd.corpus.rir import (
    SPEED_OF_SOUND,
    Room,
    describe,
    direct_index,
    draw_room,
    make_rir,
    measure_drr,
    measure_rt60,
    reverberate,
)
from kdsd.errors import KdsdError

SR = 16_000


def room(rt60: float = 0.5) -> Room:
    return Room(rt60=rt60, size=(6.0, 5.0, 3.0), mic=(2.0, 2.5, 1.2),
                speech_source=(3.2, 3.0, 1.6), noise_source=(4.8, 1.2, 1.4))


def test_same_seed_same_rir_and_seeds_or_sources_differ():
    r = room()
    a, b = make_rir(r, 3), make_rir(r, 3)
    assert a.dtype == np.float32 and a.tobytes() == b.tobytes()
    other_seed = make_rir(r, 4)
    assert len(other_seed) == len(a) and not np.array_equal(other_seed, a)
    noise = make_rir(r, 3, which="noise")
    assert direct_index(noise) != direct_index(a)  # another position: another delay


def test_draw_room_is_seeded_and_in_range():
    rooms = [draw_room(np.random.default_rng(11)) for _ in range(2)]
    assert rooms[0] == rooms[1]
    rng = np.random.default_rng(0)
    for _ in range(50):
        r = draw_room(rng, rt60_range=(0.4, 0.6))
        assert 0.4 <= r.rt60 <= 0.6
        for p in (r.mic, r.speech_source, r.noise_source):
            assert all(0 < p[i] < r.size[i] for i in range(3))
        assert 0.49 <= r.distance("speech") <= 2.51 and r.distance("noise") >= 0.99
        assert r.drr_db >= -6.1 or r.distance("speech") < 0.51  # speech within 2 critical distances


@pytest.mark.parametrize("rt60", [0.3, 0.6, 0.9])
def test_measured_rt60_matches_request(rt60):
    rir = make_rir(room(rt60), seed=1)
    octave_1k = measure_rt60(rir, SR, band_hz=(707, 1414))                # T30, 1 kHz octave
    broadband_t30 = measure_rt60(rir, SR)
    broadband_t20 = measure_rt60(rir, SR, db_range=(-5, -25))
    assert octave_1k == pytest.approx(rt60, rel=0.10)
    assert broadband_t30 == pytest.approx(rt60, rel=0.20)
    assert broadband_t20 == pytest.approx(rt60, rel=0.20)


def test_high_frequencies_decay_faster():
    rir = make_rir(room(0.7), seed=2)
    low, mid, high = (measure_rt60(rir, SR, band_hz=b) for b in
                      [(177, 354), (707, 1414), (4000, 7000)])
    assert high < mid < low


def test_measure_rt60_on_an_exact_exponential_decay():
    t = np.arange(SR) / SR
    rng = np.random.default_rng(0)
    assert measure_rt60(10 ** (-3 * t / 0.4), SR) == pytest.approx(0.4, rel=0.01)
    noisy = rng.standard_normal(SR) * 10 ** (-3 * t / 0.4)
    assert measure_rt60(noisy, SR) == pytest.approx(0.4, rel=0.05)


def test_energy_decays_after_the_direct_path():
    r = room(0.5)
    rir = make_rir(r, seed=5).astype(np.float64)
    t0, win = direct_index(rir), int(0.05 * SR)
    energy = [np.sum(rir[t0 + 1 + k * win: t0 + 1 + (k + 1) * win] ** 2) for k in range(10)]
    assert all(later < earlier for earlier, later in zip(energy, energy[1:]))
    assert 10 * np.log10(energy[-1] / energy[0]) < -40  # 0.45 s apart at rt60 0.5: ~ -54 dB


FRACTIONAL_DELAY_HALF = 40  # samples: half of pyroomacoustics' fractional-delay filter


@pytest.mark.parametrize("which", ["speech", "noise"])
def test_direct_path_at_propagation_delay_with_unit_peak(which):
    r = room()
    rir = make_rir(r, seed=0, which=which)
    t0 = int(round(r.distance(which) / SPEED_OF_SOUND * SR))
    assert abs(direct_index(rir) - t0) <= 1  # a fractional delay peaks at a neighbouring sample
    assert rir[direct_index(rir)] == 1.0 and np.abs(rir).max() == 1.0
    before = rir[:max(1, t0 - FRACTIONAL_DELAY_HALF - 1)]
    assert np.abs(before).max() < 1e-4  # nothing (below -80 dB) arrives before the direct sound


def test_direct_path_is_the_peak_in_drawn_rooms():
    rng = np.random.default_rng(123)
    for seed in range(12):
        r = draw_room(rng)
        for which in ("speech", "noise"):
            rir = make_rir(r, seed, which=which)
            t0 = int(round(r.distance(which) / SPEED_OF_SOUND * SR))
            assert abs(direct_index(rir) - t0) <= 1
            window = np.arange(t0 - FRACTIONAL_DELAY_HALF, t0 + FRACTIONAL_DELAY_HALF + 1)
            assert np.abs(np.delete(rir, window)).max() < 1.0


def test_drr_follows_distance_and_room():
    """Measured DRR changes with distance as the diffuse-field law says (direct energy ~ 1/d^2,
    reverberant energy the same in one room), and falls as the room gets more reverberant."""
    near = Room(0.5, (6.0, 5.0, 3.0), (2.0, 2.5, 1.2), (2.6, 2.5, 1.2), (4.0, 2.5, 1.2))
    assert near.drr("speech") - near.drr("noise") == pytest.approx(20 * np.log10(2.0 / 0.6))
    for seed in range(2):
        measured = measure_drr(make_rir(near, seed)) - measure_drr(make_rir(near, seed, which="noise"))
        assert measured == pytest.approx(20 * np.log10(2.0 / 0.6), abs=2.0)
    drr = [measure_drr(make_rir(room(rt60), seed=1)) for rt60 in (0.3, 0.6, 0.9)]
    assert drr[0] > drr[1] > drr[2]
    # within a few dB above the diffuse-field prediction (the simulated late field is sparser)
    assert all(0 <= m - room(rt60).drr_db <= 6 for m, rt60 in zip(drr, (0.3, 0.6, 0.9)))


def test_measure_drr_counts_the_direct_window():
    rir = np.zeros(1000)
    rir[100], rir[101], rir[500] = 1.0, 0.5, 0.5  # direct sound spread over two samples
    assert measure_drr(rir) == pytest.approx(10 * np.log10(1.25 / 0.25))


def test_reverberate_keeps_length_aligns_and_adds_a_tail():
    rng = np.random.default_rng(0)
    dry = np.concatenate([rng.standard_normal(int(0.3 * SR)), np.zeros(int(0.5 * SR))])
    dry = dry.astype(np.float32)
    rir = make_rir(room(0.6), seed=1)
    wet = reverberate(dry, rir)
    assert wet.dtype == np.float32 and len(wet) == len(dry)
    assert abs(float(wet.mean())) < 1e-6
    after = wet[int(0.3 * SR):]
    assert np.sum(after[: int(0.1 * SR)] ** 2) > 1e-3 * np.sum(wet**2)  # the room rings on
    assert np.sum(after[: int(0.1 * SR)] ** 2) > np.sum(after[-int(0.1 * SR):] ** 2)
    # an impulse comes back as the RIR from its direct path on (aligned) or with its delay
    impulse = np.zeros(SR, dtype=np.float32)
    impulse[100] = 1.0
    t0 = direct_index(rir)
    aligned, delayed = reverberate(impulse, rir), reverberate(impulse, rir, align=False)
    assert int(np.argmax(aligned)) == 100 and int(np.argmax(delayed)) == 100 + t0
    expected = rir[t0: t0 + SR - 100].astype(np.float64)
    shown = aligned[100:100 + len(expected)]  # DC is removed over the whole output: compare AC
    np.testing.assert_allclose(shown - shown.mean(), expected - expected.mean(), atol=1e-5)


def test_describe():
    text = describe(room(0.62))
    match = re.fullmatch(r"rt60=(\d\.\d\d);drr=(-?\d+\.\d);d=(\d+\.\d\d);room=6\.0x5\.0x3\.0", text)
    assert match, text
    assert float(match[1]) == 0.62 and float(match[2]) == pytest.approx(room(0.62).drr_db, abs=0.05)
    assert "," not in text  # safe in a CSV manifest
    assert ";drr=1.3;" in describe(room(0.62), drr_db=1.26)  # the measured value when given


@pytest.mark.parametrize("call, needle", [
    (lambda: make_rir(room(), 0, which="music"), "music"),
    (lambda: make_rir(room(), -1), "seed"),
    (lambda: draw_room(np.random.default_rng(0), rt60_range=(0.9, 0.3)), "rt60"),
    (lambda: make_rir(Room(0.5, (3.0, 3.0, 3.0), (1.0, 1.0, 1.0), (4.0, 1.0, 1.0),
                           (2.0, 2.0, 2.0)), 0), "inside"),
    (lambda: make_rir(Room(0.05, (10.0, 8.0, 4.0), (2.0, 2.0, 1.0), (3.0, 3.0, 1.0),
                           (4.0, 4.0, 1.0)), 0), "too large for an RT60 of 0.05 s"),
])
def test_bad_input_raises_kdsd_error(call, needle):
    with pytest.raises(KdsdError, match=needle):
        call()
