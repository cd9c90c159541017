"""The whole DAG on the smoke preset: real TTS, training, scoring and report, with Snakemake."""
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.dag
SMOKE = REPO / "workflow" / "presets" / "smoke.yaml"


def _snakemake(workdir, env, *extra):
    cmd = ["snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
           "--configfile", str(REPO / "config.yaml"), str(SMOKE), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    import os
    import sys
    from pathlib import Path

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    workdir = tmp_path_factory.mktemp("smoke")
    run = _snakemake(workdir, env)
    assert run.returncode == 0, run.stderr[-5000:]
    report = _snakemake(workdir, env, "--report", str(workdir / "results" / "report.html"))
    assert report.returncode == 0, report.stderr[-5000:]
    return workdir / "results", env, workdir


def test_summary_table_has_one_finite_row_per_method_scenario_test_set(smoke_run):
    results, _, _ = smoke_run
    smoke = yaml.safe_load(SMOKE.read_text())
    table = pd.read_csv(results / "tables" / "summary.csv")
    students = table[table.kind == "student"]
    expected = {(m, s, t) for m in smoke["students"]["methods"] for s in smoke["students"]["scenarios"]
                for t in ("test_matched", "test_noise")}
    assert set(zip(students.method, students.scenario, students.test_set)) == expected
    assert len(students) == len(expected)
    assert (students.n_seeds == len(smoke["students"]["seeds"])).all()
    for column in ("si_sdr_mean", "si_sdr_std", "stoi_mean", "pesq_wb_mean", "si_sdr_i_mean"):
        assert np.isfinite(students[column]).all(), column
    assert set(table.kind) == {"input", "teacher", "student"}


def test_score_tables_follow_the_contract(smoke_run):
    results, _, _ = smoke_run
    scores = pd.read_csv(results / "scores" / "students" / "width_1_4" / "cosine" / "seed1" / "test_noise.csv")
    for column in ("utt_id", "model", "method", "scenario", "seed", "test_set", "input_pesq_wb", "pesq_wb",
                   "input_stoi", "stoi", "input_si_sdr", "si_sdr", "si_sdr_i"):
        assert column in scores.columns, column
    assert len(scores) == yaml.safe_load(SMOKE.read_text())["corpus"]["utterances"]["test_noise"]
    assert (scores.method == "cosine").all() and (scores.seed == 1).all()
    assert np.allclose(scores.si_sdr_i, scores.si_sdr - scores.input_si_sdr)


def test_outputs_logs_benchmarks_and_report_exist(smoke_run):
    results, _, _ = smoke_run
    for path in ("summary.md", "tables/summary.md", "plots/improvements.png", "plots/learning_curves.png",
                 "report.html", "logs/models/teacher.log", "benchmarks/models/teacher.tsv",
                 "models/teacher/history.csv"):
        assert (results / path).is_file() and (results / path).stat().st_size > 0, path
    assert "test_matched" in (results / "summary.md").read_text()
    assert not (results / "models" / "teacher" / "checkpoint.pt").exists()


def test_rerun_has_nothing_to_do(smoke_run):
    _, env, workdir = smoke_run
    dry = _snakemake(workdir, env, "-n")
    assert dry.returncode == 0
    assert "Nothing to be done" in dry.stdout + dry.stderr
