"""Snakemake runs on the smoke preset, shared by every test that needs a DAG run.

A DAG run costs minutes on 2 cores, so one local, uninterrupted run (the ``smoke_reference``
fixture in conftest.py) is the reference for all of them: the DAG-output tests read it, and the
determinism, SLURM and kill-and-resume tests compare their own runs against it.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from kdsd.corpus import recorded, recorded_collections
from kdsd.corpus.synthetic import TEST_SPLITS
from kdsd.errors import KdsdError

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "workflow" / "presets" / "smoke.yaml"
DAG_TIMEOUT_S = 2400


# Every DAG run of the tests shares one cache of the recorded packages (fetched once per machine;
# KDSD_RECORDED_CACHE moves it). Where they cannot be had, test_recorded is switched off and the
# tests of it skip with the reason.
RECORDED_CACHE = Path(os.environ.get("KDSD_RECORDED_CACHE", REPO / "data" / "recorded"))


@functools.lru_cache(maxsize=None)
def recorded_setup() -> tuple[Path, str | None]:
    """(config file giving every run the shared cache or test_recorded off, why it is off)."""
    try:
        recorded_collections.check_collections({"recorded": {"cache_dir": str(RECORDED_CACHE)}},
                                               recorded.TEST_COLLECTIONS)
        keys, reason = {"cache_dir": str(RECORDED_CACHE)}, None
    except KdsdError as exc:
        keys, reason = {"test_set": False}, f"recorded packages unavailable, test_recorded off: {exc}"
    path = Path(tempfile.mkdtemp(prefix="kdsd_recorded_")) / "recorded.yaml"
    path.write_text(yaml.safe_dump({"corpus": {"recorded": keys}}))
    return path, reason


def recorded_test_sets() -> list[str]:
    """["test_recorded"] where the smoke runs have it, else []."""
    return [] if recorded_setup()[1] else ["test_recorded"]


def smoke_test_sets() -> list[str]:
    """The smoke preset's test sets: the synthetic ones, then test_recorded where it is on."""
    return [*TEST_SPLITS, *recorded_test_sets()]


def venv_env(**extra: str) -> dict:
    """Environment whose PATH finds this interpreter's `kdsd` and `snakemake` first."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            **extra}


def snakemake_command(workdir: Path, *extra: str, configfiles: tuple = ()) -> list[str]:
    """`snakemake` on the smoke preset (over config.yaml, then ``configfiles``) in ``workdir``."""
    return ["snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
            "--configfile", str(REPO / "config.yaml"), str(SMOKE), str(recorded_setup()[0]),
            *map(str, configfiles), *extra]


def snakemake(workdir: Path, *extra: str, configfiles: tuple = (), env: dict | None = None,
              timeout: float = DAG_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_command(workdir, *extra, configfiles=configfiles),
                          capture_output=True, text=True, env=env or venv_env(), timeout=timeout)


@dataclass
class SmokeRun:
    """A finished run: its working directory and the environment it ran in."""

    workdir: Path
    env: dict

    @property
    def results(self) -> Path:
        return self.workdir / "results"

    def score_tables(self) -> dict[str, Path]:
        """Per-utterance score CSVs by path relative to ``results/scores``."""
        root = self.results / "scores"
        return {str(p.relative_to(root)): p for p in sorted(root.rglob("*.csv"))}


# --- The second run: through SLURM when a cluster answers, else a second local run. ----------

PROFILE_SLURM = REPO / "profiles" / "slurm"
# Seconds before Snakemake first polls a submitted job (the plugin's default, 40, would add
# minutes to a DAG of short jobs on a one-node cluster).
SLURM_FIRST_POLL_S = "5"


def slurm_missing_reason() -> str | None:
    """Why no SLURM run is possible here, or None when `sbatch` and a live cluster are present."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "sbatch not found (start a local cluster with workflow/scripts/local-slurm.sh start)"
    answer = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if answer.returncode != 0 or not answer.stdout.strip():
        return f"no SLURM cluster answers sinfo: {answer.stderr.strip()[:200]}"
    return None


def slurm_snakemake_command(workdir: Path, *extra: str) -> list[str]:
    """`snakemake --profile profiles/slurm` on the smoke preset; SLURM logs under ``workdir``."""
    return ["snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--profile", str(PROFILE_SLURM), "--configfile", str(REPO / "config.yaml"), str(SMOKE),
            str(recorded_setup()[0]),
            "--slurm-init-seconds-before-status-checks", SLURM_FIRST_POLL_S,
            "--slurm-logdir", str(workdir / "slurm-logs"), *extra]


# --- The shared runs start with the session and run beside the unit tests. ----------------------

class Background:
    """``work(self)`` run in a thread; ``result()`` waits for it and returns its value.

    The shared DAG runs are mostly single-threaded jobs and waits for SLURM, and the unit tests
    run on one core: started together, they keep both cores busy (conftest.py starts them at the
    session's start and orders the tests that read them last). ``work`` starts its commands with
    :meth:`run`, so that :meth:`stop` can end them; it may set ``milestone`` for others to wait on.
    """

    def __init__(self, work, workdir: Path, after: threading.Event | None = None):
        self.milestone = threading.Event()
        self.workdir = workdir
        self._work, self._after = work, after
        self._value, self._error = None, None
        self._process: subprocess.Popen | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            if self._after is not None:
                self._after.wait()
            self._value = self._work(self)
        except BaseException as exc:  # re-raised in the test that waits for it
            self._error = exc
        finally:
            self.milestone.set()

    def run(self, command: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
        """``command`` to its end (output captured), unless the session is stopping."""
        if self._stopped:
            raise RuntimeError("the test session ended before this run")
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, env=env, cwd=cwd, start_new_session=True)
        try:
            stdout, stderr = self._process.communicate(timeout=DAG_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            raise
        return subprocess.CompletedProcess(command, self._process.returncode, stdout, stderr)

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def stop(self) -> None:
        """End work the session no longer needs (an interrupt: Snakemake cancels its SLURM jobs);
        no command starts after it. ``join()`` then waits for the thread."""
        self._stopped = True
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGINT)

    def join(self) -> None:
        self._thread.join(timeout=120)


SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def slurm_submissions(snakemake_output: str) -> dict[str, Path]:
    """SLURM job id -> its log file, for every job Snakemake submitted with sbatch."""
    return {slurm_id: Path(log) for _, slurm_id, log in SUBMITTED.findall(snakemake_output)}


def planned_jobs(snakemake_output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table of a run: jobs per rule (``total`` left out)."""
    table = snakemake_output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    counts = {}
    for line in table.splitlines()[3:]:
        rule, count = line.split()
        if rule != "total":
            counts[rule] = int(count)
    return counts


def executed_jobs(snakemake_output: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job Snakemake started, in the order it printed them."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", snakemake_output):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        if head:
            wildcards = re.search(r"^    wildcards: (.*)$", block, re.M)
            jobs.append((head.group(1), wildcards.group(1) if wildcards else ""))
    return jobs


@dataclass
class SecondRun(SmokeRun):
    """The run compared against the reference: through SLURM, or local when no cluster answers."""

    via_slurm: bool = False
    output: str = ""           # Snakemake's stderr
    wall_s: float = 0.0


# Columns that measure wall-clock time, not the models: never equal between two runs.
TIMING_COLUMNS = {"rtf_1thread", "rtf_onnx_1thread", "seconds"}
# ESTOI (pystoi) is not bit-reproducible between processes: its float64 numpy reductions take a
# SIMD summation order that depends on the memory alignment of the audio arrays (the same
# utterance copied to 8 differently aligned buffers gives two results 1.1e-16 apart; the SLURM
# and local smoke runs differ by exactly that). Every column derived from it (input_estoi, estoi,
# estoi_i and their means, stds, intervals: up to 2.4e-15 seen) may therefore differ in the last
# bits, and the retained fraction (student over teacher ESTOI improvement, a small divisor on
# the smoke preset) relatively so: 3e-12 relative seen. Relative 1e-9 (plus 1e-12 absolute) is
# two orders above what was seen and far below any digit a table reports.
LAST_BIT_COLUMNS = {"estoi": 1e-9}


def table_differences(ours: Path, theirs: Path, skip: set = TIMING_COLUMNS) -> list[str]:
    """Where two CSV tables differ, value for value (NaN equals NaN); empty when identical.

    Exact equality everywhere except the columns named in ``LAST_BIT_COLUMNS`` (by substring).
    """
    import numpy as np
    import pandas as pd

    a, b = pd.read_csv(ours), pd.read_csv(theirs)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return [f"{ours.name}: columns or row count differ"]
    differences = []
    for column in (c for c in a.columns if c not in skip):
        x, y = a[column].to_numpy(), b[column].to_numpy()
        tolerance = next((t for name, t in LAST_BIT_COLUMNS.items() if name in column), 0.0)
        if x.dtype.kind in "fiu" and y.dtype.kind in "fiu":
            same = (np.allclose(x, y, rtol=tolerance, atol=1e-12, equal_nan=True) if tolerance
                    else np.array_equal(x, y, equal_nan=True))
        else:
            same = a[column].equals(b[column])  # missing values in the same places count as equal
        if not same:
            differences.append(f"{ours.name}: column {column}")
    return differences


# --- A failed SLURM job and the rerun after it, on a copy of the finished SLURM run. -------------

BROKEN_MODEL = "students/width_1_4/none/seed1"
BROKEN_GROUP = "seed1"  # students.train_together: seed; scored with the other pending students of seed 1
HEALTHY_MODEL = "teacher"


@dataclass
class FailedRerun:
    """What a run with one failing job left, and the rerun after the cause was removed."""

    workdir: Path
    failed: subprocess.CompletedProcess
    failed_job_log: str                 # the failing job's own log, as the failed run left it
    broken_tables: list[Path]           # the failing job's tables (one per test set)
    healthy_tables: list[Path]          # the tables of a job that could finish
    healthy_written: bool               # after the failed run: every healthy table is there
    broken_written: bool                # after the failed run: some broken table is there
    resumed: subprocess.CompletedProcess


def fail_then_rerun(background: Background, finished: Path, workdir: Path, env: dict) -> FailedRerun:
    """Corrupt one student's model so that its scoring job fails; restore it and rerun.

    Done on a copy of a finished SLURM run (mtimes kept: nothing is out of date), so the run
    itself stays as the other tests read it. A run in which a job failed lacks that job's tables
    and what is built from them. That state is recreated by removing both models' score tables
    and the summary it feeds: Snakemake rebuilds a missing intermediate only when something
    downstream needs it, and whether rebuilt tables make their readers stale depends on their
    checksums, which ESTOI's last bit can change (LAST_BIT_COLUMNS). The failed run asks for the
    teacher's tables, which must be rebuilt, and the corrupted student's, which must fail.
    """
    shutil.copytree(finished, workdir, symlinks=True)
    results = workdir / "results"
    broken, healthy = (sorted((results / "scores" / m).glob("test_*.csv")) for m in (BROKEN_MODEL, HEALTHY_MODEL))
    model = results / "models" / BROKEN_MODEL / "model.pt"
    original, stat = model.read_bytes(), model.stat()
    for table in [*broken, *healthy, results / "tables" / "summary.csv"]:
        table.unlink()
    model.write_bytes(original[: len(original) // 2])
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    targets = [str(p.relative_to(workdir)) for p in (broken[0], healthy[0])]
    failed = background.run(slurm_snakemake_command(workdir, "--retries", "0", "--keep-going", *targets),
                            env, workdir)
    job_log = workdir / f"results/logs/scores/students/{BROKEN_GROUP}.log"
    observed = {"failed_job_log": job_log.read_text() if job_log.is_file() else "",
                "healthy_written": all(p.is_file() for p in healthy),
                "broken_written": any(p.exists() for p in broken)}
    model.write_bytes(original)
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    resumed = background.run(slurm_snakemake_command(workdir, "--rerun-incomplete"), env, workdir)
    return FailedRerun(workdir, failed, broken_tables=broken, healthy_tables=healthy, resumed=resumed,
                       **observed)
