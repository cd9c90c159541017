"""Threads and core claims (kdsd/cluster.py): no SLURM job asks for more CPUs than a node has,
and no local run starts more threads than the machine has CPUs."""
import pytest

from kdsd import cluster


def test_largest_node_from_sinfo_output():
    assert cluster.cpus_per_node("2\n") == 2
    assert cluster.cpus_per_node("8\n64+\n16\n") == 64
    assert cluster.cpus_per_node("") is None


@pytest.mark.parametrize("executor", [None, "local", "dryrun"])
def test_local_runs_keep_the_rule_threads_up_to_the_machines_cpus(executor, monkeypatch):
    monkeypatch.setattr(cluster, "slurm_cpus_per_node", lambda: 1)  # a cluster is not asked
    monkeypatch.setattr(cluster, "local_cpus", lambda: 8)
    assert cluster.capped_threads(4, executor) == 4
    monkeypatch.setattr(cluster, "local_cpus", lambda: 2)
    assert cluster.capped_threads(4, executor) == 2
    assert cluster.capped_threads(1, executor) == 1


def test_slurm_jobs_are_capped_to_the_largest_node(monkeypatch):
    monkeypatch.setattr(cluster, "slurm_cpus_per_node", lambda: 2)
    assert cluster.capped_threads(4, "slurm") == 2
    assert cluster.capped_threads(1, "slurm-jobstep") == 1
    monkeypatch.setattr(cluster, "slurm_cpus_per_node", lambda: None)  # no cluster answers
    assert cluster.capped_threads(4, "slurm") == 4


def test_this_machines_cluster_is_read_when_present():
    count = cluster.slurm_cpus_per_node()
    assert count is None or count >= 1


@pytest.mark.parametrize("executor", [None, "local"])
def test_local_jobs_claim_their_share_of_cores_beyond_the_machines_cpus(executor, monkeypatch):
    monkeypatch.setattr(cluster, "local_cpus", lambda: 2)
    # --cores 8 on 2 CPUs: a 1-thread job claims 4, so two run at once; a 2-thread job runs alone
    assert cluster.local_cores_claimed(1, 8, executor) == 4
    assert cluster.local_cores_claimed(2, 8, executor) == 8
    assert cluster.local_cores_claimed(1, 2, executor) == 1   # --cores within the CPUs: as asked
    assert cluster.local_cores_claimed(1, 3, executor) == 1   # less than twice the CPUs: as asked
    monkeypatch.setattr(cluster, "local_cpus", lambda: 8)
    assert cluster.local_cores_claimed(4, 8, executor) == 4


@pytest.mark.parametrize("cores,cpus", [(8, 2), (2, 2), (3, 2), (8, 8), (64, 4)])
def test_a_local_job_runs_the_threads_it_claimed_for(cores, cpus, monkeypatch):
    monkeypatch.setattr(cluster, "local_cpus", lambda: cpus)
    for threads in range(1, cpus + 1):
        claim = cluster.local_cores_claimed(threads, cores, None)
        assert cluster.threads_of_claim(claim, cores, None) == min(threads, cores)
    # --set-threads train_teacher=8 on 8 CPUs with --cores 8: the command runs 8 threads
    monkeypatch.setattr(cluster, "local_cpus", lambda: 8)
    assert cluster.threads_of_claim(8, 8, None) == 8


def test_a_slurm_job_claims_its_threads_and_runs_them_up_to_the_node(monkeypatch):
    monkeypatch.setattr(cluster, "local_cpus", lambda: 2)  # the submitting host does not count
    monkeypatch.setattr(cluster, "slurm_cpus_per_node", lambda: 4)
    assert cluster.local_cores_claimed(1, 64, "slurm") == 1
    assert cluster.local_cores_claimed(2, 64, "slurm-jobstep") == 2
    assert cluster.threads_of_claim(2, 64, "slurm-jobstep") == 2
    assert cluster.threads_of_claim(8, 64, "slurm") == 4
