"""Metrics on signals with known answers, against the reference packages."""
import numpy as np
import pytest
import torch

from kdsd.metrics.intrusive import estoi_score, pesq_nb, pesq_wb, score_utterance, si_sdr, stoi_score
from kdsd.losses import si_sdr as si_sdr_torch

SR = 16_000


def _speech_like(seconds=3.0, seed=0):
    """A voiced, syllable-rate modulated harmonic signal (PESQ's VAD needs speech-like input)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 2
    return (0.1 * voiced * envelope + 1e-4 * rng.standard_normal(t.size)).astype(np.float32)


def _at_snr(clean, snr_db, seed=1):
    noise = np.random.default_rng(seed).standard_normal(clean.size).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    return clean + noise


def test_si_sdr_scaled_copy_is_very_high_and_scale_invariant():
    clean = _speech_like()
    assert si_sdr(clean, clean) > 100
    assert si_sdr(clean, 0.3 * clean) > 100


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 20.0])
def test_si_sdr_of_additive_noise_equals_its_snr(snr):
    clean = _speech_like()
    assert si_sdr(clean, _at_snr(clean, snr)) == pytest.approx(snr, abs=0.2)


def test_training_si_sdr_matches_metric():
    clean = _speech_like()
    noisy = _at_snr(clean, 5.0)
    torch_value = si_sdr_torch(torch.from_numpy(noisy)[None], torch.from_numpy(clean)[None]).item()
    assert torch_value == pytest.approx(si_sdr(clean, noisy), abs=1e-3)


def test_pesq_and_stoi_rank_clean_above_noisy():
    clean = _speech_like()
    noisy = _at_snr(clean, 0.0)
    assert pesq_wb(clean, clean) > 4.4
    assert stoi_score(clean, clean) == pytest.approx(1.0, abs=1e-6)
    assert pesq_wb(clean, noisy) < 2.0
    assert stoi_score(clean, noisy) < 0.9
    assert pesq_wb(clean, _at_snr(clean, 20.0)) > pesq_wb(clean, noisy)


def test_narrow_band_pesq_and_extended_stoi_rank_clean_above_noisy():
    clean = _speech_like()
    noisy, cleaner = _at_snr(clean, 0.0), _at_snr(clean, 20.0)
    assert pesq_nb(clean, clean) > 4.0 and pesq_nb(clean, noisy) < pesq_nb(clean, cleaner)
    assert estoi_score(clean, clean) == pytest.approx(1.0, abs=1e-6)
    assert estoi_score(clean, noisy) < estoi_score(clean, cleaner) < 1.0


def test_metrics_match_reference_packages():
    from pesq import pesq
    from pystoi import stoi

    clean = _speech_like()
    noisy = _at_snr(clean, 5.0)
    assert pesq_wb(clean, noisy) == pytest.approx(pesq(SR, clean, noisy, "wb"), abs=1e-6)
    assert pesq_nb(clean, noisy) == pytest.approx(pesq(SR, clean, noisy, "nb"), abs=1e-6)
    assert stoi_score(clean, noisy) == pytest.approx(stoi(clean, noisy, SR), abs=1e-9)
    assert estoi_score(clean, noisy) == pytest.approx(stoi(clean, noisy, SR, extended=True), abs=1e-9)


def test_silent_reference_gives_nan_with_reason_not_a_crash():
    values, reason = score_utterance(np.zeros(SR * 2, np.float32), _speech_like(2.0))
    assert all(np.isnan(v) for v in values.values()) and set(values) >= {"pesq_wb", "stoi", "si_sdr"}
    assert reason.startswith("silent reference")


def test_too_short_reference_gives_nan_pesq_with_reason():
    clean = _speech_like(0.2)
    values, reason = score_utterance(clean, clean)
    assert np.isnan(values["pesq_wb"]) and "pesq_wb" in reason
    assert values["si_sdr"] > 100  # the other metrics still score


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="length mismatch"):
        score_utterance(np.zeros(100, np.float32), np.zeros(50, np.float32))


def test_core_only_scoring_leaves_exactly_the_secondary_metrics_empty_with_a_reason():
    from kdsd.metrics import BASE_METRICS, CORE_METRICS, METRICS, SECONDARY_METRICS
    from kdsd.metrics.scoring import BASE_REASON, SKIPPED_REASON, score_many

    clean = _speech_like()
    items = [("u1", clean, _at_snr(clean, 5.0), "")]  # no text: WER is NaN with its reason
    full, core = score_many(items, workers=1), score_many(items, workers=1, tier="core")
    assert list(full.columns) == list(core.columns) == ["utt_id", *METRICS, "nan_reason"]
    assert set(CORE_METRICS) | set(SECONDARY_METRICS) == set(METRICS)
    assert full[[m for m in METRICS if m != "wer"]].notna().all().all() and np.isnan(full.wer.iloc[0])
    assert full.nan_reason.iloc[0] == "wer: no reference text in the manifest"
    assert core[list(CORE_METRICS)].to_numpy() == pytest.approx(full[list(CORE_METRICS)].to_numpy())
    assert core[list(SECONDARY_METRICS)].isna().all().all()
    assert core.nan_reason.iloc[0] == SKIPPED_REASON
    # the input, teacher and references outside evaluation.secondary_metric_test_sets
    base = score_many(items, workers=1, tier="base")
    assert base[list(BASE_METRICS)].to_numpy() == pytest.approx(full[list(BASE_METRICS)].to_numpy())
    assert {"pesq_nb", "dnsmos_ovrl"} <= set(BASE_METRICS) and not {"dnsmos_p808", "csig", "wer"} & set(BASE_METRICS)
    assert base[[m for m in METRICS if m not in BASE_METRICS]].isna().all().all()
    assert base.nan_reason.iloc[0] == BASE_REASON
    primary = score_many(items, workers=1, tier="primary")  # seeds past evaluation.core_metric_seeds
    assert primary.si_sdr.iloc[0] == pytest.approx(full.si_sdr.iloc[0])
    assert primary[[m for m in METRICS if m != "si_sdr"]].isna().all().all()
    assert "core_metric_seeds" in primary.nan_reason.iloc[0]
    with pytest.raises(ValueError, match="metric tier"):
        score_many(items, workers=1, tier="some")


def test_switched_off_groups_leave_their_columns_empty_and_say_so():
    from kdsd.metrics import METRICS, group_columns
    from kdsd.metrics.scoring import score_many

    clean = _speech_like()
    items = [("u1", clean, _at_snr(clean, 5.0), "")]
    off = ("wer", "speaker_similarity", "dnsmos_p808")
    table = score_many(items, workers=1, disabled=off)
    empty = [m for group in off for m in group_columns(group)]
    assert table[empty].isna().all().all()
    assert table[[m for m in METRICS if m not in empty]].notna().all().all()
    assert table.nan_reason.iloc[0] == "wer, speaker_similarity, dnsmos_p808: turned off (evaluation.metrics)"


def test_improvements_are_positive_when_better_whatever_the_direction():
    from kdsd.metrics import METRIC_INFO, improvement

    assert improvement("wer", 0.2, 0.5) == pytest.approx(0.3)  # fewer errors than the input
    assert improvement("lsd", 1.0, 3.0) == pytest.approx(2.0)
    assert improvement("pesq_wb", 3.0, 2.0) == pytest.approx(1.0)
    assert {m for m, info in METRIC_INFO.items() if not info.higher_is_better} == {"wer", "lsd"}


def test_every_new_metric_is_secondary_and_switchable():
    from kdsd.metrics import METRIC_GROUPS, SECONDARY_METRICS, group_columns

    assert METRIC_GROUPS == ("dnsmos_p808", "composite", "lsd", "wer", "speaker_similarity")
    for group in METRIC_GROUPS:
        assert set(group_columns(group)) <= set(SECONDARY_METRICS)
