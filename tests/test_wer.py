"""Word error rate with pocketsphinx's packaged en-us model on real TTS speech (no mocks)."""
import numpy as np
import pytest

from kdsd.corpus.tts import Voice, synthesize
from kdsd.metrics import asr

# A corpus-style sentence (kdsd.corpus.text) the pinned recogniser gets right on the Piper voice.
TEXT = "Every plumber in Shanghai sneezed awkwardly."


@pytest.fixture(scope="module")
def clean():
    return synthesize(Voice("piper", "en_US-joe-medium"), TEXT)


def _at_snr(clean, snr_db, seed=1):
    noise = np.random.default_rng(seed).standard_normal(clean.size).astype(np.float32)
    return clean + noise * np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)


def test_clean_tts_sentence_is_recognised_exactly(clean):
    assert asr.transcribe(clean) == "every plumber in shanghai sneezed awkwardly"
    assert asr.word_error_rate(TEXT, clean) == 0.0


def test_noise_raises_the_error_rate(clean):
    assert asr.word_error_rate(TEXT, _at_snr(clean, 20.0)) > 0.0
    assert asr.word_error_rate(TEXT, _at_snr(clean, 0.0)) >= 0.5


def test_silence_gets_no_word_right():
    # Without the second pass the recogniser may hallucinate a word on digital silence ("pitt").
    assert len(asr.transcribe(np.zeros(16_000, np.float32)).split()) <= 1
    assert asr.word_error_rate(TEXT, np.zeros(16_000, np.float32)) == 1.0


@pytest.mark.parametrize("text", ["", "  ", "?!"])
def test_missing_reference_text_is_refused(clean, text):
    with pytest.raises(ValueError, match="no reference text"):
        asr.word_error_rate(text, clean)


def test_text_normalisation_keeps_words_and_apostrophes():
    assert asr.normalise("We'll meet, at 8 -- O'Neil's STATION!") == "we'll meet at 8 o'neil's station"


def test_decoder_is_loaded_once_per_process(clean):
    asr.transcribe(clean)
    first = asr._get_decoder()
    asr.transcribe(clean)
    assert asr._get_decoder() is first


def test_a_transcript_does_not_depend_on_what_the_process_decoded_before(monkeypatch, clean):
    # Three noisy sentences decoded fresh, then after the others in both orders: a scoring
    # group decodes many models' outputs in one process, and its WER must equal scoring alone.
    others = ["The quiet farmer painted seven green boats.", "A tired nurse opened the heavy window slowly."]
    speech = [clean] + [synthesize(Voice("piper", "en_US-joe-medium"), t) for t in others]
    clips = [_at_snr(wave, 5.0, seed) for seed, wave in enumerate(speech)]
    alone = []
    for clip in clips:
        monkeypatch.setattr(asr, "_decoder", None)
        alone.append(asr.transcribe(clip))
    assert [asr.transcribe(c) for c in clips] == alone
    assert [asr.transcribe(c) for c in clips[::-1]] == alone[::-1]


def test_a_missing_model_file_is_named(monkeypatch, clean):
    from kdsd.errors import KdsdError

    monkeypatch.setattr(asr, "MODEL_FILES", {**asr.MODEL_FILES, "lm": "absent.lm.bin"})
    monkeypatch.setattr(asr, "_decoder", None)
    with pytest.raises(KdsdError, match=r"model is incomplete, missing .*en-us/absent\.lm\.bin"):
        asr.transcribe(clean)
