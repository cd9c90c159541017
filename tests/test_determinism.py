"""The same config and seeds give the same numbers: two smoke runs in separate folders.

The second run goes through SLURM when a cluster answers, else it is a second local run (see the
``second_run`` fixture), so this holds on every machine. Both run at the same thread counts
(the local reference with ``--cores 2``; SLURM caps threads to its node, 2 CPUs in CI). Only
wall-clock columns (``rtf_1thread``, ``seconds``) are left out: they time the machine, not the
models. ESTOI columns may differ in the last bits (why: ``LAST_BIT_COLUMNS`` in smoke_runs.py);
everything else, model weights included, must be equal to the last bit.
"""
import pytest
import torch

from smoke_runs import table_differences

pytestmark = pytest.mark.dag


def test_every_score_table_is_identical(smoke_reference, second_run):
    ours, theirs = smoke_reference.score_tables(), second_run.score_tables()
    assert ours.keys() == theirs.keys() and len(ours) > 0
    differences = [d for name in ours for d in table_differences(ours[name], theirs[name])]
    assert differences == []


def test_summary_cost_and_histories_are_identical(smoke_reference, second_run):
    names = ["tables/summary.csv", "tables/cost.csv"]
    names += [str(p.relative_to(smoke_reference.results))
              for p in sorted(smoke_reference.results.glob("models/**/history.csv"))]
    assert len(names) > 3
    differences = [d for name in names
                   for d in table_differences(smoke_reference.results / name, second_run.results / name)]
    assert differences == []


def test_model_weights_are_identical(smoke_reference, second_run):
    models = sorted(smoke_reference.results.glob("models/**/model.pt"))
    assert models
    for path in models:
        ours = torch.load(path, weights_only=True)["state_dict"]
        theirs = torch.load(second_run.results / path.relative_to(smoke_reference.results),
                            weights_only=True)["state_dict"]
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), path
