"""Speaker similarity with resemblyzer's packaged encoder on real TTS voices (no mocks)."""
import numpy as np
import pytest

from kdsd.corpus.tts import Voice, synthesize
from kdsd.metrics import speaker

PIPER = Voice("piper", "en_US-joe-medium")
TEXT = "She opened the window and the cold air came into the room."


@pytest.fixture(scope="module")
def clean():
    return synthesize(PIPER, TEXT)


def _at_snr(clean, snr_db, seed=1):
    noise = np.random.default_rng(seed).standard_normal(clean.size).astype(np.float32)
    return clean + noise * np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)


def test_identical_signals_are_the_same_voice(clean):
    assert speaker.speaker_similarity(clean, clean) == pytest.approx(1.0, abs=1e-5)


def test_noise_lowers_similarity(clean):
    mild, strong = (speaker.speaker_similarity(clean, _at_snr(clean, snr)) for snr in (20.0, 0.0))
    assert 1.0 > mild > strong


def test_same_voice_is_closer_than_another_voice(clean):
    same_voice = synthesize(PIPER, "We will meet at the station tomorrow morning.")
    other_voice = synthesize(Voice("espeak", "en-us+f3"), TEXT)
    assert speaker.speaker_similarity(clean, same_voice) > speaker.speaker_similarity(clean, other_voice) + 0.1


def test_silence_is_refused_with_a_reason(clean):
    with pytest.raises(ValueError, match="no speech"):
        speaker.speaker_similarity(clean, np.zeros(clean.size, np.float32))


def test_encoder_is_loaded_once_per_process(clean):
    speaker.embed(clean)
    assert speaker._get_encoder() is speaker._get_encoder()


def test_missing_weights_are_named(monkeypatch, clean):
    from kdsd.errors import KdsdError

    monkeypatch.setattr(speaker, "WEIGHTS_FILE", "absent.pt")
    monkeypatch.setattr(speaker, "_encoder", None)
    with pytest.raises(KdsdError, match=r"resemblyzer/absent\.pt is missing"):
        speaker.embed(clean)
