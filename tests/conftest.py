"""Shared fixtures: a tiny saved model, a tiny synthetic corpus config, the smoke reference run."""
import os
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def env_with_venv():
    """Environment whose PATH finds the venv's `kdsd` and `snakemake` first."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture
def tiny_model(tmp_path):
    from kdsd.models.io import save_model
    from kdsd.models.unet import UNetDAE

    torch.manual_seed(0)
    model = UNetDAE(width=2, depth=2)
    return save_model(tmp_path / "model.pt", model, config={}, seed=0, history=[],
                      extra={"role": "teacher", "method": "teacher", "scenario": "teacher", "params": 1})


@pytest.fixture(scope="session")
def tiny_corpus():
    """Factory of a complete synthetic `corpus` section, two or three utterances per split."""
    def make() -> dict:
        return {"source": "synthetic", "seed": 11,
                "utterances": {"train": 3, "valid": 2, "test_matched": 2, "test_noise": 2,
                               "test_snr": 2, "test_reverb": 2, "test_speaker": 2},
                "snr_db": [0.0, 5.0], "test_snr_db": [-8.0, -3.0], "rt60_s": [0.4, 0.8],
                "train_noises": ["white", "babble"], "test_only_noises": ["tones"],
                "speech_level_dbfs": -25.0, "babble_talkers": 2}
    return make


# The runs shared by the DAG tests (smoke_runs.py): the local reference, the second run (through
# SLURM where a cluster answers) and a failed SLURM job's rerun on a copy of the second run.
SHARED_RUNS = ("smoke_reference", "second_run", "slurm_failure")


def pytest_collection_modifyitems(config, items):
    """DAG tests after the unit tests, and those reading the shared runs last: the shared runs
    start with the session (``shared_runs``) and proceed while the other tests run."""
    items.sort(key=lambda item: (item.get_closest_marker("dag") is not None,
                                 any(name in item.fixturenames for name in SHARED_RUNS)))


@pytest.fixture(scope="session", autouse=True)
def shared_runs(request, tmp_path_factory):
    """Start the shared runs the selected tests need, at once and side by side.

    The reference first fills the shared cache of recorded packages (`--until fetch_recorded`),
    then the second run starts beside the rest of it: two runs converting the same package into
    one cache would remove each other's staging folders. The failed job's rerun starts when the
    second run has finished.
    """
    from smoke_runs import (Background, fail_then_rerun, slurm_missing_reason, slurm_snakemake_command,
                            snakemake_command, venv_env)

    wanted = {name for item in request.session.items for name in item.fixturenames} & set(SHARED_RUNS)
    via_slurm = bool({"second_run", "slurm_failure"} & wanted) and slurm_missing_reason() is None
    if not via_slurm:
        wanted.discard("slurm_failure")  # its tests skip
    env, runs = venv_env(), {}
    if not wanted:
        yield runs
        return
    reference_dir = tmp_path_factory.mktemp("smoke_reference")
    full = "smoke_reference" in wanted

    def reference(background):
        done = [background.run(snakemake_command(reference_dir, "--until", "fetch_recorded"), env, REPO)]
        background.milestone.set()  # the recorded cache is filled
        rest = [(), ("--report", str(reference_dir / "results" / "report.html"))] if full else []
        for extra in rest:
            if done[-1].returncode != 0:
                break
            done.append(background.run(snakemake_command(reference_dir, *extra), env, REPO))
        return done

    runs["smoke_reference"] = Background(reference, reference_dir)
    if {"second_run", "slurm_failure"} & wanted:
        second_dir = tmp_path_factory.mktemp("second_run")

        def second(background):
            started = time.monotonic()
            command = slurm_snakemake_command(second_dir) if via_slurm else snakemake_command(second_dir)
            return background.run(command, env, second_dir), time.monotonic() - started, via_slurm

        runs["second_run"] = Background(second, second_dir, after=runs["smoke_reference"].milestone)
    if "slurm_failure" in wanted:
        failure_dir = tmp_path_factory.getbasetemp() / "slurm_failure"

        def failure(background):
            run = runs["second_run"].result()[0]
            assert run.returncode == 0, run.stderr[-5000:]
            return fail_then_rerun(background, second_dir, failure_dir, env)

        runs["slurm_failure"] = Background(failure, failure_dir)
    yield runs
    for run in runs.values():  # all first: a run waiting on another must not start a command
        run.stop()
    for run in runs.values():
        run.join()


@pytest.fixture(scope="session")
def smoke_reference(shared_runs):
    """The local, uninterrupted smoke-preset run (plus its HTML report), made once per session."""
    from smoke_runs import SmokeRun, venv_env

    reference = shared_runs["smoke_reference"]
    for run in reference.result():
        assert run.returncode == 0, run.stderr[-5000:]
    return SmokeRun(reference.workdir, venv_env())


@pytest.fixture(scope="session")
def second_run(shared_runs):
    """A second full smoke run in its own folder, compared against ``smoke_reference``.

    It goes through SLURM (``--profile profiles/slurm``) when a cluster answers, so one run serves
    both the SLURM tests and the determinism tests; without a cluster it is a second local run,
    so determinism is still tested.
    """
    from smoke_runs import SecondRun, venv_env

    second = shared_runs["second_run"]
    run, wall_s, via_slurm = second.result()
    assert run.returncode == 0, run.stderr[-5000:]
    return SecondRun(second.workdir, venv_env(), via_slurm=via_slurm, output=run.stderr, wall_s=wall_s)


@pytest.fixture(scope="session")
def slurm_failure(shared_runs):
    """A copy of the SLURM run in which one scoring job failed, then was rerun (smoke_runs.py)."""
    return shared_runs["slurm_failure"].result()
