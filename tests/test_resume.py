"""Interruption loses nothing: a real `snakemake` run killed with SIGKILL (whole process group,
as a crash would) while a corpus split is half written, then again while the teacher is in its
second epoch, resumes on rerunning the same command and ends with the tables of an
uninterrupted run.

Kept cheap: a subset of the smoke preset (one test set, methods none + cosine, one seed, no
reference denoisers) whose models are those of the shared smoke reference run (same corpus,
teacher and student settings, same seeds), so its score tables are compared file for file.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from smoke_runs import snakemake, snakemake_command, venv_env

pytestmark = pytest.mark.dag

SUBSET = """\
students:
  methods: [none, cosine]
  seeds: [1]
evaluation:
  test_sets: [test_matched]
  references: []
"""
SCORED = ["input/test_matched.csv", "teacher/test_matched.csv",
          "students/width_1_4/none/seed1/test_matched.csv",
          "students/width_1_4/cosine/seed1/test_matched.csv"]
KILL_TIMEOUT_S = 1200


def corpus_dir(workdir: Path) -> Path:
    return workdir / "results" / "corpus" / "synthetic"


def finished_splits(workdir: Path) -> dict[str, int]:
    """Split name -> manifest mtime (ns) of every split built completely. A staging folder
    (``.<split>.<random>.tmp``) holds its manifest just before it is renamed into place, and
    pathlib's ``*`` matches dot names, so those are left out by name."""
    return {p.parent.name: p.stat().st_mtime_ns for p in corpus_dir(workdir).glob("*/manifest.csv")
            if not p.parent.name.startswith(".")}


def half_written_splits(workdir: Path) -> list[str]:
    """Splits whose staging folder already holds audio (the split itself is not visible yet)."""
    root = corpus_dir(workdir)
    if not root.is_dir():
        return []
    return [re.match(r"\.(\w+?)\.", stage.name)[1] for stage in root.glob(".*.tmp")
            if next(stage.rglob("*.wav"), None) is not None]


def kill_when(workdir: Path, subset: Path, ready) -> None:
    """Start the subset run, SIGKILL its whole process group as soon as ``ready()`` holds."""
    log = (workdir / "snakemake.log").open("a")
    proc = subprocess.Popen(snakemake_command(workdir, configfiles=(subset,)), stdout=log,
                            stderr=subprocess.STDOUT, env=venv_env(), start_new_session=True)
    deadline = time.monotonic() + KILL_TIMEOUT_S
    try:
        while not ready():
            assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before the kill point"
            assert time.monotonic() < deadline, "kill point not reached in time"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        log.close()


def unlock(workdir: Path, subset: Path) -> None:
    result = snakemake(workdir, "--unlock", configfiles=(subset,))
    assert result.returncode == 0, result.stderr[-3000:]


def teacher_in_second_epoch(workdir: Path) -> bool:
    """The teacher's log shows epoch 2's progress bar: epoch 1's checkpoint is on disk (it is
    written before the next bar starts) and epoch 2 is running."""
    log = workdir / "results" / "logs" / "models" / "teacher.log"
    return log.is_file() and "epoch 2: " in log.read_text(errors="replace")


def test_killed_run_resumes_to_the_uninterrupted_tables(tmp_path, smoke_reference):
    workdir = tmp_path / "run"
    workdir.mkdir()
    subset = tmp_path / "subset.yaml"
    subset.write_text(SUBSET)

    # 1. crash while a corpus split is half written (and another one is already finished)
    kill_when(workdir, subset, lambda: finished_splits(workdir) and half_written_splits(workdir))
    before = finished_splits(workdir)
    half = set(half_written_splits(workdir)) - set(before)
    assert half, "no split was half written at the kill"

    # 2. rerun; crash again while the teacher is in its second epoch
    unlock(workdir, subset)
    kill_when(workdir, subset, lambda: teacher_in_second_epoch(workdir))
    teacher_dir = workdir / "results" / "models" / "teacher"
    assert not (teacher_dir / "model.pt").exists(), "the kill came after training had finished"
    assert torch.load(teacher_dir / "checkpoint.pt", weights_only=True)["next_epoch"] == 1

    # 3. rerun to the end
    unlock(workdir, subset)
    final = snakemake(workdir, configfiles=(subset,))
    assert final.returncode == 0, final.stderr[-5000:]

    teacher_log = (workdir / "results" / "logs" / "models" / "teacher.log").read_text()
    assert "resuming from results/models/teacher/checkpoint.pt after epoch 1" in teacher_log
    assert "epoch 1/2" not in teacher_log and "epoch 2/2" in teacher_log
    after = finished_splits(workdir)
    assert {s: after[s] for s in before} == before, "a finished split was rebuilt"
    assert half <= set(after)
    assert not list(corpus_dir(workdir).glob(".*")), "staging leftovers of the killed build remain"
    assert not (teacher_dir / "checkpoint.pt").exists()

    ours = workdir / "results" / "scores"
    reference = smoke_reference.results / "scores"
    for name in SCORED:
        assert_same_scores(pd.read_csv(ours / name), pd.read_csv(reference / name), name)


def assert_same_scores(ours: pd.DataFrame, reference: pd.DataFrame, name: str) -> None:
    """Bit for bit, except ESTOI: pystoi computes it with BLAS matrix products whose last bit
    was seen to differ between two runs of the same code on the same audio (relative 1e-16, so
    up to ~1e-12 in the difference ``estoi_i``); every other column repeats exactly."""
    blas = [c for c in ours.columns if c.endswith("estoi") or c.endswith("estoi_i")]
    pd.testing.assert_frame_equal(ours.drop(columns=blas), reference.drop(columns=blas),
                                  check_exact=True, obj=name)
    pd.testing.assert_frame_equal(ours[blas], reference[blas], check_exact=False, rtol=0,
                                  atol=1e-11, obj=name)
