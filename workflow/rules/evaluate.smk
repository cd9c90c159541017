# Stage 4: per-utterance scores — the noisy input, then every model. A job scores every test set
# (one table each). The teacher and each reference denoiser get a job of their own; the students
# are scored in groups, the same as they train in (students.train_together): one process reads
# each test set once, runs each student on it and computes each utterance's clean side once
# (kdsd.metrics.scoring.score_models), and each student's tables are what it would get alone.
# As in training (distill.smk), a group holds only the students whose scores are not current:
# their job.json (written after the tables) records the test sets and the metric tiers, theirs and
# the input's, this run would use, and is newer than their model and the input's tables
# (kdsd.metrics.groups). So seeds or methods added to a finished run score only the new students,
# and a changed tier (evaluation.*_metric_*) or a retrained model rescores exactly those concerned.
from kdsd.metrics.groups import scores_are_current
from kdsd.train.groups import student_groups


def per_test_set(pattern):
    """``pattern`` (with ``{test_set}``, other wildcards doubled) for every test set, in order."""
    return expand(pattern, test_set=TEST_SETS)


# One thread and no worker pool per scoring job: Snakemake runs scoring jobs side by side, and
# 4 concurrent 2-thread jobs (a 2-thread torch parent plus 2 pool workers each) took 137 CPU-s
# and 69 s for what 4 one-thread jobs did in 62 CPU-s and 31 s (32 utterances each, 2 cores).
SCORING_THREADS = 1

INPUT_SCORES = per_test_set(f"{RESULTS}/scores/input/{{test_set}}.csv")


rule score_input:
    # Above the students' training (50): every other score waits on the input's, so scoring it
    # after training left one core idle for its whole length (3.6 min on the Intel Xeon of
    # 2026-12-06); beside the first training wave it costs no idle core.
    priority: 60
    input:
        manifests=per_test_set(manifest("{test_set}")),
    output:
        scores=INPUT_SCORES,
    params:
        **tier_params("input"),
    log:
        f"{RESULTS}/logs/scores/input.log",
    benchmark:
        f"{RESULTS}/benchmarks/scores/input.tsv"
    threads: cores_claimed(SCORING_THREADS)
    resources:
        job_threads=job_threads,
        mem_mb=2000,
        runtime=120,
    shell:
        "kdsd score-input --manifest {input.manifests} --out {output.scores} --metric-tier {params.tier}"
        " --threads {resources.job_threads}" + METRICS_OFF_ARG + " > {log} 2>&1"


rule score_model:  # the teacher (a model path: teachers/seed<k> fit too); students: below
    priority: lambda wildcards: scoring_priority([wildcards.model])
    wildcard_constraints:
        model=r"teacher|teachers/seed\d+",
    input:
        model=f"{RESULTS}/models/{{model}}/model.pt",
        manifests=per_test_set(manifest("{test_set}")),
        input_scores=INPUT_SCORES,
    output:
        scores=per_test_set(f"{RESULTS}/scores/{{{{model}}}}/{{test_set}}.csv"),
    params:
        metrics=lambda w: tier_params(w.model)["metrics"],
        tier=lambda w: tier_params(w.model)["tier"],
    log:
        f"{RESULTS}/logs/scores/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/scores/{{model}}.tsv"
    threads: cores_claimed(SCORING_THREADS)
    resources:
        job_threads=job_threads,
        mem_mb=2000,
        runtime=120,
    shell:
        "kdsd score --model {input.model} --name {wildcards.model} --manifest {input.manifests}"
        " --input-scores {input.input_scores} --out {output.scores} --metric-tier {params.tier}"
        " --threads {resources.job_threads}" + METRICS_OFF_ARG + " > {log} 2>&1"


def score_job(model):
    """What a student's scores/job.json records: the test sets and the metric tiers (and their
    metric lists) of its tables and of the input's, whose columns they carry."""
    return {"test_sets": TEST_SETS, "tiers": tier_params(model), "input_tiers": tier_params("input")}


def scores_dir(model):
    return f"{RESULTS}/scores/{model}"


def _scoring_pending(scenario, method, seed):
    model = student_model(scenario, method, seed)
    upstream = [f"{RESULTS}/models/{model}/model.pt", *INPUT_SCORES]
    return (scenario, method, seed) in PENDING or not scores_are_current(scores_dir(model), score_job(model),
                                                                         TEST_SETS, upstream)


SCORING_PENDING = [s for s in STUDENTS
                   if _scoring_pending(*s)]

for group, members in student_groups(SCORING_PENDING, config["students"]["train_together"]).items():
    group_models = [student_model(*member) for member in members]

    rule:
        name:
            f"score_students_{group}"
        input:
            models=[f"{RESULTS}/models/{model}/model.pt" for model in group_models],
            manifests=per_test_set(manifest("{test_set}")),
            input_scores=INPUT_SCORES,
        output:
            scores=[f"{scores_dir(model)}/{test_set}.csv" for model in group_models for test_set in TEST_SETS],
            jobs=[f"{scores_dir(model)}/job.json" for model in group_models],
        params:
            models=json_arg([{"model": f"{RESULTS}/models/{model}/model.pt", "name": model,
                              "out": [f"{scores_dir(model)}/{test_set}.csv" for test_set in TEST_SETS],
                              "tier": metric_tiers(model), "job": score_job(model)} for model in group_models]),
        priority: scoring_priority(group_models)
        log:
            f"{RESULTS}/logs/scores/students/{group}.log",
        benchmark:
            f"{RESULTS}/benchmarks/scores/students/{group}.tsv"
        threads: cores_claimed(SCORING_THREADS)
        resources:
            job_threads=job_threads,
            mem_mb=2000,
            runtime=60 + 30 * len(members),
        shell:
            "kdsd score-group --models-json {params.models} --manifest {input.manifests}"
            " --input-scores {input.input_scores} --threads {resources.job_threads}" + METRICS_OFF_ARG
            + " > {log} 2>&1"


rule model_cost:  # the teacher's; the students' come from their training jobs (distill.smk)
    input:
        model=f"{RESULTS}/models/{{model}}/model.pt",
    output:
        cost=f"{RESULTS}/cost/{{model}}.json",
    wildcard_constraints:
        model=r"teacher|teachers/seed\d+",
    log:
        f"{RESULTS}/logs/cost/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cost/{{model}}.tsv"
    threads: cores_claimed(1)
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "kdsd cost --model {input.model} --name {wildcards.model} --out {output.cost} > {log} 2>&1"


rule score_reference:
    priority: lambda wildcards: scoring_priority([f"references/{wildcards.reference}"])
    input:
        manifests=per_test_set(manifest("{test_set}")),
        input_scores=INPUT_SCORES,
    output:
        scores=per_test_set(f"{RESULTS}/scores/references/{{{{reference}}}}/{{test_set}}.csv"),
    params:
        metrics=lambda w: tier_params(f"references/{w.reference}")["metrics"],
        tier=lambda w: tier_params(f"references/{w.reference}")["tier"],
    log:
        f"{RESULTS}/logs/scores/references/{{reference}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/scores/references/{{reference}}.tsv"
    threads: cores_claimed(SCORING_THREADS)
    resources:
        job_threads=job_threads,
        mem_mb=2000,
        runtime=120,
    shell:
        "kdsd score-reference --name {wildcards.reference} --manifest {input.manifests}"
        " --input-scores {input.input_scores} --out {output.scores} --metric-tier {params.tier}"
        " --threads {resources.job_threads}" + METRICS_OFF_ARG + " > {log} 2>&1"


rule reference_cost:
    output:
        cost=f"{RESULTS}/cost/references/{{reference}}.json",
    log:
        f"{RESULTS}/logs/cost/references/{{reference}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cost/references/{{reference}}.tsv"
    threads: cores_claimed(1)
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "kdsd cost --reference {wildcards.reference} --out {output.cost} > {log} 2>&1"
