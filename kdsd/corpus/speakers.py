"""Synthetic speakers: a TTS engine + voice + pitch (semitones) + speaking-rate factor.

Speakers are split into two disjoint pools: ``train`` (used by `train` and `valid`) and
``test`` (used by every test set), so test speech always comes from unseen speakers. Piper
speakers differ by a resampling pitch shift that also moves the formants (a different vocal
tract length); eSpeak NG speakers use different voice variants, which change the glottal source
and formants, plus their own pitch and rate.
"""
from __future__ import annotations

from dataclasses import dataclass

from kdsd.corpus.tts import Voice


@dataclass(frozen=True)
class Speaker:
    speaker_id: str
    voice: Voice
    pool: str  # "train" or "test"


def _piper(pitch: float, rate: float) -> Voice:
    return Voice("piper", "en_US-joe-medium", pitch=pitch, rate=rate)


def _espeak(name: str, pitch: float, rate: float) -> Voice:
    return Voice("espeak", name, pitch=pitch, rate=rate)


SPEAKERS: tuple[Speaker, ...] = (
    Speaker("piper_joe_p0", _piper(0.0, 1.0), "train"),
    Speaker("piper_joe_m3", _piper(-3.0, 0.95), "train"),
    Speaker("piper_joe_p4", _piper(4.0, 1.05), "train"),
    Speaker("espeak_us_m1", _espeak("en-us+m1", 0.0, 1.0), "train"),
    Speaker("espeak_us_f2", _espeak("en-us+f2", 2.0, 0.95), "train"),
    Speaker("espeak_en_m3", _espeak("en+m3", -2.0, 1.1), "train"),
    Speaker("espeak_us_f4", _espeak("en-us+f4", 0.0, 1.0), "train"),
    Speaker("piper_joe_p2", _piper(2.0, 0.9), "test"),
    Speaker("piper_joe_m5", _piper(-5.0, 1.1), "test"),
    Speaker("espeak_us_m2", _espeak("en-us+m2", 1.0, 0.9), "test"),
    Speaker("espeak_en_f3", _espeak("en+f3", -1.0, 1.05), "test"),
)


def speakers_in(pool: str) -> list[Speaker]:
    return [s for s in SPEAKERS if s.pool == pool]
