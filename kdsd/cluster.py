"""What a SLURM cluster offers, so that no job asks for more than a node has.

A job asking for more CPUs per task than any node of its partition has is accepted by
``sbatch`` and then stays PENDING forever (``Reason=PartitionConfig``) while Snakemake prints
nothing. The workflow therefore caps every rule's threads to the largest node of the partition
(``SBATCH_PARTITION``, else all partitions); ``snakemake --max-threads N`` lowers it further.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess


def cpus_per_node(sinfo_output: str) -> int | None:
    """Largest CPU count in ``sinfo -h -o %c`` output (``8+`` means 8 or more; None if empty)."""
    counts = [int(field.rstrip("+")) for field in sinfo_output.split() if field.rstrip("+").isdigit()]
    return max(counts) if counts else None


@functools.cache
def slurm_cpus_per_node() -> int | None:
    """CPUs of the largest node SLURM offers to this user, or None when no cluster answers."""
    if shutil.which("sinfo") is None:
        return None
    command = ["sinfo", "-h", "-o", "%c"]
    if os.environ.get("SBATCH_PARTITION"):
        command += ["-p", os.environ["SBATCH_PARTITION"]]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return cpus_per_node(done.stdout)


def local_cpus() -> int:
    """CPUs this process may run on (its affinity mask: cgroup and taskset limits count)."""
    return len(os.sched_getaffinity(0))


def is_slurm(executor: str | None) -> bool:
    """True for the SLURM executor and its job steps (``slurm``, ``slurm-jobstep``)."""
    return bool(executor) and executor.startswith("slurm")


def capped_threads(requested: int, executor: str | None) -> int:
    """``requested`` threads, lowered to the largest SLURM node when jobs go through SLURM, and
    to this machine's CPUs when they run here: ``make reproduce``'s ``--cores 8`` on a 2-core
    laptop would otherwise start a 4-thread teacher on 2 cores (OpenMP threads then wait on each
    other, and the critical path slows)."""
    if not is_slurm(executor):
        return max(1, min(requested, local_cpus()))
    cap = slurm_cpus_per_node()
    return requested if cap is None else max(1, min(requested, cap))


def oversubscription(cores: int) -> int:
    """How many times Snakemake's ``--cores`` holds this machine's CPUs (1 when it does not)."""
    return max(1, cores // local_cpus())


def local_cores_claimed(threads: int, cores: int | None, executor: str | None) -> int:
    """What a job of ``threads`` real threads takes from Snakemake's ``--cores`` (its ``threads:``).

    Locally, ``--cores`` larger than this machine's CPUs (``make reproduce``'s ``--cores 8`` on a
    2-core laptop) would start 8 threads' worth of jobs on 2 CPUs: a 2-thread teacher beside one
    1-thread job then ran its epochs 3x slower (its OpenMP threads wait for each other) and
    8 students shared 2 CPUs. A local job therefore claims its threads times
    :func:`oversubscription`, so the jobs running at once hold about as many threads as there
    are CPUs. On SLURM (and for ``--cores`` within the CPUs) it claims its threads; ``cores`` is
    then unused (None on SLURM).
    """
    if is_slurm(executor):
        return threads
    return max(1, min(cores, threads * oversubscription(cores)))


def threads_of_claim(claimed: int, cores: int | None, executor: str | None) -> int:
    """The threads a job runs for what it claims (its ``threads:``, which ``--set-threads`` may
    have set): the inverse of :func:`local_cores_claimed`, capped by :func:`capped_threads`."""
    if not is_slurm(executor):
        claimed = max(1, claimed // oversubscription(cores))
    return capped_threads(claimed, executor)
