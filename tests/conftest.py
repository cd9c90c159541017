"""Shared fixtures: a tiny saved model, a tiny synthetic corpus config, the smoke reference run."""
import os
import sys
from dataclasses import dataclass
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


# The two shared smoke runs: the local reference and the second run (see smoke_runs.py).
SHARED_RUNS = ("smoke_reference", "second_run")


@dataclass
class SharedRun:
    workdir: Path
    background: object  # smoke_runs.BackgroundCommands
    via_slurm: bool = False


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
    one cache would remove each other's staging folders.
    """
    from smoke_runs import (BackgroundCommands, slurm_missing_reason, slurm_snakemake_command,
                            snakemake_command, venv_env)

    wanted = {name for item in request.session.items for name in item.fixturenames} & set(SHARED_RUNS)
    env, runs = venv_env(), {}
    cache_filled = None
    if wanted:
        workdir = tmp_path_factory.mktemp("smoke_reference")
        commands = [snakemake_command(workdir, *extra) for extra in
                    (("--until", "fetch_recorded"), (), ("--report", str(workdir / "results" / "report.html")))]
        if "smoke_reference" not in wanted:
            commands = commands[:1]  # the cache only
        runs["smoke_reference"] = SharedRun(workdir, BackgroundCommands(commands, env, REPO))
        cache_filled = runs["smoke_reference"].background.first_done
    if "second_run" in wanted:
        workdir = tmp_path_factory.mktemp("second_run")
        via_slurm = slurm_missing_reason() is None
        command = slurm_snakemake_command(workdir) if via_slurm else snakemake_command(workdir)
        runs["second_run"] = SharedRun(workdir, BackgroundCommands([command], env, workdir, after=cache_filled),
                                       via_slurm)
    yield runs
    for run in runs.values():
        run.background.stop()


@pytest.fixture(scope="session")
def smoke_reference(shared_runs):
    """The local, uninterrupted smoke-preset run (plus its HTML report), made once per session."""
    from smoke_runs import SmokeRun, venv_env

    shared = shared_runs["smoke_reference"]
    for run in shared.background.wait():
        assert run.returncode == 0, run.stderr[-5000:]
    return SmokeRun(shared.workdir, venv_env())


@pytest.fixture(scope="session")
def second_run(shared_runs):
    """A second full smoke run in its own folder, compared against ``smoke_reference``.

    It goes through SLURM (``--profile profiles/slurm``) when a cluster answers, so one run serves
    both the SLURM tests and the determinism tests; without a cluster it is a second local run,
    so determinism is still tested.
    """
    from smoke_runs import SecondRun, venv_env

    shared = shared_runs["second_run"]
    (run,) = shared.background.wait()
    assert run.returncode == 0, run.stderr[-5000:]
    return SecondRun(shared.workdir, venv_env(), via_slurm=shared.via_slurm, output=run.stderr,
                     wall_s=shared.background.wall_s)
