"""The whole DAG on the smoke preset: real TTS, training, scoring and report, with Snakemake."""
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from smoke_runs import SMOKE, planned_jobs, recorded_setup, smoke_test_sets, snakemake
from kdsd.corpus.recorded import EXTRA_COLUMNS

pytestmark = pytest.mark.dag


@pytest.fixture(scope="module")
def smoke_run(smoke_reference):
    return smoke_reference.results, smoke_reference.env, smoke_reference.workdir


def test_summary_table_has_one_finite_row_per_method_scenario_test_set(smoke_run):
    results, _, _ = smoke_run
    smoke = yaml.safe_load(SMOKE.read_text())
    table = pd.read_csv(results / "tables" / "summary.csv")
    students = table[table.kind == "student"]
    expected = {(m, s, t) for m in smoke["students"]["methods"] for s in smoke["students"]["scenarios"]
                for t in smoke_test_sets()}
    assert set(zip(students.method, students.scenario, students.test_set)) == expected
    assert len(students) == len(expected)
    assert (students.n_seeds == len(smoke["students"]["seeds"])).all()
    for column in ("si_sdr_mean", "si_sdr_std", "stoi_mean", "pesq_wb_mean", "si_sdr_i_mean"):
        assert np.isfinite(students[column]).all(), column
    assert set(table.kind) == {"input", "teacher", "student", "reference"}
    references = table[table.kind == "reference"]
    assert set(references.method) == {"rnnoise", "deepfilternet3", "spectral_gating"}
    assert np.isfinite(references.si_sdr_mean).all() and (references.n_seeds == 1).all()


def test_score_tables_follow_the_contract(smoke_run):
    results, _, _ = smoke_run
    scores = pd.read_csv(results / "scores" / "students" / "width_1_4" / "cosine" / "seed1" / "test_noise.csv")
    from kdsd.metrics import METRICS

    for column in ("utt_id", "model", "method", "scenario", "seed", "test_set", "nan_reason"):
        assert column in scores.columns, column
    for metric in METRICS:  # every metric, for the input and the estimate, and the improvement
        for column in (f"input_{metric}", metric, f"{metric}_i"):
            assert column in scores.columns, column
    assert scores[["pesq_wb", "estoi"]].notna().all().all()
    # seed 1 gets the secondary metrics on evaluation.secondary_metric_test_sets only (config.yaml:
    # test_matched), the core ones elsewhere
    assert scores.dnsmos_ovrl.isna().all() and scores.nan_reason.str.contains("secondary_metric_test_sets").all()
    matched = pd.read_csv(results / "scores" / "students" / "width_1_4" / "cosine" / "seed1" / "test_matched.csv")
    assert matched[["pesq_nb", "dnsmos_ovrl", "dnsmos_p808", "csig", "ssnr", "lsd", "spk_sim"]].notna().all().all()
    assert len(scores) == yaml.safe_load(SMOKE.read_text())["corpus"]["utterances"]["test_noise"]
    assert (scores.method == "cosine").all() and (scores.seed == 1).all()
    assert np.allclose(scores.si_sdr_i, scores.si_sdr - scores.input_si_sdr)
    # seed 2 is past the smoke preset's secondary_metric_seeds: core metrics only, with the reason
    core_only = pd.read_csv(results / "scores" / "students" / "width_1_4" / "cosine" / "seed2" / "test_noise.csv")
    assert core_only[["pesq_wb", "stoi", "estoi", "si_sdr"]].notna().all().all()
    assert core_only[["pesq_nb", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"]].isna().all().all()
    assert core_only.nan_reason.str.contains("secondary_metric_seeds").all()
    assert core_only[["csig", "wer", "spk_sim"]].isna().all().all()
    # the teacher and references: every metric on test_matched; elsewhere all but the switchable
    # groups (WER above all), which no student gets there either
    switchable = ["dnsmos_p808", "csig", "cbak", "covl", "ssnr", "lsd", "wer", "spk_sim"]
    for model in ("teacher", "references/spectral_gating"):
        full = pd.read_csv(results / "scores" / model / "test_matched.csv")
        assert full[["pesq_nb", "dnsmos_ovrl", *switchable, "clean_wer"]].notna().all().all(), model
        base = pd.read_csv(results / "scores" / model / "test_noise.csv")
        assert base[["pesq_wb", "pesq_nb", "estoi", "si_sdr", "dnsmos_ovrl"]].notna().all().all(), model
        assert base[switchable + [f"input_{m}" for m in switchable] + ["clean_wer"]].isna().all().all(), model
        assert base.nan_reason.str.contains("wer, speaker_similarity").all(), model


def test_outputs_logs_benchmarks_and_report_exist(smoke_run):
    results, _, _ = smoke_run
    for path in ("summary.md", "tables/summary.md", "tables/cost.csv", "plots/improvements.png",
                 "plots/improvements_secondary.png",
                 "plots/pareto.png", "plots/learning_curves.png", "plots/claim.png", "cost/teacher.json",
                 "tables/comparisons.csv", "tables/claim.csv", "tables/retained.csv", "tables/primary.csv",
                 "tables/slopes.csv", "tables/budgets.csv",
                 "report.html", "logs/models/teacher.log", "benchmarks/models/teacher.tsv",
                 "models/teacher/history.csv"):
        assert (results / path).is_file() and (results / path).stat().st_size > 0, path
    summary = (results / "summary.md").read_text()
    assert summary.split("\n\n")[1].startswith("Primary question") and "**Verdict on the claim:" in summary
    # Two seeds, one scenario: the primary tests are descriptive (level) or not testable (trend),
    # so no p-value may be printed.
    assert "p =" not in summary and "descriptive only" in summary and "test_matched" in summary
    primary = pd.read_csv(results / "tables" / "primary.csv")
    assert list(zip(primary.baseline, primary.test)) == [
        ("none", "level"), ("none", "trend"), ("sp2step", "level"), ("sp2step", "trend")]
    assert primary.p.isna().all() and set(primary.verdict) == {"descriptive only", "not testable"}
    assert (primary.loc[primary.test == "level", "n_seeds"] == 2).all()
    comparisons = pd.read_csv(results / "tables" / "comparisons.csv")
    cells = comparisons[(comparisons.method == "cosine") & (comparisons.metric == "si_sdr")]
    assert set(cells.baseline) == {"none", "sp2step"} and (cells.n_seeds == 2).all()
    assert set(comparisons.family) == {"exploratory"} and set(cells.reading) == {"descriptive only"}
    budgets = pd.read_csv(results / "tables" / "budgets.csv").set_index("method")
    assert (budgets.n_seeds == 2).all() and budgets.loc["none", "kd_epochs"] == 0 < budgets.loc["cosine", "kd_epochs"]
    for test_set in smoke_test_sets():
        examples = results / "examples" / test_set
        assert (examples / "spectrograms.png").stat().st_size > 10_000
        roles = {p.stem.rsplit("_", 1)[-1] for p in examples.glob("*.wav")}
        assert {"clean", "noisy", "teacher", "rnnoise", "deepfilternet3"} <= roles
        assert len(list(examples.glob("*_best_student.wav"))) == 3
        assert len(list(examples.glob("*_spectral_gating.wav"))) == 3
    assert not (results / "models" / "teacher" / "checkpoint.pt").exists()


def test_corpus_report_describes_every_split(smoke_run):
    results, _, _ = smoke_run
    corpus = pd.read_csv(results / "tables" / "corpus.csv")
    assert corpus.split.tolist() == ["train", "valid", *smoke_test_sets()]
    smoke = yaml.safe_load(SMOKE.read_text())["corpus"]["utterances"]
    assert corpus.set_index("split").utterances.to_dict() == {s: smoke[s] for s in corpus.split}
    by_split = corpus.set_index("split")
    assert by_split.loc["test_snr", "snr_max"] <= -5.0 <= by_split.loc["train", "snr_min"]
    assert by_split.loc["test_reverb", "reverberant"] == 1.0 and by_split.loc["train", "reverberant"] == 0.0
    for plot in ("corpus_snr.png", "corpus_families.png", "corpus_spectrograms.png"):
        assert (results / "plots" / plot).stat().st_size > 5_000, plot
    index = pd.read_csv(results / "examples" / "corpus" / "index.csv")
    assert set(index.split) == set(smoke_test_sets())
    assert "corpus_spectrograms.png" in (results / "report.html").read_text(errors="ignore")


def test_test_recorded_is_built_from_the_packages_and_scored_for_every_model(smoke_run):
    reason = recorded_setup()[1]
    if reason:
        pytest.skip(reason)
    results, _, _ = smoke_run
    manifest = pd.read_csv(results / "corpus" / "synthetic" / "test_recorded" / "manifest.csv")
    smoke = yaml.safe_load(SMOKE.read_text())["corpus"]["utterances"]["test_recorded"]
    assert len(manifest) == smoke and set(manifest.engine) == {"recorded"} and set(EXTRA_COLUMNS) <= set(manifest)
    assert manifest.speaker.nunique() == smoke and "en" in set(manifest.language)  # round-robin, English first
    for model in ("input", "teacher", "students/width_1_4/cosine/seed1", "references/rnnoise"):
        scores = pd.read_csv(results / "scores" / model / "test_recorded.csv")
        column = "input_si_sdr" if model == "input" else "si_sdr"
        assert len(scores) == smoke and np.isfinite(scores[column]).all(), model
    credits = pd.read_csv(results / "tables" / "corpus_sources.csv").set_index("package")
    assert credits.loc["flare-game", "noise_recordings"] >= 1 and credits.utterances.sum() >= smoke
    assert "Recorded sources" in (results / "tables" / "corpus.md").read_text()


def test_cost_table_counts_deployed_students_only(smoke_run):
    results, _, _ = smoke_run
    cost = pd.read_csv(results / "tables" / "cost.csv")
    assert len(cost) == 1 + 6 + 3  # teacher + 3 methods × 2 seeds + 3 reference denoisers
    refs = cost[cost.kind == "reference"]
    assert refs.available.all() and refs.macs_per_s.isna().all() and (refs.rtf_1thread > 0).all()
    teacher = cost[cost.kind == "teacher"].iloc[0]
    cosine = cost[(cost.method == "cosine")].iloc[0]
    assert cosine.params < teacher.params and cosine.macs_per_s < teacher.macs_per_s
    assert cosine.adapter_params > 0 and (cost.rtf_1thread > 0).all()
    # The cosine projector is trained but never deployed: same size as the student alone.
    assert cosine.params == cost[cost.method == "none"].iloc[0].params
    # Every student's training budget, from its own job: sp2step (step2_epochs: all) trains
    # longer than the others; only KD epochs run the teacher. Timings come from one job per scenario.
    students = cost[cost.kind == "student"].set_index(["method", "seed"])
    steps = students.optimizer_steps
    assert (steps.loc["sp2step"] > steps.loc["none"]).all() and (steps.loc["cosine"] == steps.loc["none"]).all()
    assert (students.teacher_forwards.loc["none"] == 0).all()
    assert (students.teacher_forwards.loc["cosine"] == steps.loc["cosine"]).all()
    assert 0 < students.teacher_forwards.loc["sp2step"].max() < steps.loc["sp2step"].min()
    assert students.rtf_1thread.nunique() == 1  # one architecture, timed once
    assert (results / "cost" / "scenarios" / "width_1_4.json").is_file()


def test_every_student_is_exported_to_onnx_with_latency_and_onnx_speed(smoke_run):
    results, _, _ = smoke_run
    students = sorted(results.glob("models/students/**/model.pt"))
    assert len(students) == 6 and all((p.parent / "model.onnx").is_file() for p in students)
    cost = pd.read_csv(results / "tables" / "cost.csv")
    ours = cost[cost.kind != "reference"]
    assert (ours.rtf_onnx_1thread > 0).all() and (ours.latency_ms == 72.0).all()  # depth 2: 5 frames
    refs = cost[cost.kind == "reference"].set_index("method")
    assert refs.loc["rnnoise", "latency_ms"] == 30.0 and refs.loc["deepfilternet3", "latency_ms"] == 40.0


def test_rerun_has_nothing_to_do(smoke_run):
    _, env, workdir = smoke_run
    dry = snakemake(workdir, "-n", env=env)
    assert dry.returncode == 0
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_new_methods_and_seeds_train_only_the_new_students(smoke_run, tmp_path):
    """A student job sees only its own scenario and method (kdsd.train.jobs.student_job_config),
    so growing a finished study plans the new students, not a retraining of all of them."""
    _, env, workdir = smoke_run
    smoke = yaml.safe_load(SMOKE.read_text())["students"]
    grown = tmp_path / "grown.yaml"
    grown.write_text(yaml.safe_dump({
        "students": {"methods": smoke["methods"] + ["cosine_mse"], "seeds": smoke["seeds"] + [3]},
        "kd": {"cosine_mse": {"method": "cosine", "distance": "mse"}, "hint": {"kd_weight": 3.0}}}))
    dry = snakemake(workdir, "-n", configfiles=(grown,), env=env)
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned_jobs(dry.stdout + dry.stderr)
    # students train side by side and are scored together, one group job per seed each, holding
    # only its new students; the teacher's tables are current
    for stage in ("distill_students_", "score_students_"):
        groups = {rule: n for rule, n in jobs.items() if rule.startswith(stage)}
        assert groups == {f"{stage}seed{s}": 1 for s in (1, 2, 3)}, jobs
    planned = {"distill_students_": set(), "score_students_": set()}  # the students the group jobs write
    for block in re.split(r"\n(?=(?:local)?rule )", dry.stdout + dry.stderr):
        for stage, pattern in (("distill_students_", r"results/models/students/([^,\s]+?)/model\.pt"),
                               ("score_students_", r"results/scores/students/([^,\s]+?)/job\.json")):
            if re.match(rf"(?:local)?rule {stage}", block):
                outputs = re.search(r"^    output: (.*)$", block, re.M).group(1)
                planned[stage] |= set(re.findall(pattern, outputs))
    scenario = smoke["run_scenarios"][0] if smoke.get("run_scenarios") else next(iter(smoke["scenarios"]))
    new_students = ({f"{scenario}/cosine_mse/seed{s}" for s in (1, 2, 3)}
                    | {f"{scenario}/{m}/seed3" for m in smoke["methods"]})
    assert planned == {"distill_students_": new_students, "score_students_": new_students}, planned
    assert not {"train_teacher", "build_corpus_split", "score_model", "score_input"} & set(jobs), jobs
