"""Speaker similarity: cosine similarity of resemblyzer (0.1.4) d-vectors, from the
``pretrained.pt`` GE2E speaker encoder inside the package (nothing is downloaded).

Each clip goes through resemblyzer's own ``preprocess_wav`` (volume normalised to -30 dBFS,
long pauses cut by webrtcvad), as the encoder was trained on, then ``embed_utterance``. The
embeddings are unit length, so their dot product is the cosine (1 = the same voice print).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kdsd.errors import KdsdError

SAMPLE_RATE = 16_000
WEIGHTS_FILE = "pretrained.pt"

_encoder = None  # (pid, VoiceEncoder): loaded once per process, a forked worker makes its own


def _get_encoder():
    global _encoder
    if _encoder is None or _encoder[0] != os.getpid():
        try:
            import resemblyzer
        except ImportError:
            raise KdsdError("speaker similarity: resemblyzer is not installed (pin resemblyzer==0.1.4)") from None
        weights = Path(resemblyzer.__file__).parent / WEIGHTS_FILE
        if not weights.is_file():
            raise KdsdError(f"speaker similarity: {weights} is missing (reinstall resemblyzer==0.1.4)")
        _encoder = (os.getpid(), resemblyzer.VoiceEncoder("cpu", weights_fpath=weights, verbose=False))
    return _encoder[1]


def embed(wave: np.ndarray) -> np.ndarray:
    from resemblyzer import preprocess_wav
    speech = preprocess_wav(np.asarray(wave, np.float32))  # already at the encoder's 16 kHz
    if speech.size == 0:
        raise ValueError("no speech left after voice-activity trimming")
    return _get_encoder().embed_utterance(speech)


def speaker_similarity(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(np.dot(embed(reference), embed(estimate)))
