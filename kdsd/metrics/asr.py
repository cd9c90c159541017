"""Word error rate with an offline recogniser: pocketsphinx 5.1.1 and the en-us acoustic model,
dictionary and 3-gram language model inside its wheel (nothing is downloaded), scored by jiwer.

Decoding settings are pinned here (model files named explicitly, the library's default beams
of the pinned version, plus the search caps in ``SEARCH_CAPS``), so a WER moves only with the
audio. Text on both sides is lower-cased and stripped of punctuation other than apostrophes.
A transcript in another language than the model's (a manifest's ``language`` column) gets no WER.
"""
from __future__ import annotations

import os
import re

import jiwer
import numpy as np

from kdsd.errors import KdsdError

SAMPLE_RATE = 16_000
MODEL_DIR = "en-us"
MODEL_FILES = {"hmm": "en-us", "lm": "en-us.lm.bin", "dict": "cmudict-en-us.dict"}
# Caps on active HMMs and words per frame, a 5-frame phone-loop lookahead and no second
# (flat-lexicon) pass: noisy input otherwise floods the search. Measured on 16 Piper sentences
# (kdsd.corpus.text): CPU per utterance clean / 15 dB / 5 dB white noise 0.32 / 0.68 / 0.77 s
# with the second pass on (the library default), 0.24 / 0.38 / 0.50 s without; mean WER
# 0.30 / 0.82 / 0.92 with it, 0.32 / 0.80 / 0.91 without.
SEARCH_CAPS = {"maxhmmpf": 3000, "maxwpf": 10, "pl_window": 5, "fwdflat": False}
# The languages the packaged model transcribes (ISO 639-1, as a manifest's `language` column).
LANGUAGES = ("en",)

_decoder = None  # (pid, Decoder): loaded once per process, a forked worker makes its own


def _model_config() -> dict:
    try:
        from pocketsphinx import get_model_path
    except ImportError:
        raise KdsdError("WER: pocketsphinx is not installed (pin pocketsphinx==5.1.1)") from None
    root = os.path.join(get_model_path(), MODEL_DIR)
    config = {key: os.path.join(root, name) for key, name in MODEL_FILES.items()}
    missing = [path for path in config.values() if not os.path.exists(path)]
    if missing:
        raise KdsdError(f"WER: pocketsphinx's packaged model is incomplete, missing {', '.join(missing)}")
    return config


def _get_decoder():
    global _decoder
    if _decoder is None or _decoder[0] != os.getpid():
        from pocketsphinx import Decoder
        _decoder = (os.getpid(), Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **SEARCH_CAPS,
                                          **_model_config()))
    return _decoder[1]


def transcribe(wave: np.ndarray) -> str:
    """The recogniser's words for a 16 kHz float mono clip ('' when it hears none)."""
    pcm = (np.clip(np.asarray(wave, np.float64), -1.0, 1.0) * 32767).astype("<i2").tobytes()
    decoder = _get_decoder()
    # The feature front end keeps state from the last utterance (cmn="none", set_cmn and
    # remove_noise=False did not clear it; reinit_feat does), so a clip's words would depend on
    # what this process decoded before it (a scoring group's other models).
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm, no_search=False, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return normalise(hypothesis.hypstr) if hypothesis is not None else ""


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def knows_language(language: str | None) -> bool:
    """Whether the recogniser transcribes ``language`` (a manifest's ISO 639-1 code; a region
    subtag such as en-GB is allowed). None: the manifest has no language column, so its text is
    taken as English, as before the column; an empty cell names no language."""
    if language is None:
        return True
    return str(language).strip().lower().replace("_", "-").split("-")[0] in LANGUAGES


def word_error_rate(reference_text: str, wave: np.ndarray, language: str | None = None) -> float:
    """WER (0 = every word right; can exceed 1 with insertions) of ``wave`` against the text, in
    ``language`` (see :func:`knows_language`); ValueError (the NaN's reason) without text or in
    a language the recogniser does not know."""
    reference = normalise(reference_text)
    if not reference:
        raise ValueError("no reference text in the manifest")
    if not knows_language(language):
        named = f"transcript in {language!r}" if language else "no transcript language in the manifest"
        raise ValueError(f"{named}, the recogniser knows {', '.join(LANGUAGES)}")
    return float(jiwer.wer(reference, transcribe(wave) or ""))
