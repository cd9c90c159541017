"""STOI and ESTOI composed from pystoi's steps (kdsd.metrics.intelligibility) equal pystoi.stoi on
corpus-like speech: TTS sentences and speech-like signals of several lengths, with digital
silence, quiet stretches and the estimates a denoiser gives; the clean side cached across
estimates, across more utterances than the cache holds, and at other sample rates."""
import warnings

import numpy as np
import pytest
from pystoi import stoi as pystoi

from kdsd.metrics import intelligibility as intel
from kdsd.metrics.intelligibility import Intelligibility, intelligibility

SR = 16_000
TOLERANCE = 1e-12  # ESTOI: pystoi adds EPS-scaled random noise (about 1e-16 apart between calls)


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Voiced syllables at a drifting pitch, with pauses of digital silence and a quiet stretch."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 100 + 40 * rng.uniform() + 20 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) * rng.uniform(0.2, 1.0) / k for k in range(1, 30))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2.5, 4.5) * t), 0, None) ** 2
    wave = 0.1 * voiced * envelope + 3e-3 * rng.standard_normal(t.size) * envelope
    wave[int(0.35 * t.size):int(0.5 * t.size)] = 0.0          # a pause of digital silence
    wave[int(0.7 * t.size):int(0.8 * t.size)] *= 1e-3         # a quiet stretch (partly removed)
    return wave.astype(np.float32)


def estimates(clean: np.ndarray, seed: int) -> list[np.ndarray]:
    """What scoring meets: the noisy input at two SNRs, a masked (denoised-like) one, a scaled copy."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(clean.size).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2))
    spectrum = np.fft.rfft(clean + 0.5 * noise)
    masked = np.fft.irfft(spectrum * (0.3 + 0.7 * rng.uniform(size=spectrum.size)), clean.size)
    return [clean + noise, clean + 0.1 * noise, masked.astype(np.float32), 0.5 * clean]


@pytest.fixture(scope="module")
def utterances():
    """Twelve clean signals (more than the cache holds): speech-like ones of 1.1-6 s (two of the
    same length) and TTS sentences between pauses."""
    from kdsd.corpus.tts import Voice, synthesize

    lengths = (1.1, 2.0, 2.9, 3.3, 4.1, 6.0, 2.5, 3.7, 2.0)
    waves = [speech_like(seconds, seed) for seed, seconds in enumerate(lengths)]
    for text in ("Every plumber in Shanghai sneezed awkwardly.", "Go now.", "The river froze before dawn."):
        tts = synthesize(Voice("piper", "en_US-joe-medium"), text)
        waves.append(np.concatenate([np.zeros(4000, np.float32), tts, np.zeros(2500, np.float32)]))
    assert len(waves) > intel.CACHE_SIZE
    return waves


def reference(clean, estimate, sample_rate=SR):
    return {"stoi": pystoi(clean, estimate, sample_rate), "estoi": pystoi(clean, estimate, sample_rate, extended=True)}


def assert_equal_to_pystoi(ours: dict, theirs: dict):
    for metric, value in theirs.items():
        assert abs(ours[metric] - value) <= TOLERANCE, (metric, ours[metric], value)


def test_equal_to_pystoi_on_every_estimate_with_the_clean_side_cached(utterances):
    """Utterance after utterance, each with its estimates (the grouped scoring order), then all
    again in another order: cache hits, evictions and fresh clean sides all give pystoi's values."""
    scorer = Intelligibility(SR)
    pairs = [(clean, estimate) for i, clean in enumerate(utterances) for estimate in estimates(clean, i)]
    for clean, estimate in pairs + pairs[::-3]:
        assert_equal_to_pystoi(scorer.scores(clean, estimate), reference(clean, estimate))
    assert len(scorer.cache) == intel.CACHE_SIZE


def test_stoi_alone_is_bit_identical_and_one_metric_can_be_asked_for(utterances):
    """STOI has no random term: the same arithmetic gives the same bits."""
    clean = utterances[3]
    noisy = estimates(clean, 3)[0]
    assert intelligibility(clean, noisy, SR, ("stoi",)) == {"stoi": pystoi(clean, noisy, SR)}
    assert set(intelligibility(clean, noisy, SR, ("estoi",))) == {"estoi"}


@pytest.mark.parametrize("sample_rate", [8_000, 10_000, 22_050])
def test_other_sample_rates_equal_pystoi(utterances, sample_rate):
    from scipy.signal import resample_poly

    clean = resample_poly(utterances[2], sample_rate, SR).astype(np.float32)
    for estimate in estimates(clean, 5):
        assert_equal_to_pystoi(intelligibility(clean, estimate, sample_rate), reference(clean, estimate, sample_rate))


def test_too_few_frames_and_no_frame_behave_as_pystoi():
    """Under 30 frames once silence is removed: pystoi's 1e-5 and warning. No whole frame at all:
    pystoi's own error."""
    short = speech_like(1.0, 7)[:3000]
    with pytest.warns(RuntimeWarning, match="Not enough STFT frames"):
        assert intelligibility(short, short * 0.5, SR) == {"stoi": 1e-5, "estoi": 1e-5}
    tiny = short[:300]
    with warnings.catch_warnings(), pytest.raises(ValueError) as ours:
        intelligibility(tiny, tiny, SR)
    with pytest.raises(ValueError) as theirs:
        pystoi(tiny, tiny, SR)
    assert type(ours.value) is type(theirs.value)
    with pytest.raises(ValueError, match="same length"):
        intelligibility(short, short[:-1], SR)


def test_score_tables_keep_pystoi_values(utterances):
    """The scoring path (score_many: STOI and ESTOI in one call beside the other metrics) writes
    what pystoi gives."""
    from kdsd.metrics.scoring import score_many

    items = [(f"u{i}", clean, estimates(clean, i)[0], "") for i, clean in enumerate(utterances[:4])]
    table = score_many(items, workers=1, tier="core").set_index("utt_id")
    for utt_id, clean, estimate, _ in items:
        assert_equal_to_pystoi(table.loc[utt_id, ["stoi", "estoi"]].to_dict(), reference(clean, estimate))


def test_with_the_same_random_draws_estoi_is_bit_identical(utterances):
    """pystoi's only random step is row_col_normalize's EPS noise from numpy's global generator:
    from the same generator state, the vectorised row_col_normalize gives the same bits, and so
    does a first ESTOI (clean side drawn first, as pystoi does)."""
    from pystoi import utils

    from kdsd.metrics.intelligibility import row_col_normalize

    segments = intel._segments(intel._resampler(SR)(utterances[4]))
    np.random.seed(7)
    theirs = utils.row_col_normalize(segments)
    np.random.seed(7)
    assert np.array_equal(row_col_normalize(segments), theirs)
    for i in (0, 9):
        clean = utterances[i]
        noisy = estimates(clean, i)[0]
        np.random.seed(i)
        theirs = pystoi(clean, noisy, SR, extended=True)
        np.random.seed(i)
        assert Intelligibility(SR).scores(clean, noisy, ("estoi",)) == {"estoi": theirs}
