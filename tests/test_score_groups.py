"""One scoring process per group of students: the same tables, value for value, as scoring each
model alone; `kdsd score-group` writes each model's job.json after its tables; and the DAG's
pending test (kdsd.metrics.groups) rescores exactly the models whose record, model or input
scores changed."""
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from kdsd.corpus.manifest import write_manifest
from kdsd.audio import write_audio
from kdsd.metrics.groups import scores_are_current
from kdsd.metrics.scoring import score_input, score_model, score_models
from kdsd.models.io import save_model
from kdsd.models.unet import UNetDAE, count_parameters

SR = 16_000
TEST_SETS = ("test_matched", "test_noise")
# ESTOI's last bits are random in pystoi (kdsd.metrics.intelligibility); everything else is exact.
ESTOI_TOLERANCE = 1e-12


def speech_like(seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(110 + 30 * rng.uniform() + 15 * np.sin(2 * np.pi * 0.8 * t)) / SR
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2.5, 4.0) * t), 0, None) ** 2
    return (0.1 * sum(np.sin(k * phase) / k for k in range(1, 20)) * envelope).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two test sets of three utterances of distinct lengths (speech-like signal + white noise)."""
    root = tmp_path_factory.mktemp("corpus")
    manifests = []
    for s, split in enumerate(TEST_SETS):
        rows = []
        for u in range(3):
            seed = 10 * s + u
            clean = speech_like(1.2 + 0.37 * u + 0.11 * s, seed)
            noisy = clean + 0.03 * np.random.default_rng(seed).standard_normal(clean.size).astype(np.float32)
            write_audio(root / split / f"c{u}.wav", clean)
            write_audio(root / split / f"n{u}.wav", noisy)
            rows.append({"utt_id": f"{split}_{u}", "split": split, "clean_path": f"c{u}.wav",
                         "noisy_path": f"n{u}.wav", "speaker": "s", "engine": "synthetic", "text": "",
                         "noise_family": "white", "noise_seed": seed, "snr_db": 10.0, "rir": "",
                         "duration_s": clean.size / SR, "sample_rate": SR})
        manifests.append(write_manifest(rows, root / split / "manifest.csv"))
    inputs = score_input(manifests, [root / "input" / f"{t}.csv" for t in TEST_SETS], tier="core")
    return manifests, inputs


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three students of two widths; their tiers differ, one of them per test set."""
    root = tmp_path_factory.mktemp("models")
    specs = []
    for k, (width, tier) in enumerate([(2, "core"), (4, "primary"), (2, ["core", "primary"])]):
        torch.manual_seed(k)
        model = UNetDAE(width=width, depth=2)
        path = save_model(root / f"m{k}" / "model.pt", model, config={}, seed=k + 1, history=[],
                          extra={"role": "student", "method": f"method{k}", "scenario": f"width{width}",
                                 "params": count_parameters(model)})
        specs.append({"model": str(path), "name": f"students/width{width}/method{k}/seed{k + 1}", "tier": tier})
    return specs


def with_outputs(specs, folder):
    return [{**spec, "out": [str(folder / spec["name"] / f"{t}.csv") for t in TEST_SETS]} for spec in specs]


def assert_same_table(ours, theirs):
    a, b = pd.read_csv(ours), pd.read_csv(theirs)
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    estoi = [c for c in a.columns if "estoi" in c]
    pd.testing.assert_frame_equal(a.drop(columns=estoi), b.drop(columns=estoi), check_exact=True)
    assert np.allclose(a[estoi], b[estoi], rtol=0, atol=ESTOI_TOLERANCE, equal_nan=True)


def test_a_group_gives_each_model_the_table_it_gets_alone(corpus, models, tmp_path):
    manifests, inputs = corpus
    grouped = score_models(with_outputs(models, tmp_path / "group"), manifests, inputs)
    alone = [score_model(spec["model"], spec["name"], manifests, inputs, spec["out"], tier=spec["tier"])
             for spec in with_outputs(models, tmp_path / "alone")]
    assert len(grouped) == len(alone) == 3
    for group_tables, alone_tables in zip(grouped, alone):
        for ours, theirs in zip(group_tables, alone_tables, strict=True):
            assert_same_table(ours, theirs)
    # each model is its own: ids, tiers per test set, and different estimates
    first, second, third = ([pd.read_csv(p) for p in tables] for tables in grouped)
    assert (first[0].model == models[0]["name"]).all() and (second[0].seed == 2).all()
    assert first[1].stoi.notna().all() and second[0].stoi.isna().all() and second[0].si_sdr.notna().all()
    assert third[0].stoi.notna().all() and third[1].stoi.isna().all()
    assert not np.allclose(first[0].si_sdr, third[0].si_sdr)
    assert (first[0].input_si_sdr == pd.read_csv(inputs[0]).input_si_sdr).all()


def test_cli_scores_a_group_and_records_each_job_after_its_tables(corpus, models, tmp_path):
    from kdsd.cli import main

    manifests, inputs = corpus
    specs = [{**spec, "job": {"tiers": spec["tier"], "k": k}} for k, spec in enumerate(with_outputs(models, tmp_path))]
    assert main(["score-group", "--models-json", json.dumps(specs), "--manifest", *map(str, manifests),
                 "--input-scores", *map(str, inputs)]) == 0
    for spec in specs:
        folder = tmp_path / spec["name"]
        record = folder / "job.json"
        assert json.loads(record.read_text()) == spec["job"]
        assert all(record.stat().st_mtime >= (folder / f"{t}.csv").stat().st_mtime for t in TEST_SETS)
    single = tmp_path / "single"
    assert main(["score", "--model", models[1]["model"], "--name", models[1]["name"], "--manifest",
                 *map(str, manifests), "--input-scores", *map(str, inputs), "--out",
                 *(str(single / f"{t}.csv") for t in TEST_SETS), "--metric-tier", "primary"]) == 0
    for t in TEST_SETS:
        assert_same_table(tmp_path / models[1]["name"] / f"{t}.csv", single / f"{t}.csv")


def test_cli_refuses_a_models_json_without_outputs(corpus, capsys):
    from kdsd.cli import main

    manifests, inputs = corpus
    assert main(["score-group", "--models-json", '[{"model": "m.pt", "name": "x"}]', "--manifest",
                 *map(str, manifests), "--input-scores", *map(str, inputs)]) == 2
    assert "--models-json: expected a non-empty list of objects with model, name, out" in capsys.readouterr().err


# --- the DAG's pending test ---------------------------------------------------------------------
@pytest.fixture
def scored(tmp_path):
    """A scored student as a finished run leaves it: model, input tables, its tables, then job.json."""
    model, inputs = tmp_path / "model.pt", [tmp_path / "input" / f"{t}.csv" for t in TEST_SETS]
    folder = tmp_path / "scores"
    for path in [model, *inputs, *(folder / f"{t}.csv" for t in TEST_SETS)]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    job = {"test_sets": list(TEST_SETS), "tier": {"tier": "core", "metrics": "si_sdr"}}
    (folder / "job.json").write_text(json.dumps(job))
    past = (folder / "job.json").stat().st_mtime - 100
    for path in [model, *inputs]:
        os.utime(path, (past, past))
    return folder, job, [model, *inputs]


def test_a_student_with_a_current_record_is_not_rescored(scored):
    folder, job, upstream = scored
    assert scores_are_current(folder, job, TEST_SETS, upstream)
    assert scores_are_current(folder, json.loads(json.dumps(job)), list(TEST_SETS), upstream)


def test_a_changed_tier_or_test_set_rescores(scored):
    folder, job, upstream = scored
    assert not scores_are_current(folder, {**job, "tier": {"tier": "primary", "metrics": "si_sdr"}}, TEST_SETS,
                                  upstream)
    assert not scores_are_current(folder, {**job, "test_sets": [*TEST_SETS, "test_recorded"]},
                                  [*TEST_SETS, "test_recorded"], upstream)


@pytest.mark.parametrize("changed", [0, 1])  # the model retrained, the input rescored
def test_a_newer_model_or_input_table_rescores(scored, changed):
    folder, job, upstream = scored
    future = (folder / "job.json").stat().st_mtime + 100
    os.utime(upstream[changed], (future, future))
    assert not scores_are_current(folder, job, TEST_SETS, upstream)


@pytest.mark.parametrize("removed", ["job.json", "test_noise.csv", "upstream"])
def test_a_missing_table_record_or_upstream_file_rescores(scored, removed):
    folder, job, upstream = scored
    (upstream[0] if removed == "upstream" else folder / removed).unlink()
    assert not scores_are_current(folder, job, TEST_SETS, upstream)


def test_an_unreadable_record_rescores(scored):
    folder, job, upstream = scored
    (folder / "job.json").write_text("{not json")
    assert not scores_are_current(folder, job, TEST_SETS, upstream)


def test_bench_scoring_measures_a_group_and_its_first_student_alone(corpus, capsys):
    """`kdsd bench-scoring` times real `kdsd score-group` processes: on the smoke preset the
    students of one seed's width-1/4 scenario (its three methods) as one group, and alone."""
    from kdsd.metrics.bench import bench_scoring, print_bench

    manifests, _ = corpus
    [row] = bench_scoring(manifests[:1], grouping="scenario_seed", tiers=("primary",), repeats=1, limit=2,
                          preset="smoke")
    assert (row["group"], row["tier"], row["students"], row["utterances"]) == ("width_1_4_seed1", "primary", 3, 2)
    assert row["job_cpu_s"] > 0 and row["alone_cpu_s"] > 0 and row["per_student_cpu_s"] == row["job_cpu_s"] / 3
    print_bench([row], repeats=1)
    assert "width_1_4_seed1    primary         3" in capsys.readouterr().out
