"""Seed-level statistics with known answers: error rates, Holm, interval readings, the retained fraction.

The primary family (the verdicts) is tested in test_primary.py."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from conftest import REPO
from kdsd.analysis.claim import retained_runs, retained_table, slope_tests
from kdsd.analysis.pipeline import write_results
from kdsd.analysis.seeds import classify, comparisons, holm, interval_reading, seed_test
from kdsd.analysis.settings import AnalysisSettings
from kdsd.errors import KdsdError
from kdsd.metrics import METRICS

TEACHER_PARAMS = 64_000
SCENARIO_PARAMS = {"w1_2": 16_000, "w1_4": 4_000, "w1_8": 1_000}  # compression 4, 16, 64


def simulate_scores(rng, gain, *, seeds=6, n_utts=48, methods=("none", "cosine"), scenarios=("w1_4",),
                    test_sets=("test_a",), teacher_gain=8.0, seed_sd=0.3, utt_sd=1.0, noise_sd=0.3,
                    metrics=METRICS):
    """Per-utterance score rows in the score-table contract.

    ``gain(method, scenario, test_set)`` is each method's true SI-SDR gain; every run adds an
    independent seed-level offset (SD ``seed_sd``), every utterance a shared difficulty and its own
    noise. Other metrics get the same gains scaled down; inputs are constant.
    """
    utts = [f"u{i:03d}" for i in range(n_utts)]
    frames = []
    for test_set in test_sets:
        difficulty = rng.normal(0.0, utt_sd, n_utts)
        runs = [("teacher", "teacher", "teacher", 0, teacher_gain, TEACHER_PARAMS)]
        runs += [("student", m, c, s, gain(m, c, test_set) + rng.normal(0.0, seed_sd), SCENARIO_PARAMS[c])
                 for c in scenarios for m in methods for s in range(1, seeds + 1)]
        for kind, method, scenario, seed, run_gain, params in runs:
            si_sdr_i = run_gain + difficulty + rng.normal(0.0, noise_sd, n_utts)
            frames.append(_rows(utts, kind, method, scenario, seed, test_set, params, si_sdr_i, metrics))
    return pd.concat(frames, ignore_index=True)


def _rows(utts, kind, method, scenario, seed, test_set, params, si_sdr_i, metrics=METRICS) -> pd.DataFrame:
    columns = {"utt_id": utts, "model": f"{kind}/{scenario}/{method}/seed{seed}", "kind": kind,
               "method": method, "scenario": scenario, "seed": seed, "test_set": test_set,
               "params": params, "nan_reason": ""}
    for m in metrics:
        gain = (1.0 if m == "si_sdr" else 0.05) * np.asarray(si_sdr_i, dtype=float)
        columns.update({f"input_{m}": 2.0, m: 2.0 + gain, f"{m}_i": gain})
    return pd.DataFrame(columns)


def _headline(table: pd.DataFrame, baseline="none", scenario="w1_4", test_set="test_a") -> pd.Series:
    rows = table[(table.metric == "si_sdr") & (table.method == "cosine") & (table.baseline == baseline)
                 & (table.scenario == scenario) & (table.test_set == test_set)]
    assert len(rows) == 1
    return rows.iloc[0]


# --- error rates of the headline test --------------------------------------------------------

def _rejection_rate(effect: float, n_datasets: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    rejected = 0
    for _ in range(n_datasets):
        scores = simulate_scores(rng, lambda m, c, t: 3.0 + (effect if m == "cosine" else 0.0),
                                 seed_sd=0.3, metrics=("si_sdr",))
        rejected += _headline(comparisons(scores, metrics=("si_sdr",))).reading in ("above 0", "below 0")
    return rejected / n_datasets


def test_false_positive_rate_with_no_effect_is_at_most_ten_percent():
    # 200 datasets, 6 seeds, seed SD 0.3 dB, no true effect: the old utterance-level test said
    # "significant" in most of them; the seed-level interval excludes 0 at its nominal 5 %.
    assert _rejection_rate(0.0, 200, seed=1) <= 0.10


def test_the_same_simulation_catches_an_utterance_level_test():
    # The check above can fail: the old test (Wilcoxon over seed-averaged utterances, 2 seeds)
    # rejects far more often than 10 % on these null datasets, because seed variance vanishes.
    rng = np.random.default_rng(3)
    rejected = 0
    for _ in range(100):
        scores = simulate_scores(rng, lambda m, c, t: 3.0, seeds=2, seed_sd=0.3, metrics=("si_sdr",))
        per_utt = scores[scores.kind == "student"].groupby(["method", "utt_id"]).si_sdr_i.mean()
        rejected += sps.wilcoxon(per_utt["cosine"], per_utt["none"]).pvalue < 0.05
    assert rejected / 100 > 0.3


def test_power_at_two_seed_sd_is_at_least_one_half():
    assert _rejection_rate(2 * 0.3, 100, seed=2) >= 0.5


# --- the test itself -------------------------------------------------------------------------

def test_seed_test_matches_scipy():
    d = np.array([0.3, -0.1, 0.5, 0.2, 0.4, 0.1])
    test = seed_test(d)
    half = sps.t.ppf(0.975, 5) * d.std(ddof=1) / math.sqrt(6)
    assert test["mean_diff"] == pytest.approx(d.mean())
    assert (test["ci95_low"], test["ci95_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert test["p_t"] == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    # sign flips with |sum| ≥ 1.4: none, either 0.1 flipped, and their mirror images: 6 of 64
    assert test["p_signflip"] == pytest.approx(6 / 64)
    assert math.isnan(seed_test(d[:5])["p_signflip"])


def test_fewer_than_three_seeds_is_descriptive_without_p_values():
    test = seed_test([0.4, 0.6])
    assert math.isnan(test["p_t"]) and math.isnan(test["p_signflip"])
    assert test["mean_diff"] == pytest.approx(0.5)
    assert interval_reading(test) == "descriptive only"


def test_holm_on_a_known_vector():
    adjusted = holm([0.01, 0.04, 0.03, 0.005, math.nan])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone


def test_interval_categories_check_equivalence_first():
    within = {"n_seeds": 6, "mean_diff": 0.01, "ci95_low": -0.1, "ci95_high": 0.12}
    assert interval_reading(within, margin=0.2) == "inside ±0.2"
    assert interval_reading(within, margin=0.05) == "spans 0"
    assert classify(0.05, 0.07, 0.2) == "equivalent" and classify(0.05, 0.07, 0.0) == "better"
    assert classify(-0.5, -0.3, 0.2) == "worse" and classify(math.nan, 1.0) == "descriptive only"


def test_skewed_utterances_verdict_agrees_with_its_test():
    # 40 utterances 0.2 dB worse, 8 utterances 2 dB better: the mean is +0.17 dB though most got
    # worse. A rank test over utterances points the other way; the seed-level verdict, its interval
    # and its p all speak about the same mean.
    offsets = np.r_[np.full(40, -0.2), np.full(8, 2.0)]
    rng = np.random.default_rng(3)
    utts = [f"u{i:02d}" for i in range(48)]
    frames = [_rows(utts, "teacher", "teacher", "teacher", 0, "test_a", TEACHER_PARAMS, np.full(48, 8.0))]
    for seed in range(1, 7):
        base = 3.0 + rng.normal(0, 0.05) + np.linspace(-1, 1, 48)
        frames.append(_rows(utts, "student", "none", "w1_4", seed, "test_a", 4000, base))
        frames.append(_rows(utts, "student", "cosine", "w1_4", seed, "test_a", 4000,
                            base + offsets + rng.normal(0, 0.02)))
    row = _headline(comparisons(pd.concat(frames, ignore_index=True)))
    assert row.mean_diff == pytest.approx(1 / 6, abs=0.02)
    assert row.ci95_low > 0 and row.p_t < 0.05 and row.reading == "above 0"
    assert np.median(offsets) < 0  # most utterances got worse: the verdict is about the mean


def test_one_utterance_set_per_comparison_and_missing_runs():
    rng = np.random.default_rng(4)
    scores = simulate_scores(rng, lambda m, c, t: 3.0, methods=("none", "sp2step", "cosine"), seeds=4)
    nan = (scores.method == "sp2step") & (scores.seed == 2) & scores.utt_id.isin(["u000", "u001"])
    scores.loc[nan, "si_sdr_i"] = np.nan
    scores = scores[~((scores.method == "none") & (scores.seed == 4))]  # a missing run
    table = comparisons(scores)
    vs_sp2 = _headline(table, "sp2step")
    assert (vs_sp2.n_utts, vs_sp2.n_dropped_utts, vs_sp2.n_seeds) == (46, 2, 4)
    cos, sp2 = (scores[(scores.method == m) & scores.si_sdr_i.notna()
                       & ~scores.utt_id.isin(["u000", "u001"]) & (scores.kind == "student")]
                .groupby("seed").si_sdr_i.mean() for m in ("cosine", "sp2step"))
    assert vs_sp2.mean_diff == pytest.approx((cos - sp2).mean())
    vs_none = _headline(table, "none")
    assert (vs_none.n_seeds, vs_none.unpaired_seeds, vs_none.seeds) == (3, "4", "1 2 3")
    assert vs_none.n_utts == 48 and vs_none.n_dropped_utts == 0


def test_every_cell_comparison_is_exploratory_without_a_verdict():
    rng = np.random.default_rng(5)
    scores = simulate_scores(rng, lambda m, c, t: 3.0, methods=("none", "sp2step", "cosine", "hint"),
                             scenarios=("w1_2", "w1_4"), test_sets=("test_a", "test_b"))
    table = comparisons(scores)
    assert set(table.family) == {"exploratory"} and not {"p_holm", "verdict"} & set(table.columns)
    cells = table[(table.method == "cosine") & (table.metric == "si_sdr")]
    assert len(cells) == 2 * 2 * 2  # baselines × scenarios × test sets
    assert set(table.reading) <= {"above 0", "below 0", "spans 0", "inside ±0.2", "descriptive only"}
    assert {("sp2step", "none"), ("hint", "none"), ("hint", "sp2step")} <= set(zip(table.method, table.baseline))
    assert not ((table.method == "none") & (table.baseline == "sp2step")).any()


# --- retained fraction and the claim ---------------------------------------------------------

def test_teacher_gain_of_a_tenth_db_gives_n_a_not_a_number():
    rng = np.random.default_rng(6)
    scores = simulate_scores(rng, lambda m, c, t: 0.05, teacher_gain=0.1, utt_sd=0.0, noise_sd=0.01,
                             methods=("none", "cosine"))
    runs = retained_runs(scores)
    assert runs.retained.isna().all()
    assert runs.teacher_gain.iloc[0] == pytest.approx(0.1, abs=0.01)
    table = retained_table(runs)
    assert table.retained_mean.isna().all()
    assert (table.status == "n/a: teacher gain < 1 dB").all()


def test_retained_fraction_compression_and_headroom():
    rng = np.random.default_rng(7)
    scores = simulate_scores(rng, lambda m, c, t: {"none": 2.0, "cosine": 4.0}[m], teacher_gain=8.0,
                             seed_sd=0.0, utt_sd=0.0, noise_sd=0.0, scenarios=("w1_2", "w1_8"))
    table = retained_table(retained_runs(scores)).set_index(["scenario", "method"])
    assert table.loc[("w1_8", "cosine"), "compression"] == pytest.approx(64.0)
    assert table.loc[("w1_2", "cosine"), "compression"] == pytest.approx(4.0)
    assert table.loc[("w1_8", "cosine"), "retained_mean"] == pytest.approx(0.5)
    assert table.loc[("w1_8", "none"), "retained_mean"] == pytest.approx(0.25)
    assert table.loc[("w1_8", "none"), "headroom"] == pytest.approx(6.0)
    assert (table.status == "ok").all()


def _grid_scores(slope_pp: float, seed: int) -> pd.DataFrame:
    """Three scenarios on a compression axis; cosine's retained gap over sp2step grows by
    ``slope_pp`` percentage points per doubling of compression."""
    log2c = {c: math.log2(TEACHER_PARAMS / p) for c, p in SCENARIO_PARAMS.items()}

    def gain(method, scenario, test_set):
        base = 8.0 * (0.9 - 0.1 * log2c[scenario])
        return base + (8.0 * slope_pp / 100 * log2c[scenario] if method == "cosine" else 0.0)

    return simulate_scores(np.random.default_rng(seed), gain, methods=("none", "sp2step", "cosine"),
                           scenarios=tuple(SCENARIO_PARAMS), seed_sd=0.15, teacher_gain=8.0)


def test_growing_retained_gap_gives_a_significant_positive_slope():
    tests = slope_tests(retained_runs(_grid_scores(5.0, seed=8))).set_index("baseline")
    row = tests.loc["sp2step"]
    assert row.n_scenarios == 3 and row.n_seeds == 6
    assert row.mean_diff == pytest.approx(0.05, abs=0.02)  # fraction per doubling
    assert row.p_t < 0.05 and row.reading == "above 0"


def test_flat_retained_gap_is_inconclusive():
    tests = slope_tests(retained_runs(_grid_scores(0.0, seed=9))).set_index("baseline")
    assert tests.loc["sp2step"].reading == "spans 0"
    assert tests.loc["sp2step"].ci95_low < 0 < tests.loc["sp2step"].ci95_high


def test_claim_needs_three_scenarios():
    rng = np.random.default_rng(10)
    scores = simulate_scores(rng, lambda m, c, t: 3.0, methods=("sp2step", "cosine"), scenarios=("w1_2", "w1_4"))
    row = slope_tests(retained_runs(scores)).iloc[0]
    assert row.reading.startswith("not testable: needs ≥ 3 scenarios") and row.n_scenarios == 2
    assert math.isnan(row.p_t)


# --- settings --------------------------------------------------------------------------------

def test_settings_defaults_match_the_schema_and_config_overrides():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    analysis = schema["properties"]["analysis"]["properties"]
    defaults = AnalysisSettings()
    for key in ("equivalence_margin_db", "min_teacher_gain_db"):
        assert analysis[key]["default"] == getattr(defaults, key)
    config = {"analysis": {"equivalence_margin_db": 0.5},
              "students": {"scenarios": {"b": {}, "a": {}}, "methods": ["none", "cosine"], "seeds": [1, 2]}}
    settings = AnalysisSettings.from_config(config)
    assert settings.equivalence_margin_db == 0.5 and settings.min_teacher_gain_db == 1.0
    assert settings.expected_runs[:3] == (("a", "none", 1), ("a", "none", 2), ("a", "cosine", 1))
    assert len(settings.expected_runs) == 8
    with pytest.raises(KdsdError, match=r"analysis\.min_teacher_gain_db: expected a number"):
        AnalysisSettings.from_config({"analysis": {"min_teacher_gain_db": "x"}})


# --- end to end through the report step -------------------------------------------------------

def _claim_gain(method, scenario, test_set):
    """Every method loses more with compression; cosine loses less, except on test_flat."""
    log2c = math.log2(TEACHER_PARAMS / SCENARIO_PARAMS[scenario])
    kd = {"none": -0.5, "sp2step": 0.0, "cosine": 0.0 if test_set == "test_flat" else 0.4 * log2c}
    return 8.0 * (0.9 - 0.1 * log2c) + kd[method]


def _write_inputs(scores: pd.DataFrame, root) -> tuple[list, list, list]:
    scores_out, histories, costs = [], [], []
    for (model, test_set), rows in scores.groupby(["model", "test_set"]):
        path = root / "scores" / model / f"{test_set}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(path, index=False)
        scores_out.append(path)
    for model, rows in scores.groupby("model"):
        first = rows.iloc[0]
        cost = root / "cost" / f"{model.replace('/', '_')}.json"
        cost.parent.mkdir(parents=True, exist_ok=True)
        cost.write_text(json.dumps({"kind": first.kind, "method": first.method, "scenario": first.scenario,
                                    "seed": int(first.seed), "params": int(first.params),
                                    "macs_per_s": 100.0 * first.params, "rtf_1thread": 0.01}))
        costs.append(cost)
    for model in ("teacher/teacher/teacher/seed0", "student/w1_8/cosine/seed1"):
        history = root / "models" / model / "history.csv"
        history.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"epoch": [1, 2], "train_sup": [2.0, 1.0], "valid_si_sdr": [3.0, 4.0],
                      "best": [1, 1]}).to_csv(history, index=False)
        histories.append(history)
    return scores_out, histories, costs


def test_report_states_the_claim_from_a_six_seed_three_scenario_run(tmp_path):
    scores = simulate_scores(np.random.default_rng(11), _claim_gain, methods=("none", "sp2step", "cosine"),
                             scenarios=tuple(SCENARIO_PARAMS), test_sets=("test_flat", "test_grow"),
                             seed_sd=0.2)
    scores = scores[~((scores.method == "sp2step") & (scores.seed == 6) & (scores.scenario == "w1_2"))]
    config = {"analysis": {"equivalence_margin_db": 0.3},
              "students": {"scenarios": {c: {} for c in SCENARIO_PARAMS},
                           "methods": ["none", "sp2step", "cosine"], "seeds": [1, 2, 3, 4, 5, 6]}}
    write_results(*_write_inputs(scores, tmp_path), tmp_path / "results", {"config": config})
    results = tmp_path / "results"
    text = (results / "summary.md").read_text()
    opening = text.split("\n\n")[1]
    assert opening.startswith("Primary question (pre-registered in `analysis.primary`)")
    assert "**Verdict on the claim: against `none` supported; against `sp2step` supported.**" in opening
    primary = pd.read_csv(results / "tables" / "primary.csv").set_index(["baseline", "test"])
    assert len(primary) == 4 and set(primary.verdict) == {"better"} and (primary.p_holm < 0.05).all()
    # the trend pools test sets: +0.4 dB per doubling on test_grow, 0 on test_flat, teacher 8 dB
    assert primary.loc[("sp2step", "trend"), "estimate"] == pytest.approx(0.4 / 8.0 / 2, abs=0.005)
    assert primary.loc[("sp2step", "level"), "n_seeds"] == 5  # seed 6 lacks a cell: not complete
    assert primary.loc[("none", "level"), "n_seeds"] == 6
    claim = pd.read_csv(results / "tables" / "claim.csv").set_index("baseline")
    assert (claim.claim == "supported").all() and claim.loc["sp2step", "most_compressed"] == "w1_8"
    slopes = pd.read_csv(results / "tables" / "slopes.csv").set_index(["test_set", "baseline"])
    assert slopes.loc[("test_grow", "sp2step"), "mean_diff"] == pytest.approx(0.4 / 8.0, abs=0.01)
    assert slopes.loc[("test_flat", "sp2step"), "reading"] == "spans 0"
    # the missing sp2step run is listed, and its comparison pairs only five seeds
    assert "- students/w1_2/sp2step/seed6: no scores on test_flat, test_grow" in text
    comps = pd.read_csv(results / "tables" / "comparisons.csv", dtype={"unpaired_seeds": str},
                        keep_default_na=False, na_values=[""])
    row = comps[(comps.test_set == "test_flat") & (comps.scenario == "w1_2") & (comps.metric == "si_sdr")
                & (comps.method == "cosine") & (comps.baseline == "sp2step")].iloc[0]
    assert row.n_seeds == 5 and str(row.unpaired_seeds) == "6"
    line = next(x for x in text.split("### test_flat")[1].splitlines() if x.startswith("- w1_2"))
    assert "cosine − sp2step: " in line and " over 5 seeds " in line and "unadjusted 95 % CI" in line
    assert "seeds 6 have a run on one side only" in line and "p =" not in line
    assert (comps.family == "exploratory").all()
    retained = pd.read_csv(results / "tables" / "retained.csv")
    assert set(retained.status) == {"ok"} and retained.headroom.notna().all()
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert {"retained_si_sdr", "retained_si_sdr_ci95_low", "headroom_si_sdr", "compression"} <= set(summary.columns)
    for plot in ("claim", "improvements", "pareto", "learning_curves"):
        assert (results / "plots" / f"{plot}.png").stat().st_size > 10_000, plot


def test_reversed_result_is_worded_worse_from_six_seeds(tmp_path):
    scores = simulate_scores(np.random.default_rng(12), lambda m, c, t: 3.0 - (1.0 if m == "cosine" else 0.0),
                             methods=("none", "cosine"))
    table = comparisons(scores)
    row = _headline(table)
    assert row.reading == "below 0" and row.ci95_high < 0 and row.p_signflip == pytest.approx(2 / 64)
    equal = _headline(comparisons(simulate_scores(np.random.default_rng(13), lambda m, c, t: 3.0,
                                                  methods=("none", "cosine"), seed_sd=0.02),
                                  AnalysisSettings(equivalence_margin_db=0.2)))
    assert equal.reading == "inside ±0.2"


def test_report_cli_refuses_a_bad_analysis_setting_in_one_line(tmp_path, capsys):
    from kdsd.cli import main

    scores = simulate_scores(np.random.default_rng(14), lambda m, c, t: 2.0, seeds=1)
    paths, histories, costs = _write_inputs(scores, tmp_path)
    provenance = json.dumps({"config": {"analysis": {"equivalence_margin_db": -0.1}}})
    code = main(["report", "--scores", *map(str, paths), "--histories", *map(str, histories),
                 "--costs", *map(str, costs), "--out-dir", str(tmp_path / "out"), "--provenance-json", provenance])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "kdsd: error: config analysis.equivalence_margin_db: expected a number ≥ 0, got -0.1"
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_runs_without_secondary_metrics_drop_out_of_those_comparisons_only():
    rng = np.random.default_rng(11)
    scores = simulate_scores(rng, lambda m, c, t: 3.0 + (1.0 if m == "cosine" else 0.0), seeds=4,
                             metrics=("si_sdr", "dnsmos_ovrl"))
    later = (scores.kind == "student") & (scores.seed > 1)
    scores.loc[later, ["dnsmos_ovrl", "dnsmos_ovrl_i"]] = np.nan  # seeds 2-4 scored on core metrics
    table = comparisons(scores, metrics=("si_sdr", "dnsmos_ovrl"))
    si, dns = (table[table.metric == m].iloc[0] for m in ("si_sdr", "dnsmos_ovrl"))
    assert (si.n_seeds, si.seeds, si.n_dropped_utts) == (4, "1 2 3 4", 0)
    assert (dns.n_seeds, dns.seeds, dns.unpaired_seeds, dns.n_dropped_utts) == (1, "1", "", 0)
    assert dns.reading == "descriptive only"


def test_model_table_marks_a_secondary_metric_mean_over_fewer_seeds():
    from kdsd.analysis.stats import summary_table
    from kdsd.analysis.tables import markdown_table

    scores = simulate_scores(np.random.default_rng(12), lambda m, c, t: 3.0, seeds=3,
                             test_sets=("test_a",))
    later = (scores.kind == "student") & (scores.seed > 1)
    scores.loc[later, ["dnsmos_ovrl", "dnsmos_ovrl_i", "pesq_nb", "pesq_nb_i"]] = np.nan
    table = summary_table(scores)
    cosine = table[table.method == "cosine"].iloc[0]
    assert (cosine.n_seeds, cosine.si_sdr_n_seeds, cosine.dnsmos_ovrl_n_seeds) == (3, 3, 1)
    row = next(line for line in markdown_table(table).splitlines() if "cosine" in line)
    assert row.count("(1 seed)") == 2  # PESQ-NB and DNSMOS-OVRL, not the core metrics
    teacher = next(line for line in markdown_table(table).splitlines() if "eacher" in line)
    assert "seed)" not in teacher
