"""Score tables with the manifest's text: the input table's clean_wer (the recogniser's floor),
WER NaN with its reason where a row has no text, and improvements signed so that > 0 is better."""
import numpy as np
import pandas as pd
import pytest

from kdsd.audio import write_audio
from kdsd.corpus.manifest import write_manifest
from kdsd.corpus.tts import Voice, synthesize
from kdsd.metrics.scoring import CLEAN_WER, score_denoiser, score_input

TEXT = "Every plumber in Shanghai sneezed awkwardly."


@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    """Two rows of one TTS clip at 5 dB: one with its text, one without (an adapter's empty cell)."""
    root = tmp_path_factory.mktemp("test_matched")
    clean = synthesize(Voice("piper", "en_US-joe-medium"), TEXT)
    noise = np.random.default_rng(1).standard_normal(clean.size).astype(np.float32)
    noisy = clean + noise * np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-5 / 20)
    write_audio(root / "clean.wav", clean)
    write_audio(root / "noisy.wav", noisy)
    rows = [{"utt_id": utt, "split": "test_matched", "clean_path": "clean.wav", "noisy_path": "noisy.wav",
             "speaker": "joe", "engine": "piper", "text": text, "noise_family": "white", "noise_seed": 1,
             "snr_db": 5.0, "rir": "", "duration_s": clean.size / 16_000, "sample_rate": 16_000}
            for utt, text in (("with_text", TEXT), ("no_text", ""))]
    manifest = write_manifest(rows, root / "manifest.csv")
    return manifest, clean


@pytest.fixture(scope="module")
def tables(test_set, tmp_path_factory):
    manifest, clean = test_set
    out = tmp_path_factory.mktemp("scores")
    [input_csv] = score_input([manifest], [out / "input.csv"])
    oracle = {"model": "oracle", "kind": "reference", "method": "oracle", "scenario": "reference",
              "seed": 0, "params": 0}
    [model_csv] = score_denoiser(lambda noisy: clean, oracle, [manifest], [input_csv], [out / "oracle.csv"])
    return pd.read_csv(input_csv).set_index("utt_id"), pd.read_csv(model_csv).set_index("utt_id")


def test_input_table_carries_the_clean_floor_and_the_input_wer(tables):
    inputs, _ = tables
    assert inputs.loc["with_text", CLEAN_WER] == 0.0
    assert inputs.loc["with_text", "input_wer"] > 0.0
    assert np.isnan(inputs.loc["no_text", CLEAN_WER]) and np.isnan(inputs.loc["no_text", "input_wer"])
    assert "wer: no reference text in the manifest" in inputs.loc["no_text", "input_nan_reason"]


def test_a_perfect_estimate_reaches_every_ceiling_and_gains_over_the_input(tables):
    inputs, model = tables
    row = model.loc["with_text"]
    assert row["wer"] == 0.0 and row["wer_i"] == pytest.approx(inputs.loc["with_text", "input_wer"])
    assert row["spk_sim"] == pytest.approx(1.0, abs=1e-5) and row["spk_sim_i"] > 0
    assert (row["csig"], row["cbak"], row["covl"]) == (5.0, 5.0, 5.0)
    assert row["lsd_i"] > 0 and row["ssnr_i"] > 0 and row["dnsmos_p808_i"] > 0
    assert model.loc["with_text", CLEAN_WER] == 0.0  # carried from the input table
    assert np.isnan(model.loc["no_text", "wer"]) and model.loc["no_text", "csig"] == 5.0


def test_cli_switches_groups_off_and_refuses_unknown_ones(test_set, tmp_path, capsys):
    from kdsd.cli import main

    manifest, _ = test_set
    out = tmp_path / "input.csv"
    assert main(["score-input", "--manifest", str(manifest), "--out", str(out),
                 "--metrics-off", "wer", "composite"]) == 0
    table = pd.read_csv(out)
    assert table[["input_wer", "input_csig", "input_ssnr", CLEAN_WER]].isna().all().all()
    assert table["input_spk_sim"].notna().all()
    assert "wer, composite: turned off (evaluation.metrics)" in table.input_nan_reason.iloc[0]
    with pytest.raises(SystemExit):
        main(["score-input", "--manifest", str(manifest), "--out", str(out), "--metrics-off", "wre"])
    assert "invalid choice: 'wre'" in capsys.readouterr().err


def test_input_outside_the_secondary_test_sets_skips_the_recogniser(test_set, tmp_path):
    """The input, teacher and references get the base tier outside evaluation.secondary_metric_test_sets:
    no WER (nor its clean floor) and no other switchable group, PESQ-NB and DNSMOS P.835 kept."""
    from kdsd.cli import main
    from kdsd.metrics.scoring import BASE_REASON

    manifest, _ = test_set
    outs = [tmp_path / "matched.csv", tmp_path / "mismatched.csv"]
    assert main(["score-input", "--manifest", str(manifest), str(manifest), "--out", *map(str, outs),
                 "--metric-tier", "all", "base"]) == 0
    full, base = (pd.read_csv(p).set_index("utt_id") for p in outs)
    assert full.loc["with_text", CLEAN_WER] == 0.0 and full.loc["with_text", "input_csig"] > 0
    assert base[[CLEAN_WER, "input_wer", "input_csig", "input_spk_sim", "input_dnsmos_p808"]].isna().all().all()
    assert base["input_pesq_nb"].tolist() == full["input_pesq_nb"].tolist()
    assert base["input_dnsmos_ovrl"].tolist() == pytest.approx(full["input_dnsmos_ovrl"].tolist())
    assert (base.input_nan_reason == BASE_REASON).all()


@pytest.mark.parametrize("cell, text", [(float("nan"), ""), ("Go now.", "Go now."), (42, "42")])
def test_manifest_text_cells_become_strings(cell, text):
    from types import SimpleNamespace

    from kdsd.metrics.scoring import _text

    assert _text(SimpleNamespace(text=cell)) == text


def test_each_test_set_gets_its_own_metric_tier(test_set, tmp_path):
    """One job scores every test set; the tier is per test set (evaluation.secondary_metric_test_sets,
    core_metric_seeds): here the same set twice, once with every metric, once SI-SDR alone."""
    manifest, clean = test_set
    [input_csv] = score_input([manifest], [tmp_path / "input.csv"])
    oracle = {"model": "oracle", "kind": "reference", "method": "oracle", "scenario": "reference",
              "seed": 0, "params": 0}
    every, primary = (pd.read_csv(p) for p in score_denoiser(
        lambda noisy: clean, oracle, [manifest, manifest], [input_csv, input_csv],
        [tmp_path / "all.csv", tmp_path / "primary.csv"], tier=["all", "primary"]))
    assert every.loc[0, "csig"] == 5.0 and every.loc[0, "pesq_wb"] > 4.0
    assert primary.si_sdr.tolist() == every.si_sdr.tolist()
    assert primary[["pesq_wb", "stoi", "csig", "wer"]].isna().all().all()
    with pytest.raises(Exception, match="differ in length"):
        score_denoiser(lambda noisy: clean, oracle, [manifest], [input_csv], [tmp_path / "x.csv"],
                       tier=["all", "core"])


def test_wer_only_where_the_recogniser_knows_the_manifests_language(test_set, tmp_path):
    """A manifest with a `language` column (ISO 639-1): WER and the clean floor for English rows
    (a region subtag allowed), NaN with the reason for another language or an empty cell."""
    from kdsd.metrics.scoring import score_input

    manifest, clean = test_set
    rows = pd.read_csv(manifest).iloc[[0, 0, 0, 0]].assign(
        utt_id=["en", "en_gb", "fr", "blank"], language=["en", "en-GB", "fr", ""])
    rows.to_csv(tmp_path / "manifest.csv", index=False)
    for name in ("clean.wav", "noisy.wav"):
        (tmp_path / name).symlink_to(manifest.parent / name)
    off = ("composite", "lsd", "speaker_similarity", "dnsmos_p808")
    [input_csv] = score_input([tmp_path / "manifest.csv"], [tmp_path / "input.csv"], disabled=off)
    oracle = {"model": "oracle", "kind": "reference", "method": "oracle", "scenario": "reference",
              "seed": 0, "params": 0}
    [model_csv] = score_denoiser(lambda noisy: clean, oracle, [tmp_path / "manifest.csv"], [input_csv],
                                 [tmp_path / "oracle.csv"], disabled=off)
    inputs, model = (pd.read_csv(p).set_index("utt_id") for p in (input_csv, model_csv))
    for utt in ("en", "en_gb"):
        assert inputs.loc[utt, CLEAN_WER] == 0.0 and inputs.loc[utt, "input_wer"] > 0 and model.loc[utt, "wer"] == 0.0
    for utt, reason in (("fr", "wer: transcript in 'fr', the recogniser knows en"),
                        ("blank", "wer: no transcript language in the manifest, the recogniser knows en")):
        assert np.isnan(inputs.loc[utt, CLEAN_WER]) and np.isnan(inputs.loc[utt, "input_wer"])
        assert np.isnan(model.loc[utt, "wer"]) and reason in model.loc[utt, "nan_reason"]
        assert reason in inputs.loc[utt, "input_nan_reason"]
        assert model.loc[utt, "pesq_wb"] == model.loc["en", "pesq_wb"]  # the other metrics as usual
