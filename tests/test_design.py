"""The study design around the primary family (issues 25 and 26): the transfer question on recorded
speech, the pairing figures, the budget control and teachers that vary with the seed."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kdsd.analysis.claim import retained_runs
from kdsd.analysis.pipeline import analyse, write_results
from kdsd.analysis.primary import cell_gains, primary_table, transfer_table
from kdsd.analysis.seeds import BETTER, comparisons
from kdsd.analysis.settings import AnalysisSettings
from kdsd.analysis.summary import summary_text
from kdsd.errors import KdsdError
from test_stats import SCENARIO_PARAMS, TEACHER_PARAMS, _rows, _write_inputs, simulate_scores

NO_COSTS = pd.DataFrame(columns=["kind", "method", "scenario"])


def _grid_scores(gain, *, seeds=6, test_sets=("test_a", "test_b"), methods=("none", "sp2step", "cosine"),
                 seed=0, seed_sd=0.05):
    return simulate_scores(np.random.default_rng(seed), gain, methods=methods, scenarios=tuple(SCENARIO_PARAMS),
                           test_sets=test_sets, seeds=seeds, seed_sd=seed_sd)


# --- the transfer question (issue 26) ----------------------------------------------------------------

def _transfer_gain(method, scenario, test_set):
    """cosine leads none by 0.4 dB on synthetic speech and trails it by 0.3 dB on recorded speech;
    sp2step equals cosine everywhere."""
    lead = -0.3 if test_set == "test_recorded" else 0.4
    return 6.0 + {"none": -lead, "sp2step": 0.0, "cosine": 0.0}[method]


def test_transfer_test_sets_are_kept_out_of_the_primary_family_and_tested_on_their_own():
    scores = _grid_scores(_transfer_gain, test_sets=("test_a", "test_b", "test_recorded"))
    runs = retained_runs(scores)
    settings = AnalysisSettings()
    primary = primary_table(runs, settings).set_index(["baseline", "test"])
    assert set(primary.test_sets) == {"test_a test_b"}
    assert primary.loc[("none", "level"), "estimate"] == pytest.approx(0.4, abs=0.05)
    transfer = transfer_table(runs, settings).set_index("baseline")
    assert list(transfer.index) == ["none", "sp2step"] and set(transfer.test) == {"level"}
    assert set(transfer.test_sets) == {"test_recorded"}
    per_seed = cell_gains(runs[runs.test_set == "test_recorded"], "cosine", "none").diffs.mean(axis=(0, 1))
    assert transfer.loc["none", "estimate"] == pytest.approx(per_seed.mean())
    assert transfer.loc["none", "estimate"] == pytest.approx(-0.3, abs=0.05)
    # Holm over its own two tests: the smaller p is tested at α/2, the TOST at α/2 (a 95 % interval)
    first = transfer.p.idxmin()
    assert transfer.loc[first, "decision_level"] == pytest.approx(0.975)
    assert transfer.tost_level.to_numpy() == pytest.approx([0.95, 0.95])
    assert transfer.loc["none", "verdict"] == "worse"
    # without the transfer question the recorded test set joins the primary family
    pooled = primary_table(runs, AnalysisSettings(transfer_test_sets=())).set_index(["baseline", "test"])
    assert pooled.loc[("none", "level"), "estimate"] == pytest.approx((0.4 + 0.4 - 0.3) / 3, abs=0.05)


def test_transfer_section_follows_the_primary_tests_and_compares_the_verdicts(tmp_path):
    scores = _grid_scores(_transfer_gain, test_sets=("test_a", "test_recorded"))
    write_results(*_write_inputs(scores, tmp_path), tmp_path / "out", {"config": {}})
    transfer = pd.read_csv(tmp_path / "out" / "tables" / "transfer.csv").set_index("baseline")
    assert {"decision_low", "decision_high", "p_signflip", "tost_low", "verdict"} <= set(transfer.columns)
    text = (tmp_path / "out" / "summary.md").read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[:3] == ["## Primary tests (pre-registered: Holm-corrected decisions, TOST equivalence)",
                            "## Transfer question (pre-registered): recorded speech",
                            "## What the verdicts rest on"]
    section = text.split("## Transfer question (pre-registered): recorded speech\n\n")[1].split("\n\n## ")[0]
    last = section.split("\n\n")[-1]
    primary = pd.read_csv(tmp_path / "out" / "tables" / "primary.csv").set_index(["baseline", "test"])
    synthetic, none, sp2 = primary.loc[("none", "level")], transfer.loc["none"], transfer.loc["sp2step"]
    assert (synthetic.verdict, none.verdict, sp2.verdict) == ("better", "worse", "equivalent")
    sp2_synthetic = primary.loc[("sp2step", "level"), "estimate"]
    assert last == (f"Compared with the primary level verdicts: against `none` it differs (primary: better, "
                    f"{synthetic.estimate:+.2f} dB; recorded: worse, {none.estimate:+.2f} dB); against `sp2step` it "
                    f"agrees (primary: equivalent within ±0.20 dB, {sp2_synthetic:+.2f} dB; recorded: equivalent "
                    f"within ±0.20 dB, {sp2.estimate:+.2f} dB).")
    assert "- level against `none`: **cosine worse**" in section


def test_without_recorded_scores_the_transfer_question_says_so_in_one_line():
    analysis = analyse(_grid_scores(_transfer_gain, seeds=3), NO_COSTS, AnalysisSettings())
    assert analysis.transfer.empty
    heading = "## Transfer question (pre-registered): recorded speech\n\n"
    section = summary_text(analysis, provenance={}).split(heading)[1]
    assert section.split("\n\n")[0] == (
        "Transfer question (`analysis.transfer_test_sets`: `test_recorded`): this run has no `cosine` and baseline "
        "scores on those test sets, so it is not answered.")
    none = analyse(_grid_scores(_transfer_gain, seeds=3), NO_COSTS, AnalysisSettings(transfer_test_sets=()))
    assert "Transfer question: none pre-registered (`analysis.transfer_test_sets` is empty)." in summary_text(
        none, provenance={})


# --- pairing figures (issue 25) ---------------------------------------------------------------------

def test_pairing_figures_give_the_correlation_of_the_seeds_gains_and_the_sd_of_their_difference():
    run_effect = {"none": [0.3, -0.2, 0.1, 0.4, -0.5, 0.0], "cosine": [0.2, -0.1, 0.3, 0.3, -0.4, -0.2],
                  "sp2step": [-0.3, 0.2, 0.4, -0.1, 0.1, 0.0]}
    frames = []
    utts = [f"u{i}" for i in range(4)]
    for test_set in ("test_a", "test_b"):
        frames.append(_rows(utts, "teacher", "teacher", "teacher", 1, test_set, TEACHER_PARAMS, np.full(4, 8.0)))
        for scenario, params in SCENARIO_PARAMS.items():
            for method, effects in run_effect.items():
                for seed, effect in enumerate(effects, start=1):
                    frames.append(_rows(utts, "student", method, scenario, seed, test_set, params,
                                        np.full(4, 5.0 + effect)))
    analysis = analyse(pd.concat(frames, ignore_index=True), NO_COSTS, AnalysisSettings())
    level = analysis.primary[analysis.primary.test == "level"].set_index("baseline")
    cosine = np.array(run_effect["cosine"])
    for base in ("none", "sp2step"):
        other = np.array(run_effect[base])
        row = level.loc[base]
        assert row.gain_correlation == pytest.approx(np.corrcoef(cosine, other)[0, 1])
        assert (row.sd_seed_method, row.sd_seed_baseline) == pytest.approx((cosine.std(ddof=1), other.std(ddof=1)))
        assert row.sd_seed == pytest.approx((cosine - other).std(ddof=1))
        assert row.sd_seed ** 2 == pytest.approx(row.sd_seed_method ** 2 + row.sd_seed_baseline ** 2
                                                 - 2 * row.gain_correlation * row.sd_seed_method * row.sd_seed_baseline)
    assert analysis.primary.loc[analysis.primary.test == "trend", "gain_correlation"].isna().all()
    text = summary_text(analysis, provenance={})
    row = level.loc["sp2step"]
    assert (f"- against `sp2step`: the seeds' level gains of `cosine` and `sp2step` correlate r = "
            f"{row.gain_correlation:+.2f} over 6 seeds (seed SDs {row.sd_seed_method:.2f} and "
            f"{row.sd_seed_baseline:.2f} dB); the seed SD of `cosine` − `sp2step` is {row.sd_seed:.2f} dB, where "
            f"uncorrelated gains with these SDs would give "
            f"{math.hypot(row.sd_seed_method, row.sd_seed_baseline):.2f} dB.") in text
    assert level.loc["none", "gain_correlation"] > 0.8 > 0.2 > row.gain_correlation


# --- the budget control (issue 25) --------------------------------------------------------------------

CONTROL_CONFIG = {"kd": {"none_budget": {"method": "none", "train": {"epochs_of": "sp2step"}}, "cosine": {}},
                  "students": {"methods": ["none", "sp2step", "none_budget", "cosine"], "seeds": [1, 2, 3, 4, 5, 6],
                               "scenarios": {c: {} for c in SCENARIO_PARAMS}}}


def _control_gain(method, scenario, test_set):
    return 5.0 + {"none": 0.0, "none_budget": 0.1, "sp2step": 0.3, "cosine": 0.3}[method]


def _histories(root, epochs: dict) -> list:
    paths = []
    for method, n in epochs.items():
        for seed in (1, 2):
            path = root / "models" / "students" / "w1_4" / method / f"seed{seed}" / "history.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            kd = 2 if method == "sp2step" else (5 if method == "cosine" else 0)
            pd.DataFrame({"epoch": range(1, n + 1), "w_kd": [1.0] * kd + [0.0] * (n - kd)}).to_csv(path, index=False)
            paths.append(path)
    return paths


def test_the_budget_control_is_read_from_the_config_and_kept_out_of_the_primary_family(tmp_path):
    settings = AnalysisSettings.from_config(CONTROL_CONFIG)
    assert settings.budget_controls == (("none_budget", "sp2step"),)
    with pytest.raises(KdsdError, match=r"^config analysis\.primary\.baselines: 'none_budget' is the budget control "
                                        r"of 'sp2step' \(kd\.none_budget\.train\.epochs_of\), not a baseline"):
        AnalysisSettings.from_config({**CONTROL_CONFIG,
                                      "analysis": {"primary": {"baselines": ["none", "none_budget"]}}})
    scores = _grid_scores(_control_gain, methods=("none", "sp2step", "none_budget", "cosine"), seed_sd=0.02)
    histories = _histories(tmp_path, {"none": 5, "sp2step": 7, "none_budget": 7, "cosine": 5})
    analysis = analyse(scores, NO_COSTS, settings, histories)
    assert list(zip(analysis.primary.baseline, analysis.primary.test)) == [
        ("none", "level"), ("none", "trend"), ("sp2step", "level"), ("sp2step", "trend")]
    control = analysis.budget_controls.iloc[0]
    assert (control.method, control.control, control.n_seeds) == ("sp2step", "none_budget", 6)
    assert control.mean_diff == pytest.approx(0.2, abs=0.03) and control.reading == "above 0"
    text = summary_text(analysis, provenance={})
    assert (f"Budget control (exploratory): `sp2step`'s lead over `none_budget` (trained for as many optimiser "
            f"steps as `sp2step`, without KD) is {control.mean_diff:+.2f} dB, unadjusted 95 % CI "
            f"[{control.ci95_low:+.2f}, {control.ci95_high:+.2f}] over 6 seeds (above 0; per seed, the level over "
            f"every test set of the primary family in `w1_2`, `w1_4` and `w1_8`, where the control ran)") in text
    # beside sp2step: in the budgets table (which names what it controls), the model and retained tables
    budgets = analysis.budgets
    assert list(budgets.method) == ["none", "sp2step", "none_budget", "cosine"]
    assert budgets.set_index("method").loc["none_budget", ["control_of", "epochs", "kd_epochs"]].tolist() == [
        "sp2step", 7, 0]
    assert "| w1_4 | none_budget (budget of sp2step) | 2 | 7 | 0 |" in text
    models = analysis.table[(analysis.table.kind == "student") & (analysis.table.test_set == "test_a")
                            & (analysis.table.scenario == "w1_4")]
    assert list(models.method) == ["none", "sp2step", "none_budget", "cosine"]
    assert "| none retained [95 % CI] | sp2step retained [95 % CI] | none_budget retained [95 % CI] |" in text
    # the exploratory comparisons: sp2step − none_budget (its lead), never the other way round
    pairs = set(zip(analysis.comparisons.method, analysis.comparisons.baseline))
    assert ("sp2step", "none_budget") in pairs and ("none_budget", "sp2step") not in pairs
    assert ("none_budget", "none") in pairs


def test_without_runs_of_the_control_the_sentence_says_there_is_no_comparison():
    settings = AnalysisSettings.from_config(CONTROL_CONFIG)
    analysis = analyse(_grid_scores(_control_gain, seeds=3), NO_COSTS, settings)
    assert analysis.budget_controls.iloc[0].n_seeds == 0
    assert ("Budget control `none_budget` of `sp2step`: no seeds with runs of both, so no comparison."
            in summary_text(analysis, provenance={}))


# --- teachers that vary (issue 25) ----------------------------------------------------------------

TEACHER_GAINS = {1: 6.0, 2: 8.0, 3: 10.0, 4: 12.0}


def _teacher_scores(per_seed: bool) -> pd.DataFrame:
    """Each student keeps exactly half (cosine) or a quarter (none, sp2step) of its own teacher's
    gain; with one teacher (seed 1, 8 dB) every student seed uses it."""
    utts = [f"u{i}" for i in range(6)]
    frames = []
    for test_set in ("test_a", "test_b"):
        teachers = TEACHER_GAINS if per_seed else {1: 8.0}
        for seed, gain in teachers.items():
            frames.append(_rows(utts, "teacher", "teacher", "teacher", seed, test_set, TEACHER_PARAMS,
                                np.full(6, gain)))
        for scenario, params in SCENARIO_PARAMS.items():
            for method, share in (("none", 0.25), ("sp2step", 0.25), ("cosine", 0.5)):
                for seed in TEACHER_GAINS:
                    teacher = TEACHER_GAINS[seed] if per_seed else 8.0
                    frames.append(_rows(utts, "student", method, scenario, seed, test_set, params,
                                        np.full(6, share * teacher)))
    return pd.concat(frames, ignore_index=True)


def test_student_seed_k_is_matched_to_teacher_seed_k():
    scores = _teacher_scores(per_seed=True)
    runs = retained_runs(scores)
    assert (runs.teacher_gain == runs.seed.map(TEACHER_GAINS)).all()
    assert runs.cell_teacher_gain.eq(9.0).all()
    assert runs.loc[runs.method == "cosine", "retained"].to_numpy() == pytest.approx(0.5)  # own teacher
    assert runs.loc[runs.method == "none", "retained"].to_numpy() == pytest.approx(0.25)
    cells = cell_gains(runs, "cosine", "none")
    assert cells.seed_teacher_gain[0, 0] == pytest.approx([6.0, 8.0, 10.0, 12.0])
    analysis = analyse(scores, NO_COSTS, AnalysisSettings())
    trend = analysis.primary.set_index(["baseline", "test"]).loc[("none", "trend")]
    assert [float(v) for v in trend.per_seed.split()] == pytest.approx([0.0] * 4)  # a gap of 0.25 everywhere
    teacher = analysis.table[(analysis.table.kind == "teacher") & (analysis.table.test_set == "test_a")].iloc[0]
    assert (teacher.n_seeds, teacher.si_sdr_i_mean) == (4, pytest.approx(9.0))
    assert teacher.si_sdr_i_std == pytest.approx(np.std(list(TEACHER_GAINS.values()), ddof=1))
    text = summary_text(analysis, provenance={})
    assert "| teacher | " in text and "9.00 ± 2.58" in text
    assert ("one teacher per student seed (teacher seeds 1, 2, 3, 4): each seed distils from its own teacher, so "
            "the seed-level unit includes teacher variance") in text
    assert "one teacher run" not in text


def test_with_one_teacher_every_student_seed_uses_it():
    scores = _teacher_scores(per_seed=False)
    runs = retained_runs(scores)
    assert runs.teacher_gain.eq(8.0).all() and runs.cell_teacher_gain.eq(8.0).all()
    assert runs.loc[runs.method == "cosine", "retained"].to_numpy() == pytest.approx(0.5)
    text = summary_text(analyse(scores, NO_COSTS, AnalysisSettings()), provenance={})
    assert "What these verdicts are conditional on: one teacher run (teacher seed 1), one corpus draw" in text
    assert "own teacher" not in text


def test_a_student_seed_without_its_teacher_has_no_retained_fraction():
    scores = _teacher_scores(per_seed=True)
    scores = scores[~((scores.kind == "teacher") & (scores.seed == 4))]
    runs = retained_runs(scores)
    assert runs.loc[runs.seed == 4, "retained"].isna().all() and runs.loc[runs.seed == 4, "gain"].notna().all()
    assert runs.loc[runs.seed < 4, "retained"].notna().all()
    assert runs.cell_teacher_gain.eq(8.0).all()  # the mean over the teachers the cell has


# --- kdsd power ----------------------------------------------------------------------------------------

def test_power_report_prints_the_seeds_needed_and_their_range(capsys):
    from kdsd.cli import main

    assert main(["power", "--sd", "0.245", "--seeds", "6"]) in (0, None)
    out = capsys.readouterr().out
    assert "Seeds needed for 0.3 dB (80 % power, α = 0.0125)" in out
    assert "SD 0.245 [0.180, 0.432]  seeds 11  range 8–27" in out


def test_the_examples_listen_to_the_lowest_seed_teacher():
    from kdsd.analysis.examples import teacher_model

    per_seed = _teacher_scores(per_seed=True)
    per_seed.loc[per_seed.kind == "teacher", "model"] = "teachers/seed" + per_seed.seed.astype(str)
    assert teacher_model(per_seed[~((per_seed.kind == "teacher") & (per_seed.seed == 1))]) == "teachers/seed2"
    single = _teacher_scores(per_seed=False)
    assert teacher_model(single.assign(model=single.model.where(single.kind != "teacher", "teacher"))) == "teacher"
    assert teacher_model(single[single.kind == "student"]) == "teacher"
