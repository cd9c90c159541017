"""The SLURM profile on a real (one-node, localhost) SLURM cluster: `.ci/run` starts one with
workflow/scripts/local-slurm.sh. The smoke preset runs with ``--profile profiles/slurm`` (the
``second_run`` fixture, shared with test_determinism.py); without ``sbatch`` these tests are
skipped, with the reason shown."""
import re

import pytest

from kdsd.cluster import slurm_cpus_per_node
from smoke_runs import (BROKEN_GROUP, BROKEN_MODEL, HEALTHY_MODEL, executed_jobs, planned_jobs,
                        slurm_missing_reason, slurm_submissions, table_differences)

pytestmark = [pytest.mark.dag, pytest.mark.slurm,
              pytest.mark.skipif(slurm_missing_reason() is not None,
                                 reason=f"no SLURM run: {slurm_missing_reason()}")]

TEST_SET = "test_matched"


@pytest.fixture(scope="module")
def slurm_run(second_run):
    assert second_run.via_slurm, "a cluster answers sinfo, yet the second run did not use SLURM"
    return second_run


def test_every_job_went_through_sbatch_and_kept_its_log(slurm_run):
    planned = planned_jobs(slurm_run.output)
    submitted = slurm_submissions(slurm_run.output)
    remote = sum(planned.values()) - planned.get("all", 0)  # `all` has no action: run locally
    assert {"train_teacher", "score_model", "report_results"} <= set(planned)
    assert any(rule.startswith("distill_students_") for rule in planned), planned
    assert len(submitted) == remote
    logs = sorted((slurm_run.workdir / "slurm-logs").rglob("*.log"))
    assert sorted(submitted.values()) == logs  # one kept SLURM log per job, successful ones too
    for log in logs:
        assert "1 of 1 steps (100%) done" in log.read_text(), log
    print(f"SLURM smoke run: {remote} jobs through sbatch in {slurm_run.wall_s:.0f} s")


def test_threads_are_capped_to_the_node(slurm_run):
    """The teacher rule asks for 4 threads; a 2-CPU node must get a job it can start."""
    teacher = re.search(r"rule train_teacher:\n(?:    .*\n)*?    threads: (\d+)", slurm_run.output)
    assert int(teacher.group(1)) == min(4, slurm_cpus_per_node())


def test_summary_equals_the_local_run_number_for_number(smoke_reference, slurm_run):
    """Same preset, seeds and thread counts; the wall-clock rtf_1thread column is left out and
    ESTOI columns compared to 1e-12 (why: LAST_BIT_COLUMNS in smoke_runs.py)."""
    for name in ("tables/summary.csv", "tables/cost.csv"):
        assert table_differences(smoke_reference.results / name, slurm_run.results / name) == []


def test_failed_job_is_reported_and_a_rerun_redoes_only_what_is_missing(smoke_reference, slurm_failure):
    """One student's model corrupted so that its scoring job fails, then restored and the run
    resumed, on a copy of the SLURM run (smoke_runs.fail_then_rerun says how)."""
    failed, resumed = slurm_failure.failed, slurm_failure.resumed
    assert len(slurm_failure.broken_tables) > 1  # one job writes every test set's table
    assert len(slurm_failure.healthy_tables) == len(slurm_failure.broken_tables)
    assert failed.returncode != 0
    assert f"results/logs/scores/students/{BROKEN_GROUP}.log" in failed.stderr  # Snakemake names the failed job's log
    assert "not a kdsd model file" in slurm_failure.failed_job_log
    assert slurm_failure.healthy_written  # the healthy job finished regardless
    assert not slurm_failure.broken_written

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rerun = executed_jobs(resumed.stderr)
    assert (f"score_students_{BROKEN_GROUP}", "") in rerun, resumed.stderr[-3000:]
    assert not any(w == f"model={HEALTHY_MODEL}" for _, w in rerun)  # finished: not rerun
    # Only the failed job and what reads its tables (the summary, every test set's listening
    # examples, and the runtime table, which sums every job's benchmark file after the report) run.
    assert planned_jobs(resumed.stderr) == {f"score_students_{BROKEN_GROUP}": 1, "report_results": 1,
                                           "listening_examples": len(slurm_failure.broken_tables),
                                           "runtime_table": 1, "all": 1}
    results = slurm_failure.workdir / "results"
    for name in (f"scores/{BROKEN_MODEL}/{TEST_SET}.csv", f"scores/{HEALTHY_MODEL}/{TEST_SET}.csv",
                 "tables/summary.csv"):
        assert table_differences(smoke_reference.results / name, results / name) == [], name
