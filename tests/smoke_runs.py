"""Snakemake runs on the smoke preset, shared by every test that needs a DAG run.

A DAG run costs minutes on 2 cores, so one local, uninterrupted run (the ``smoke_reference``
fixture in conftest.py) is the reference for all of them: the DAG-output tests read it, and the
determinism, SLURM and kill-and-resume tests compare their own runs against it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "workflow" / "presets" / "smoke.yaml"
DAG_TIMEOUT_S = 2400


def venv_env(**extra: str) -> dict:
    """Environment whose PATH finds this interpreter's `kdsd` and `snakemake` first."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            **extra}


def snakemake_command(workdir: Path, *extra: str, configfiles: tuple = ()) -> list[str]:
    """`snakemake` on the smoke preset (over config.yaml, then ``configfiles``) in ``workdir``."""
    return ["snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
            "--configfile", str(REPO / "config.yaml"), str(SMOKE), *map(str, configfiles), *extra]


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
