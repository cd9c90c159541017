"""The KD study's tables: ablations (variants vs their method), the valid-only KD-weight sweep,
and the runtime breakdown; and the DAG targets that build them."""
import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as scipy_stats

from conftest import REPO
from kdsd.analysis.ablations import ablation_table, changed_options, markdown
from kdsd.analysis.kd_sweep import kd_weight_table, student_valid_scores
from kdsd.analysis.runtime import runtime_table
from kdsd.errors import KdsdError
from test_train import _tiny_manifest

# --- ablations ------------------------------------------------------------------------------
# Per-seed run means of ΔSI-SDR on one test set (two utterances each, so the mean matters).
RUNS = {"cosine": [4.0, 5.0, 6.0], "cosine_mse": [3.0, 4.5, 5.1], "none": [2.0, 2.0, 2.0]}
OPTIONS = {"cosine": {"kd_weight": 10.0, "distance": None}, "cosine_mse": {"kd_weight": 10.0, "distance": "mse"},
           "none": {}}


def _scores():
    rows = []
    for method, means in RUNS.items():
        for seed, mean in enumerate(means, start=1):
            for offset in (-0.5, 0.5):
                rows.append({"utt_id": f"u{offset}", "kind": "student", "method": method, "scenario": "s",
                             "seed": seed, "test_set": "test_matched", "params": 10,
                             "si_sdr_i": mean + offset, "pesq_wb_i": 0.1 * seed, "estoi_i": 0.01})
    return pd.DataFrame(rows)


def _models():
    return pd.DataFrame([{"scenario": "s", "method": m, "seed": seed,
                          "base_method": "cosine" if m.startswith("cosine") else m, "kd_options": OPTIONS[m]}
                         for m in RUNS for seed in (1, 2, 3)])


def test_ablation_table_pairs_variants_with_their_method_by_seed():
    table = ablation_table(_scores(), _models())
    assert table.method.tolist() == ["cosine", "cosine_mse"]  # reference first; `none` has no variants
    ref, mse = table.iloc[0], table.iloc[1]
    assert ref.si_sdr_i_mean == pytest.approx(5.0) and ref.si_sdr_i_std == pytest.approx(1.0)
    assert ref.diff_si_sdr_i_mean == pytest.approx(0.0)
    diffs = np.array([3.0 - 4.0, 4.5 - 5.0, 5.1 - 6.0])
    half = scipy_stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3)
    assert mse.diff_si_sdr_i_mean == pytest.approx(diffs.mean())
    assert (mse.diff_si_sdr_i_ci_low, mse.diff_si_sdr_i_ci_high) == pytest.approx(
        (diffs.mean() - half, diffs.mean() + half))
    assert (mse.changed, mse.n_seeds) == ("distance=mse", 3)
    text = markdown(table)
    assert "| cosine_mse | distance=mse | 3 | 4.20 ± 1.08 |" in text
    assert f"{diffs.mean():+.2f} [{diffs.mean() - half:+.2f}, {diffs.mean() + half:+.2f}]" in text


def test_changed_options_lists_only_differences():
    assert changed_options({"a": 1, "b": 2}, {"a": 1, "b": 3}) == "b=2"
    assert changed_options({"a": 1}, {"a": 1}) == "(reference)"


# --- KD-weight sweep (valid only) -------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep_students(tmp_path_factory):
    from kdsd.train.jobs import distill_student, train_teacher

    root = tmp_path_factory.mktemp("sweep")
    for split in ("train", "valid"):
        (root / split).mkdir()
    train, valid = _tiny_manifest(root / "train", 8, 0).path, _tiny_manifest(root / "valid", 2, 1).path
    loss = {"mag_weight": 10.0, "power": 0.3}
    fast = {"epochs": 2, "batch_size": 4, "segment_s": 0.5, "lr": 0.01}
    teacher = train_teacher({"teacher": {"seed": 1, "model": {"width": 4, "depth": 2, "block": "plain"},
                                         "train": fast}, "loss": loss}, train, valid, root / "teacher")
    cfg = {"students": {"scenarios": {"half": {"width_ratio": 0.5}}, "methods": [], "train": fast},
           "kd": {"cosine": {"kd_weight": 10.0}, "cosine_w1": {"method": "cosine", "kd_weight": 1.0}},
           "loss": loss}
    return [distill_student(cfg, teacher, method, "half", seed, train, valid, root / f"{method}{seed}")
            for method in ("cosine", "cosine_w1") for seed in (1, 2)]


def test_kd_weight_table_chooses_the_best_mean_valid_si_sdr(sweep_students):
    students = student_valid_scores(sweep_students)
    table = kd_weight_table(students)
    assert table.candidate.tolist() == ["cosine_w1", "cosine"]  # sorted by weight
    assert table.kd_weight.tolist() == [1.0, 10.0] and table.n_seeds.tolist() == [2, 2]
    for row in table.itertuples():
        mine = students[students.candidate == row.candidate].valid_si_sdr
        assert row.valid_si_sdr_mean == pytest.approx(mine.mean())
    assert table.chosen.sum() == 1
    assert table.loc[table.chosen, "valid_si_sdr_mean"].item() == table.valid_si_sdr_mean.max()
    import torch

    history = torch.load(sweep_students[0], weights_only=True)["history"]
    assert students.valid_si_sdr.iloc[0] == max(h["valid_si_sdr"] for h in history)


def test_kd_weight_sweep_refuses_a_teacher(tmp_path, tiny_model):
    with pytest.raises(KdsdError, match="not a trained student"):
        student_valid_scores([tiny_model])


# --- runtime ----------------------------------------------------------------------------------
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(root, relative, wall, cpu):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{wall}\t0:00:01\t1\t1\t1\t1\t0\t0\t90\t{cpu}\n")


def test_runtime_table_sums_wall_and_cpu_per_rule_family(tmp_path):
    _bench(tmp_path, "models/teacher.tsv", 100.0, 180.0)
    _bench(tmp_path, "models/students/w/none/seed1.tsv", 40.0, 38.0)
    _bench(tmp_path, "models/students/w/cosine/seed1.tsv", 60.0, 52.0)
    _bench(tmp_path, "scores/students/w/none/seed1.tsv", 30.0, 50.0)
    _bench(tmp_path, "scores/input.tsv", 10.0, 20.0)
    _bench(tmp_path, "corpus/train.tsv", 10.0, 10.0)
    _bench(tmp_path, "report.tsv", 0.0, 0.0)
    table = runtime_table(tmp_path).set_index("family")
    assert list(table.index) == ["models/teacher", "models/students", "scores/students", "scores/input",
                                 "corpus", "report", "total"]
    assert table.loc["models/students", ["jobs", "wall_s", "cpu_s"]].tolist() == [2, 100.0, 90.0]
    assert table.loc["total", ["jobs", "wall_s", "cpu_s"]].tolist() == [7, 250.0, 350.0]
    assert table.loc["models/teacher", "cpu_share"] == pytest.approx(180 / 350, abs=1e-4)
    assert table.loc["scores/students", "wall_share"] == pytest.approx(30 / 250, abs=1e-4)
    (tmp_path / "broken.tsv").write_text("nothing\n")
    with pytest.raises(KdsdError, match="broken.tsv: not a Snakemake benchmark file"):
        runtime_table(tmp_path)


# --- the DAG's study targets (dry runs: parse and plan only) -----------------------------------
def _planned_jobs(tmp_path, env, preset, *targets):
    result = subprocess.run(
        ["snakemake", "-n", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
         "--configfile", str(REPO / "config.yaml"), str(REPO / "workflow" / "presets" / preset),
         "--", *targets], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stdout.split("Job stats:")[1].split("total")[0]
    return {line.split()[0]: int(line.split()[1]) for line in stats.splitlines()[3:] if line.strip()}


def _planned_priorities(tmp_path, env) -> dict[str, set[int]]:
    """The ``priority:`` of every job the default run plans, by rule (0 where a job has none)."""
    result = subprocess.run(
        ["snakemake", "-n", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "8",
         "--configfile", str(REPO / "config.yaml")], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    priorities: dict[str, set[int]] = {}
    for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=\n\n|\Z)", result.stdout, flags=re.S | re.M):
        found = re.search(r"^\s+priority: (\d+)$", body, flags=re.M)
        priorities.setdefault(rule, set()).add(int(found.group(1)) if found else 0)
    return priorities


def test_the_input_is_scored_beside_the_first_training_wave_and_the_rest_after_training(tmp_path, env_with_venv):
    """Every other score waits on the input's: scored after the last training wave, it ran alone
    with a core idle. Its job outranks the students' training but not the teacher (the critical
    path); every other scoring job ranks below training, the costliest first. The corpus (2-core
    jobs, which cannot start beside a training job) is built whole before the teacher starts, or a
    test split left for later would hold the input's scores back until training ends."""
    priority = _planned_priorities(tmp_path, env_with_venv)
    training = set().union(*(p for rule, p in priority.items() if rule.startswith("distill_students_")))
    scoring = set().union(*(p for rule, p in priority.items() if rule.startswith("score_") and rule != "score_input"))
    assert scoring
    corpus = priority["build_corpus_split"] | priority["fetch_recorded"]
    assert min(corpus) > max(priority["train_teacher"]) > max(priority["score_input"])
    assert min(priority["score_input"]) > max(training) and min(training) > max(scoring)
    # Costliest scoring first, so that the run does not end on one long job beside an idle core:
    # seed 1 (every metric on test_matched) before seeds 2-3 (core metrics) before the SI-SDR-only
    # seeds, for scoring and for the training it waits on; the teacher and the references with seed 1.
    for stage in ("distill_students", "score_students"):
        seed1, seed2, seed8 = (max(priority[f"{stage}_seed{seed}"]) for seed in (1, 2, 8))
        assert seed1 > seed2 > seed8
    assert priority["score_model"] == priority["score_reference"] == priority["score_students_seed1"]


def test_kd_sweep_trains_students_and_never_scores_a_test_set(tmp_path, env_with_venv):
    jobs = _planned_jobs(tmp_path, env_with_venv, "kd_sweep.yaml", "results/tables/kd_weights.csv")
    sweep = yaml.safe_load((REPO / "workflow" / "presets" / "kd_sweep.yaml").read_text())["students"]
    students = len(sweep["methods"]) * len(sweep["run_scenarios"]) * len(sweep["seeds"])
    assert students == 12 * 1 * 2
    # one side-by-side training job per seed
    assert jobs == {"build_corpus_split": 2, "train_teacher": 1, "kd_weights": 1,
                    **{f"distill_students_seed{s}": 1 for s in sweep["seeds"]}}


def test_the_sweep_tunes_on_seeds_of_its_own_with_four_candidates_for_every_method():
    """Tuning apart from testing: no seed of the sweep is a seed the default run tests on, and
    every method of the primary family gets a search of the same size, its configured options among
    the candidates."""
    from collections import Counter

    from kdsd.distill.variants import base_method, resolve, train_options

    preset = yaml.safe_load((REPO / "workflow" / "presets" / "kd_sweep.yaml").read_text())
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert not set(preset["students"]["seeds"]) & set(config["students"]["seeds"])
    kd = {**config["kd"], **preset["kd"]}
    candidates = Counter(base_method(kd, name) for name in preset["students"]["methods"])
    primary = [config["analysis"]["primary"]["method"], *config["analysis"]["primary"]["baselines"]]
    assert candidates == {method: 4 for method in primary}
    # config.yaml's choices are among the candidates: none's learning rate, the KD options
    options = [{**resolve(kd, name)[1], **train_options(kd, name)} for name in preset["students"]["methods"]]
    for method in primary:
        chosen = {**resolve(config["kd"], method)[1], **train_options(config["kd"], method)}
        assert any(chosen.items() <= option.items() for option in options), method


def test_ablation_preset_runs_its_variants_on_one_scenario(tmp_path, env_with_venv):
    jobs = _planned_jobs(tmp_path, env_with_venv, "ablations.yaml")
    ablations = yaml.safe_load((REPO / "workflow" / "presets" / "ablations.yaml").read_text())["students"]
    assert len(ablations["methods"]) == 6 and len(ablations["seeds"]) == 3
    assert {rule for rule in jobs if rule.startswith("distill_")} == {
        f"distill_students_seed{s}" for s in ablations["seeds"]}
    assert jobs["ablation_table"] == 1 and jobs["runtime_table"] == 1
    # the teacher scored alone, the students in one job per seed (as they train)
    assert jobs["score_model"] == 1
    assert {rule: n for rule, n in jobs.items() if rule.startswith("score_students_")} == {
        f"score_students_seed{s}": 1 for s in ablations["seeds"]}
    assert "score_reference" not in jobs


def test_teachers_preset_gives_every_student_seed_a_teacher_of_its_own(tmp_path, env_with_venv):
    """teacher.per_seed: one teacher per student seed, trained with that seed, scored like any
    teacher, and each seed's training group reads its own teacher only."""
    preset = yaml.safe_load((REPO / "workflow" / "presets" / "teachers.yaml").read_text())
    seeds = preset["students"]["seeds"]
    assert preset["teacher"]["per_seed"] is True and len(seeds) >= 6
    jobs = _planned_jobs(tmp_path, env_with_venv, "teachers.yaml")
    assert jobs["train_teacher"] == len(seeds) and jobs["score_model"] == len(seeds)
    assert {rule for rule in jobs if rule.startswith("distill_")} == {f"distill_students_seed{s}" for s in seeds}
    result = subprocess.run(
        ["snakemake", "-n", "-p", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
         "--configfile", str(REPO / "config.yaml"), str(REPO / "workflow" / "presets" / "teachers.yaml"),
         "--", f"results/models/students/width_1_8/cosine/seed{seeds[1]}/model.pt"],
        capture_output=True, text=True, env=env_with_venv, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    teacher_configs = re.findall(r"kdsd train-teacher --config-json '(\{.*?\})'", result.stdout)
    assert [json.loads(c)["teacher"]["seed"] for c in teacher_configs] == [seeds[1]]
    assert f'"teacher": "results/models/teachers/seed{seeds[1]}/model.pt"' in result.stdout
    assert "results/models/teacher/model.pt" not in result.stdout


def test_a_teacher_per_seed_is_scored_like_its_seeds_students_but_never_below_core(tmp_path, env_with_venv):
    """The teachers preset scores its students on SI-SDR alone (core_metric_seeds: 0); its teachers
    get the core metrics, the input still every metric on test_matched and the base ones elsewhere."""
    result = subprocess.run(
        ["snakemake", "-n", "-p", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
         "--configfile", str(REPO / "config.yaml"), str(REPO / "workflow" / "presets" / "teachers.yaml"),
         "--", "results/scores/teachers/seed2/test_matched.csv"],
        capture_output=True, text=True, env=env_with_venv, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    teacher = re.findall(r"kdsd score --model \S+ --name teachers/seed2 .*?--metric-tier ([\w ]+?) --threads",
                         result.stdout)
    the_input = re.findall(r"kdsd score-input .*?--metric-tier ([\w ]+?) --threads", result.stdout)
    assert teacher == ["core"]
    assert len(the_input) == 1 and the_input[0].split()[0] == "all" and set(the_input[0].split()[1:]) == {"base"}
