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


@pytest.fixture(scope="session")
def smoke_reference(tmp_path_factory):
    """The local, uninterrupted smoke-preset run (plus its HTML report), made once per session."""
    from smoke_runs import SmokeRun, snakemake, venv_env

    env = venv_env()
    workdir = tmp_path_factory.mktemp("smoke_reference")
    run = snakemake(workdir, env=env)
    assert run.returncode == 0, run.stderr[-5000:]
    report = snakemake(workdir, "--report", str(workdir / "results" / "report.html"), env=env)
    assert report.returncode == 0, report.stderr[-5000:]
    return SmokeRun(workdir, env)


@pytest.fixture(scope="session")
def second_run(tmp_path_factory):
    """A second full smoke run in its own folder, compared against ``smoke_reference``.

    It goes through SLURM (``--profile profiles/slurm``) when a cluster answers, so one run serves
    both the SLURM tests and the determinism tests; without a cluster it is a second local run,
    so determinism is still tested.
    """
    from smoke_runs import SecondRun, slurm_missing_reason, slurm_snakemake, snakemake, venv_env

    env = venv_env()
    workdir = tmp_path_factory.mktemp("second_run")
    via_slurm = slurm_missing_reason() is None
    started = time.monotonic()
    run = slurm_snakemake(workdir, env=env) if via_slurm else snakemake(workdir, env=env)
    assert run.returncode == 0, run.stderr[-5000:]
    return SecondRun(workdir, env, via_slurm=via_slurm, output=run.stderr,
                     wall_s=time.monotonic() - started)
