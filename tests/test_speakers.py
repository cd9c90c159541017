"""Speaker pools and audible distinctness of every synthetic speaker (real TTS engines)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from kdsd.corpus.speakers import (
    MIN_ENVELOPE_DB,
    MIN_F0_SEMITONES,
    POOLS,
    SPEAKERS,
    distinguishable,
    signature_distance,
    speakers_in,
    voice_signature,
    yin_f0,
)
from kdsd.corpus.tts import Voice, synthesize
from kdsd.errors import KdsdError

SR = 16_000
# ~2.3 s, mostly voiced: enough voiced frames for a stable median F0 on every engine
# ("The quick brown fox." leaves Piper with ~10 voiced frames).
SENTENCE = "A bright morning sun warmed the quiet valley."


def accent(speaker) -> str:
    return speaker.voice.name.partition("+")[0] if speaker.voice.engine == "espeak" else "-"


def variant(speaker) -> str:
    return speaker.voice.name.partition("+")[2] if speaker.voice.engine == "espeak" else "-"


def family(speaker) -> str:
    """Voice family: Piper joe; eSpeak classic male / classic female / Klatt / other variants."""
    v = variant(speaker)
    if speaker.voice.engine == "piper":
        return "piper"
    if v.startswith("klatt"):
        return "klatt"
    return v.rstrip("0123456789") if v.rstrip("0123456789") in ("m", "f") else v


@pytest.fixture(scope="module")
def signatures() -> dict[str, np.ndarray]:
    """One signature per speaker, all on the same sentence (~8 s for 30 speakers)."""
    return {s.speaker_id: voice_signature(synthesize(s.voice, SENTENCE)) for s in SPEAKERS}


def test_pools_sizes_and_ids():
    assert POOLS == ("train", "test", "test_speaker")
    assert {s.pool for s in SPEAKERS} == set(POOLS)
    assert len(SPEAKERS) >= 24
    assert len({s.speaker_id for s in SPEAKERS}) == len(SPEAKERS)
    assert len({s.voice for s in SPEAKERS}) == len(SPEAKERS)
    assert len(speakers_in("train")) >= 16
    assert len(speakers_in("test")) >= 4 and len(speakers_in("test_speaker")) >= 4
    assert sum(len(speakers_in(p)) for p in POOLS) == len(SPEAKERS)  # pools partition SPEAKERS


def test_unknown_pool_raises():
    with pytest.raises(KdsdError, match="test_speaker"):
        speakers_in("valid")


def test_train_uses_both_engines_and_test_matches_its_families():
    train, test = speakers_in("train"), speakers_in("test")
    assert {s.voice.engine for s in train} == {"piper", "espeak"}
    assert {s.voice.engine for s in test} == {"piper", "espeak"}
    train_families = {(s.voice.engine, accent(s), family(s)) for s in train}
    assert {(s.voice.engine, accent(s), family(s)) for s in test} <= train_families


def test_test_speaker_voices_never_appear_in_train():
    train, ood = speakers_in("train"), speakers_in("test_speaker")
    train_voices = {(s.voice.engine, s.voice.name) for s in train}
    assert not train_voices & {(s.voice.engine, s.voice.name) for s in ood}
    # stronger: neither the accent nor the variant of an OOD speaker is used in training
    assert not {accent(s) for s in train} & {accent(s) for s in ood}
    assert not {variant(s) for s in train} & {variant(s) for s in ood}
    assert not {family(s) for s in train} & {family(s) for s in ood}


def test_no_whisper_or_pitchless_variants_in_train_or_test():
    for s in speakers_in("train") + speakers_in("test"):
        assert variant(s) not in {"whisper", "whisperf", "croak"}, s.speaker_id


def test_every_pair_of_speakers_is_distinguishable(signatures):
    assert all(np.isfinite(sig).all() for sig in signatures.values())
    clashes = []
    for a, b in itertools.combinations(signatures, 2):
        if not distinguishable(signatures[a], signatures[b]):
            df0, denv = signature_distance(signatures[a], signatures[b])
            clashes.append(f"{a}/{b}: {df0:.2f} st, {denv:.2f} dB")
    assert not clashes, (f"speakers closer than {MIN_F0_SEMITONES} st in F0 and "
                         f"{MIN_ENVELOPE_DB} dB in envelope: {clashes}")


def test_measured_f0_follows_piper_pitch_shift(signatures):
    # not exact: Piper's intonation itself moves a little with length_scale (the rate)
    piper = [s for s in SPEAKERS if s.voice.engine == "piper"]
    for a, b in itertools.combinations(piper, 2):
        measured = signatures[a.speaker_id][0] - signatures[b.speaker_id][0]
        assert measured == pytest.approx(a.voice.pitch - b.voice.pitch, abs=1.0), (a, b)


@pytest.mark.parametrize("f0", [70.0, 123.0, 210.0, 330.0])
def test_yin_on_a_glottal_pulse_train(f0):
    t = np.arange(int(0.5 * SR)) / SR
    phase = (f0 * t) % 1.0
    wave = np.exp(-phase * 8.0) - np.exp(-8.0) / 8.0  # decaying pulse each period, rich harmonics
    estimates = yin_f0(wave, SR)
    assert len(estimates) > 30
    assert np.median(estimates) == pytest.approx(f0, rel=0.01)


def test_yin_finds_no_voicing_in_noise_or_silence():
    rng = np.random.default_rng(0)
    assert len(yin_f0(rng.standard_normal(SR), SR)) < 5
    assert len(yin_f0(np.zeros(SR), SR)) == 0
    assert np.isnan(voice_signature(np.zeros(SR))[0])


def test_envelope_threshold_exceeds_within_speaker_sentence_variation():
    """The calibration behind MIN_ENVELOPE_DB: one voice on different sentences stays mostly
    below it (so exceeding it on the *same* sentence means a different timbre)."""
    sentences = [SENTENCE, "She asked whether the train would leave on time.",
                 "Many old books were stored in the wooden cabinet."]
    for voice in (Voice("espeak", "en-us+m1"), Voice("piper", "en_US-joe-medium")):
        sigs = [voice_signature(synthesize(voice, text)) for text in sentences]
        env = [signature_distance(a, b)[1] for a, b in itertools.combinations(sigs, 2)]
        f0 = [signature_distance(a, b)[0] for a, b in itertools.combinations(sigs, 2)]
        assert np.median(env) < MIN_ENVELOPE_DB, (voice, env)
        assert max(f0) < 2 * MIN_F0_SEMITONES, (voice, f0)
