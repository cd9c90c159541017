"""Analysis: seed-level statistics, NaN handling, paired tests, tables, plots and summary."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from kdsd.analysis.claim import retained_runs, retained_table
from kdsd.analysis.pipeline import analyse
from kdsd.analysis.plots import plot_improvements, plot_learning_curves
from kdsd.analysis.seeds import comparisons
from kdsd.analysis.settings import AnalysisSettings
from kdsd.analysis.stats import (
    METRICS, format_mean_std, load_scores, metric_columns, run_means, summary_table,
)
from kdsd.analysis.summary import write_summary
from kdsd.analysis.tables import write_tables
from kdsd.errors import KdsdError

N_UTTS = 8
UTTS = [f"u{i:02d}" for i in range(N_UTTS)]
TEACHER_GAIN = {"dev": 10.0, "test": 4.0}  # SI-SDR improvement of the teacher per test set
INPUT = {"pesq_wb": 1.5, "pesq_nb": 1.8, "stoi": 0.8, "estoi": 0.6, "si_sdr": 5.0,
         "dnsmos_sig": 3.0, "dnsmos_bak": 2.5, "dnsmos_ovrl": 2.2, "dnsmos_p808": 2.8, "csig": 2.5,
         "cbak": 2.0, "covl": 2.1, "ssnr": 1.0, "lsd": 3.0, "wer": 0.6, "spk_sim": 0.7}
OFFSETS = np.array([0.3, -0.1, 0.8, 0.25, 0.5, -0.05, 0.9, 0.45])  # cosine vs none, per utterance
T975_1 = sps.t.ppf(0.975, 1)


def _run(kind, method, scenario, seed, test_set, gain, params=1000) -> pd.DataFrame:
    """One run: the same improvement ``gain`` (array or scalar) on every metric, scaled per metric."""
    gain = np.broadcast_to(np.asarray(gain, dtype=float), (N_UTTS,))
    df = pd.DataFrame({
        "utt_id": UTTS, "model": f"{kind}_{method}_{scenario}_s{seed}", "kind": kind,
        "method": method, "scenario": scenario, "seed": seed, "test_set": test_set,
        "noise_family": "babble", "snr_db": 5.0, "params": params,
    })
    scale = {"pesq_wb": 0.1, "pesq_nb": 0.1, "stoi": 0.01, "estoi": 0.01, "si_sdr": 1.0,
             "dnsmos_sig": 0.05, "dnsmos_bak": 0.05, "dnsmos_ovrl": 0.05, "dnsmos_p808": 0.05,
             "csig": 0.1, "cbak": 0.1, "covl": 0.1, "ssnr": 1.0, "lsd": 0.1, "wer": 0.02, "spk_sim": 0.01}
    for m in METRICS:
        df[f"input_{m}"] = INPUT[m]
        df[f"{m}_i"] = gain * scale[m]
        df[m] = df[f"input_{m}"] + df[f"{m}_i"]
    return df


def _student_gains(method: str, seed: int) -> np.ndarray:
    base = {0: 1.0, 1: 3.0}[seed]  # run means 1 and 3 for `none`: mean 2, std sqrt(2)
    if method == "none":
        return np.full(N_UTTS, base)
    if method == "sp2step":
        return base + OFFSETS / 2
    return base + OFFSETS  # cosine


@pytest.fixture
def scores() -> pd.DataFrame:
    frames = []
    for ts, gain in TEACHER_GAIN.items():
        frames.append(_run("teacher", "teacher", "teacher", 0, ts, gain, params=50_000))
        for method in ("cosine", "none", "sp2step"):  # deliberately not in display order
            for seed in (0, 1):
                frames.append(_run("student", method, "width_1_4", seed, ts,
                                   _student_gains(method, seed)))
    df = pd.concat(frames, ignore_index=True)
    # One unscorable PESQ: cosine, seed 0, dev, first utterance.
    hit = (df.method == "cosine") & (df.seed == 0) & (df.test_set == "dev") & (df.utt_id == "u00")
    df.loc[hit, ["pesq_wb", "pesq_wb_i"]] = np.nan
    return df


def _row(table, kind, method, test_set="dev") -> pd.Series:
    rows = table[(table.kind == kind) & (table.method == method) & (table.test_set == test_set)]
    assert len(rows) == 1
    return rows.iloc[0]


def _write_csvs(scores: pd.DataFrame, root) -> list:
    paths = []
    for (model, ts), df in scores.groupby(["model", "test_set"]):
        path = root / "scores" / model / f"{ts}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False)
        paths.append(path)
    return paths


# --- stats -------------------------------------------------------------------------------------

def test_seed_mean_std_ci(scores):
    row = _row(summary_table(scores), "student", "none")
    assert row.si_sdr_i_mean == pytest.approx(2.0)
    assert row.si_sdr_i_std == pytest.approx(math.sqrt(2))
    assert row.si_sdr_i_ci95 == pytest.approx(T975_1 * math.sqrt(2) / math.sqrt(2))
    assert row.si_sdr_mean == pytest.approx(INPUT["si_sdr"] + 2.0)
    assert row.si_sdr_i_n_seeds == 2 and row.n_seeds == 2
    assert row.si_sdr_i_n_utts == 2 * N_UTTS and row.si_sdr_i_n_nan == 0
    assert row.params == 1000


def test_single_seed_has_no_spread(scores):
    row = _row(summary_table(scores), "teacher", "teacher")
    assert row.si_sdr_i_mean == pytest.approx(10.0)
    assert math.isnan(row.si_sdr_i_std) and math.isnan(row.si_sdr_i_ci95)


def test_nan_is_excluded_and_counted(scores):
    runs = run_means(scores)
    run = runs[(runs.method == "cosine") & (runs.seed == 0) & (runs.test_set == "dev")].iloc[0]
    expected = np.mean(INPUT["pesq_wb"] + 0.1 * (1.0 + OFFSETS[1:]))
    assert run.pesq_wb == pytest.approx(expected)
    assert run.n_nan_pesq_wb == 1 and run.n_nan_pesq_wb_i == 1 and run.n_nan_si_sdr == 0
    assert run.n_utts == N_UTTS
    row = _row(summary_table(scores), "student", "cosine")
    assert row.pesq_wb_n_nan == 1 and row.pesq_wb_n_utts == 2 * N_UTTS - 1
    assert row.si_sdr_n_nan == 0


def test_all_nan_run_does_not_crash(scores):
    scores.loc[scores.method == "sp2step", "pesq_wb"] = np.nan
    row = _row(summary_table(scores), "student", "sp2step")
    assert math.isnan(row.pesq_wb_mean) and row.pesq_wb_n_seeds == 0
    assert row.pesq_wb_n_nan == 2 * N_UTTS


def test_retained_uses_same_test_set_teacher(scores):
    table = retained_table(retained_runs(scores)).set_index(["test_set", "method"])
    assert table.loc[("dev", "none"), "retained_mean"] == pytest.approx(2.0 / 10.0)
    assert table.loc[("test", "none"), "retained_mean"] == pytest.approx(2.0 / 4.0)
    assert table.loc[("dev", "none"), "headroom"] == pytest.approx(10.0 - 2.0)
    assert table.loc[("dev", "none"), "compression"] == pytest.approx(50.0)


def test_two_seeds_compare_by_seed_without_p_values(scores):
    # cosine − none is mean(OFFSETS) in both seeds: the seed is the unit, not the 8 utterances
    row = comparisons(scores).query("method == 'cosine' and baseline == 'none' and metric == 'si_sdr' "
                                    "and test_set == 'dev'").iloc[0]
    assert row.n_seeds == 2 and row.n_utts == N_UTTS and row.diff_per_seed == "+0.381 +0.381"
    assert row.mean_diff == pytest.approx(OFFSETS.mean())
    assert math.isnan(row.p_t) and row.reading == "descriptive only"
    pesq = comparisons(scores).query("method == 'cosine' and baseline == 'none' and metric == 'pesq_wb' "
                                     "and test_set == 'dev'").iloc[0]
    assert (pesq.n_utts, pesq.n_dropped_utts) == (N_UTTS - 1, 1)  # one NaN drops the pair in every seed


def test_input_row(scores):
    table = summary_table(scores)
    row = _row(table, "input", "input")
    assert row.scenario == "input" and row.n_seeds == 1
    for m in METRICS:
        assert row[f"{m}_mean"] == pytest.approx(INPUT[m])
        assert row[f"{m}_i_mean"] == pytest.approx(0.0)
    assert pd.isna(row.params)
    assert (table.kind == "input").sum() == len(TEACHER_GAIN)


def test_sort_order(scores):
    dev = summary_table(scores).query("test_set == 'dev'")
    assert list(dev.kind) == ["input", "teacher", "student", "student", "student"]
    assert list(dev.method)[2:] == ["none", "sp2step", "cosine"]


def test_format_mean_std():
    assert format_mean_std(2.3148, 0.0512, 2) == "2.31 ± 0.05"
    assert format_mean_std(2.3148, float("nan"), 2) == "2.31"
    assert format_mean_std(0.91234, 0.01, 3) == "0.912 ± 0.010"


# --- loading -----------------------------------------------------------------------------------

def test_load_scores_roundtrip_keeps_method_none(scores, tmp_path):
    loaded = load_scores(_write_csvs(scores, tmp_path))
    assert len(loaded) == len(scores)
    assert set(loaded.method) == {"teacher", "none", "sp2step", "cosine"}  # "none" is not NaN
    assert loaded.pesq_wb.isna().sum() == 1
    table = summary_table(loaded)
    assert _row(table, "student", "none").si_sdr_i_mean == pytest.approx(2.0)


def test_load_scores_missing_column_names_file(scores, tmp_path):
    path = tmp_path / "broken.csv"
    scores.drop(columns=["stoi_i", "params"]).to_csv(path, index=False)
    with pytest.raises(KdsdError, match=r"broken\.csv: missing required columns: .*params.*stoi_i"):
        load_scores([path])


def test_load_scores_missing_file_and_duplicates(scores, tmp_path):
    with pytest.raises(KdsdError, match=r"nope\.csv: score file not found"):
        load_scores([tmp_path / "nope.csv"])
    path = _write_csvs(scores, tmp_path)[0]
    with pytest.raises(KdsdError, match="scored more than once"):
        load_scores([path, path])


def test_metric_columns_follow_pattern():
    assert metric_columns(["x"]) == ["input_x", "x", "x_i"]


# --- tables / plots / summary ------------------------------------------------------------------

def test_write_tables(scores, tmp_path):
    table = analyse(scores, _costs(summary_table(scores)), AnalysisSettings()).table
    csv_path, md_path = write_tables(table, tmp_path / "out" / "summary.csv", tmp_path / "t.md")
    back = pd.read_csv(csv_path)
    assert list(back.columns) == list(table.columns) and len(back) == len(table)
    md = md_path.read_text()
    assert "### dev" in md and "### test" in md
    assert "| width_1_4 · none | " in md
    assert "2.00 ± 1.41" in md  # ΔSI-SDR of `none`: seeds 1 and 3, ± SD
    assert "7.00 ± 1.41" in md  # SI-SDR of `none`
    half = T975_1 * math.sqrt(2) / math.sqrt(2)
    assert f"[{2 - half:+.2f}, {2 + half:+.2f}]" in md  # its 95 % t interval over the two seeds
    assert "20.0 % [" in md  # retained SI-SDR of `none` on dev, with its interval
    assert "standard deviation, not an interval" in md
    assert not list(tmp_path.glob("**/.*"))  # no temp files left behind


def test_plots_write_png(scores, tmp_path):
    out = plot_improvements(scores, tmp_path / "fig" / "improvements.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000
    histories = {}
    for name, shift in (("teacher", 0.0), ("student", 1.0)):
        path = tmp_path / name / "history.csv"
        path.parent.mkdir()
        pd.DataFrame({
            "epoch": [1, 2, 3], "train_loss": [3.0 + shift, 2.0, 1.5], "train_sup": 1.0,
            "train_kd": 0.5, "valid_loss": [2.0, 1.8, 1.9], "valid_si_sdr": [5.0, 8.0, 7.5],
            "seconds": 1.0, "best": [1, 1, 0],
        }).to_csv(path, index=False)
        histories[name] = path
    curves = plot_learning_curves(histories, tmp_path / "fig" / "curves.png")
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and curves.stat().st_size > 1000


def test_learning_curves_missing_column(tmp_path):
    path = tmp_path / "history.csv"
    pd.DataFrame({"epoch": [1], "train_sup": [1.0]}).to_csv(path, index=False)
    with pytest.raises(KdsdError, match=r"history\.csv: missing required columns: valid_si_sdr"):
        plot_learning_curves({"m": path}, tmp_path / "c.png")


def test_write_summary_with_two_seeds_is_descriptive(scores, tmp_path):
    analysis = analyse(scores, _costs(summary_table(scores)), AnalysisSettings())
    out = write_summary(analysis, tmp_path / "summary.md",
                        provenance={"git_commit": "abc123", "preset": "smoke"})
    text = out.read_text()
    assert text.split("\n")[2].startswith("Primary question (pre-registered in `analysis.primary`)")
    assert "**Verdict on the claim: against `none` not testable" in text
    assert "Teacher: ΔSI-SDR +10.00 dB" in text and "ΔPESQ-WB +1.00" in text
    assert "cosine − none: +0.38 dB, unadjusted 95 % CI [+0.38, +0.38] over 2 seeds" in text
    assert "descriptive only (2 complete seeds; a test needs ≥ 3)" in text
    assert "p =" not in text and "best" not in text and "does not beat" not in text
    assert "- git_commit: abc123" in text and "- preset: smoke" in text
    assert "2.00 ± 1.41" in text


def _costs(table: pd.DataFrame) -> pd.DataFrame:
    models = table[table.kind != "input"][["kind", "method", "scenario"]].drop_duplicates()
    rows = []
    for seed in (0, 1):
        for k, (_, m) in enumerate(models.iterrows()):
            rows.append({**m.to_dict(), "seed": seed, "macs_per_s": 1e6 * (k + 1),
                         "rtf_1thread": 0.01 * (k + 1) + 0.001 * seed, "params": 100 * (k + 1)})
    return pd.DataFrame(rows)


def test_costs_join_the_table_as_seed_medians(scores):
    from kdsd.analysis.pipeline import with_costs

    table = summary_table(scores)
    joined = with_costs(table, _costs(table))
    assert len(joined) == len(table)
    assert joined[joined.kind == "input"].macs_per_s.isna().all()
    teacher = joined[joined.kind == "teacher"].iloc[0]
    assert teacher.macs_per_s == 1e6 and teacher.rtf_1thread == pytest.approx(0.0105)


def test_pareto_front_and_plot(scores, tmp_path):
    from kdsd.analysis.pipeline import with_costs
    from kdsd.analysis.plots import _pareto_front, plot_pareto

    front = _pareto_front(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.5, 2.0, 1.5]))
    assert front.tolist() == [0, 2]  # 2 is dominated by 0 (cheaper, better), 4 by 3
    table = summary_table(scores)
    out = plot_pareto(with_costs(table, _costs(table)), tmp_path / "pareto.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(KdsdError, match="no model has a measured cost"):
        plot_pareto(table.assign(macs_per_s=np.nan), tmp_path / "empty.png")


def test_unscored_section_counts_nan_rows_and_reasons(scores):
    from kdsd.analysis.summary import unscored_section

    scores = scores.assign(nan_reason="", input_nan_reason="")
    clean = scores.assign(pesq_wb=1.0, pesq_wb_i=0.0)
    assert unscored_section(clean) == "- every utterance was scored by every metric"
    hit = clean.index[:3]
    clean.loc[hit, "pesq_wb"] = np.nan
    clean.loc[hit, "nan_reason"] = "pesq_wb: NoUtterancesError"
    text = unscored_section(clean)
    assert f"`pesq_wb`: 3 of {len(clean)} utterance scores are NaN" in text
    assert "reason (3×): pesq_wb: NoUtterancesError" in text


def test_example_utterances_span_the_snr_range_and_students_rank_by_gain(scores):
    from kdsd.analysis.examples import best_and_worst_students, pick_utterances

    manifest = pd.DataFrame({"utt_id": [f"u{i}" for i in range(7)], "snr_db": [5, -3, 9, 0, 2, 7, 1]})
    assert pick_utterances(manifest, 3).snr_db.tolist() == [-3, 2, 9]
    ranked = best_and_worst_students(scores[scores.test_set == "test"])
    means = scores[(scores.kind == "student") & (scores.test_set == "test")].groupby("model").si_sdr_i.mean()
    assert ranked == {"best_student": means.idxmax(), "worst_student": means.idxmin()}


def test_secondary_metrics_get_their_own_table_with_the_wer_floor():
    """New registry metrics reach the model tables without analysis code naming them; WER is also
    given above the recogniser's floor (the clean references' own WER)."""
    from test_stats import simulate_scores
    from kdsd.analysis.tables import SECONDARY_TABLE_METRICS, markdown_tables
    from kdsd.metrics import METRIC_INFO, metric_label

    scores = simulate_scores(np.random.default_rng(1), lambda m, c, t: 3.0, seeds=3, test_sets=("test_a",))
    scores["clean_wer"] = 0.25
    table = analyse(scores, _costs(summary_table(scores)), AnalysisSettings()).table
    assert table["clean_wer_floor"].eq(0.25).all()
    text = markdown_tables(table)
    secondary = text.split("Secondary metrics:")[1].split("\n\n")[1]
    header = secondary.splitlines()[0]
    assert {"wer", "spk_sim", "csig"} <= set(SECONDARY_TABLE_METRICS)
    assert all(metric_label(m) in header for m in SECONDARY_TABLE_METRICS) and "WER − floor" in header
    assert "| PESQ-WB |" not in header  # core metrics stay in the main table
    teacher = next(line for line in secondary.splitlines() if line.startswith("| teacher"))
    wer = table.loc[table.kind == "teacher", "wer_mean"].iloc[0]
    assert wer == pytest.approx(2.4, abs=0.05)  # simulate_scores: 2 + 0.05 × the teacher's ~8 dB gain
    assert teacher.endswith(f"| {wer - 0.25:.{METRIC_INFO['wer'].digits}f} |")
    assert "Clean-reference WER on this test set (the recogniser's floor on this speech): 0.250." in text
    assert "say little about intelligibility" not in text
    table["clean_wer_floor"] = 0.9  # pocketsphinx on the embedded corpus's voices: 0.8-1.0
    assert "floor on this speech): 0.900. At a floor of 0.5 or more" in markdown_tables(table)


def test_model_table_shows_onnx_speed_latency_and_marks_causal_students(scores):
    from kdsd.analysis.pipeline import with_costs
    from kdsd.analysis.tables import markdown_table

    table = summary_table(scores)
    costs = _costs(table).assign(rtf_onnx_1thread=0.002, latency_ms=104.0, causal=False)
    costs.loc[costs.method == "cosine", ["latency_ms", "causal"]] = [32.0, True]
    text = markdown_table(with_costs(table, costs).query("test_set == 'dev'"))
    assert "| RTF ONNX | Latency (ms) |" in text
    cosine = next(line for line in text.splitlines() if "cosine" in line)
    assert "(causal) · cosine" in cosine and "| 0.0020 | 32 |" in cosine
    assert "(causal)" not in next(line for line in text.splitlines() if "· none" in line)
