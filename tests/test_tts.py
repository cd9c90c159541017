"""kdsd.corpus.tts on the real engines (Piper joe voice, bundled eSpeak NG): no mocks."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from kdsd.corpus.tts import ENGINES, Voice, espeak_voice_variants, synthesize
from kdsd.errors import KdsdError

SR = 16_000
TEXT = "The quick brown fox jumps over the lazy dog."  # 9 words
NAMES = {"piper": "en_US-joe-medium", "espeak": "en-us+m3"}
REPO = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=None)
def speak(engine: str, pitch: float = 0.0, rate: float = 1.0, name: str | None = None
          ) -> np.ndarray:
    """Cached synthesis: several tests share each utterance (Piper costs ~0.3 s a call)."""
    wave = synthesize(Voice(engine, name or NAMES[engine], pitch, rate), TEXT)
    wave.setflags(write=False)
    return wave


def sha(wave: np.ndarray) -> str:
    return hashlib.sha256(wave.tobytes()).hexdigest()


def f0_estimate(wave: np.ndarray, sr: int = SR) -> float:
    """Median autocorrelation F0 (60-400 Hz) over loud, clearly periodic 40 ms frames."""
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    lags = np.arange(sr // 400, sr // 60 + 1)
    frames = np.lib.stride_tricks.sliding_window_view(wave, frame)[::hop].astype(np.float64)
    rms = np.sqrt((frames**2).mean(axis=1))
    f0s = []
    for x in frames[rms > 0.3 * rms.max()]:
        x = x - x.mean()
        ac = np.correlate(x, x, "full")[frame - 1:]
        ac = ac / ac[0]
        best = lags[np.argmax(ac[lags])]
        if ac[best] > 0.5:  # voiced
            f0s.append(sr / best)
    assert len(f0s) >= 10, "too few voiced frames for an F0 estimate"
    return float(np.median(f0s))


@pytest.mark.parametrize("engine", ENGINES)
def test_output_format_duration_and_level(engine):
    wave = speak(engine)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 1.5 < len(wave) / SR < 5.0, f"{len(wave) / SR:.2f} s for a 9-word sentence"
    assert np.isfinite(wave).all()
    assert np.sqrt(np.mean(wave**2)) > 0.02
    assert abs(float(wave.mean())) < 1e-4  # DC removed


@pytest.mark.parametrize("engine", ENGINES)
def test_edges_trimmed_to_about_50_ms(engine):
    wave = speak(engine)
    peak = np.abs(wave).max()
    edge = int(0.045 * SR)
    assert np.abs(wave[:edge]).max() < 0.05 * peak and np.abs(wave[-edge:]).max() < 0.05 * peak
    # ...but speech starts/ends within ~100 ms of each end: the long engine silences are gone
    window = int(0.1 * SR)
    assert np.abs(wave[:window]).max() > 0.005 * peak
    assert np.abs(wave[-window:]).max() > 0.005 * peak


def test_sample_rate_argument():
    wave8k = synthesize(Voice("espeak", "en-us+m3"), TEXT, sample_rate=8000)
    assert len(wave8k) == pytest.approx(len(speak("espeak")) / 2, rel=0.01)


@pytest.mark.parametrize("engine", ENGINES)
def test_bit_identical_on_repeat_and_independent_of_history(engine):
    first = speak(engine)
    synthesize(Voice("espeak", "en+f3", pitch=3.0, rate=1.2), "Something else in between.")
    synthesize(Voice("piper", NAMES["piper"], pitch=-2.0), "Something else in between.")
    again = synthesize(Voice(engine, NAMES[engine]), TEXT)
    assert again.tobytes() == first.tobytes()


def test_bit_identical_in_a_fresh_process():
    code = (
        "import hashlib; from kdsd.corpus.tts import Voice, synthesize\n"
        f"for engine, name in {sorted(NAMES.items())!r}:\n"
        f"    wave = synthesize(Voice(engine, name), {TEXT!r})\n"
        "    print(hashlib.sha256(wave.tobytes()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, timeout=120).stdout.split()
    assert out == [sha(speak("espeak")), sha(speak("piper"))]


def test_espeak_variants_differ():
    m3, f2 = speak("espeak"), speak("espeak", name="en-us+f2")
    assert len(m3) != len(f2) or not np.array_equal(m3, f2)
    assert f0_estimate(f2) > 1.3 * f0_estimate(m3)  # female variant is clearly higher


@pytest.mark.parametrize("engine", ENGINES)
def test_rate_changes_duration(engine):
    fast, normal, slow = (len(speak(engine, rate=r)) for r in (1.3, 1.0, 0.8))
    assert fast < normal < slow
    assert fast / slow == pytest.approx(0.8 / 1.3, rel=0.12)


@pytest.mark.parametrize("engine", ENGINES)
def test_pitch_changes_f0_not_rate(engine):
    high, low = speak(engine, pitch=4.0), speak(engine, pitch=-4.0)
    ratio = f0_estimate(high) / f0_estimate(low)
    assert ratio == pytest.approx(2 ** (8 / 12), rel=0.1)  # +-4 semitones = 1.59x
    assert len(high) / len(low) == pytest.approx(1.0, rel=0.12)  # speaking rate kept


def test_espeak_voice_variants_listed():
    variants = espeak_voice_variants()
    assert variants == sorted(variants)
    expected = {f"m{i}" for i in range(1, 8)} | {f"f{i}" for i in range(1, 6)} | {"klatt"}
    assert expected <= set(variants)


@pytest.mark.parametrize("voice, text, needle", [
    (Voice("festival", "kal"), TEXT, "piper, espeak"),
    (Voice("espeak", "en-us+m3"), "", "empty text"),
    (Voice("piper", "en_US-joe-medium"), "   \n", "empty text"),
    (Voice("espeak", "xx-nowhere"), TEXT, "'xx-nowhere'"),
    (Voice("espeak", "en-us+nosuchvariant"), TEXT, "'en-us+nosuchvariant'"),
    (Voice("piper", "en_GB-nobody"), TEXT, "'en_GB-nobody'"),
    (Voice("espeak", "en-us", pitch=20.0), TEXT, "pitch"),
    (Voice("piper", "en_US-joe-medium", rate=0.0), TEXT, "rate"),
    (Voice("espeak", "en-us", pitch=-9.0), TEXT, "pitch"),
    # pitch-down by resampling must be made up by a faster model: beyond its limit, say so
    (Voice("piper", "en_US-joe-medium", pitch=-8.0, rate=1.5), TEXT, "at most rate 1.12"),
])
def test_bad_input_raises_one_line_kdsd_error(voice, text, needle):
    with pytest.raises(KdsdError) as info:
        synthesize(voice, text)
    message = str(info.value)
    assert needle in message and "\n" not in message
