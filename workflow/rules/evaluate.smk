# Stage 4: per-utterance scores — the noisy input, then every model. One job per model scores
# every test set (one table each): the model loads once and the DAG has a fifth of the jobs.


def per_test_set(pattern):
    """``pattern`` (with ``{test_set}``, other wildcards doubled) for every test set, in order."""
    return expand(pattern, test_set=TEST_SETS)


# One thread and no worker pool per scoring job: Snakemake runs scoring jobs side by side, and
# 4 concurrent 2-thread jobs (a 2-thread torch parent plus 2 pool workers each) took 137 CPU-s
# and 69 s for what 4 one-thread jobs did in 62 CPU-s and 31 s (32 utterances each, 2 cores).
SCORING_THREADS = 1

INPUT_SCORES = per_test_set(f"{RESULTS}/scores/input/{{test_set}}.csv")


rule score_input:
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


rule score_model:
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
