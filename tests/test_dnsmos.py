"""DNSMOS P.835 and P.808 on real TTS speech with the real ONNX models, against speechmos's own code."""
import importlib.util
from importlib import resources

import numpy as np
import pytest

from kdsd.audio import resample
from kdsd.corpus.tts import Voice, synthesize
from kdsd.metrics import dnsmos as dnsmos_module
from kdsd.metrics.dnsmos import DNSMOS_COLUMNS, P808_COLUMN, WINDOW, _windows, dnsmos

SR = 16_000
TEXT = "The quick brown fox jumps over the lazy dog near the river bank."


@pytest.fixture(scope="module")
def utterance():
    """The sentence as spoken (about 3.5 s: looped to 4 windows by the reference scheme)."""
    return synthesize(Voice("piper", "en_US-joe-medium"), TEXT)


@pytest.fixture(scope="module")
def speech(utterance):
    """The sentence padded to 4.6 s: looping doubles it to 9.2 s, one window, so tests stay fast."""
    return np.concatenate([utterance, np.zeros(int(4.6 * SR) - len(utterance), np.float32)])


@pytest.fixture(scope="module")
def clean_scores(speech):
    return dnsmos(speech)


def _at_snr(clean, snr_db, seed=1):
    noise = np.random.default_rng(seed).standard_normal(clean.size).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    return clean + noise


def test_scores_are_mos_values(clean_scores):
    assert tuple(clean_scores) == DNSMOS_COLUMNS
    assert all(1.0 <= value <= 5.0 for value in clean_scores.values())


def test_deterministic_across_calls_and_sessions(speech, clean_scores, monkeypatch):
    assert dnsmos(speech) == clean_scores
    monkeypatch.setattr(dnsmos_module, "_session", None)  # a fresh session, as in a new process
    assert dnsmos(speech) == clean_scores


def test_one_cached_single_threaded_cpu_session(clean_scores):
    session = dnsmos_module._get_session()
    assert session is dnsmos_module._get_session()
    assert session.get_providers() == ["CPUExecutionProvider"]
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_noise_lowers_bak_and_ovrl(speech, clean_scores):
    # SIG is not asserted: on TTS speech a little white noise can raise it (measured 3.34 -> 3.55).
    snr_20, snr_10, snr_0 = (dnsmos(_at_snr(speech, snr)) for snr in (20.0, 10.0, 0.0))
    assert clean_scores["dnsmos_ovrl"] > snr_0["dnsmos_ovrl"] + 0.5
    assert clean_scores["dnsmos_bak"] > snr_0["dnsmos_bak"] + 1.0
    assert snr_20["dnsmos_bak"] > snr_10["dnsmos_bak"] > snr_0["dnsmos_bak"]
    assert snr_20["dnsmos_bak"] > snr_0["dnsmos_bak"] + 0.5
    assert snr_20["dnsmos_ovrl"] > snr_0["dnsmos_ovrl"]


def test_other_sample_rates_are_resampled(speech, clean_scores):
    scores = dnsmos(resample(speech, SR, 48_000), sample_rate=48_000)
    for name in DNSMOS_COLUMNS:
        assert scores[name] == pytest.approx(clean_scores[name], abs=0.1)


@pytest.mark.parametrize("wave", [np.zeros(SR, np.float32), np.zeros(0, np.float32),
                                  np.full(SR, 1e-7, np.float32),
                                  np.array([0.1, np.nan] * SR, np.float32)],
                         ids=["zeros", "empty", "below-silence-rms", "nan"])
def test_unscorable_input_gives_nan(wave):
    scores = dnsmos(wave)
    assert tuple(scores) == DNSMOS_COLUMNS and all(np.isnan(v) for v in scores.values())


def test_rejects_multichannel_and_integer_input():
    with pytest.raises(ValueError, match="1-D"):
        dnsmos(np.zeros((2, SR), np.float32))
    with pytest.raises(ValueError, match="float"):
        dnsmos(np.zeros(SR, np.int16))


def test_windows_follow_the_reference_scheme():
    # 4 s loops to 16 s: windows start at 0..6 s.
    assert [len(w) for w in _windows(np.zeros(4 * SR, np.float32))] == [WINDOW] * 7
    # 25 s: starts 0..15 s, but the reference's int((i + 9.01) * sr) is one sample short for i >= 7.
    assert len(list(_windows(np.zeros(25 * SR, np.float32)))) == 7


@pytest.fixture
def speechmos_reference():
    """speechmos.dnsmos loaded privately (not left in sys.modules), with the pinned librosa."""
    pytest.importorskip("requests")  # imported, unused, by speechmos.dnsmos
    path = resources.files("speechmos") / "dnsmos.py"
    spec = importlib.util.spec_from_file_location("_speechmos_dnsmos_reference", str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_matches_speechmos_reference(utterance, speechmos_reference):
    ours = dnsmos(utterance)
    reference = speechmos_reference.run(utterance, sr=SR)
    for name, key in zip(DNSMOS_COLUMNS, ("sig_mos", "bak_mos", "ovrl_mos")):
        assert ours[name] == pytest.approx(reference[key], abs=1e-4)


def test_p808_matches_speechmos_reference_and_leaves_p835_unchanged(utterance, speechmos_reference):
    ours = dnsmos(utterance, p808=True)
    reference = speechmos_reference.run(utterance, sr=SR)
    assert ours[P808_COLUMN] == pytest.approx(reference["p808_mos"], abs=1e-4)
    assert {k: ours[k] for k in DNSMOS_COLUMNS} == dnsmos(utterance)


def test_p808_is_a_mos_that_noise_lowers(speech):
    clean, noisy = (dnsmos(wave, p808=True)[P808_COLUMN] for wave in (speech, _at_snr(speech, 0.0)))
    assert 1.0 <= noisy < clean - 0.3 <= 5.0
    assert np.isnan(dnsmos(np.zeros(SR, np.float32), p808=True)[P808_COLUMN])
