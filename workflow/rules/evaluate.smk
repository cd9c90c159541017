# Stage 4: per-utterance scores — the noisy input once per test set, then every model.


rule score_input:
    input:
        manifest=manifest("{test_set}"),
    output:
        scores=f"{RESULTS}/scores/input/{{test_set}}.csv",
    params:
        metrics=METRICS_PARAM,
    log:
        f"{RESULTS}/logs/scores/input/{{test_set}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/scores/input/{{test_set}}.tsv"
    threads: threads_up_to(2)
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "kdsd score-input --manifest {input.manifest} --out {output.scores}"
        " --threads {threads} > {log} 2>&1"


rule score_model:
    input:
        model=f"{RESULTS}/models/{{model}}/model.pt",
        manifest=manifest("{test_set}"),
        input_scores=rules.score_input.output.scores,
    output:
        scores=f"{RESULTS}/scores/{{model}}/{{test_set}}.csv",
    params:
        metrics=lambda w: METRICS_PARAM if scores_secondary_metrics(w.model) else CORE_METRICS_PARAM,
        core_only=lambda w: "" if scores_secondary_metrics(w.model) else " --core-metrics-only",
    log:
        f"{RESULTS}/logs/scores/{{model}}/{{test_set}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/scores/{{model}}/{{test_set}}.tsv"
    threads: threads_up_to(2)
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "kdsd score --model {input.model} --name {wildcards.model} --manifest {input.manifest}"
        " --input-scores {input.input_scores} --out {output.scores}{params.core_only}"
        " --threads {threads} > {log} 2>&1"


rule model_cost:
    input:
        model=f"{RESULTS}/models/{{model}}/model.pt",
    output:
        cost=f"{RESULTS}/cost/{{model}}.json",
    log:
        f"{RESULTS}/logs/cost/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cost/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "kdsd cost --model {input.model} --name {wildcards.model} --out {output.cost} > {log} 2>&1"


rule score_reference:
    input:
        manifest=manifest("{test_set}"),
        input_scores=rules.score_input.output.scores,
    output:
        scores=f"{RESULTS}/scores/references/{{reference}}/{{test_set}}.csv",
    params:
        metrics=METRICS_PARAM,
    log:
        f"{RESULTS}/logs/scores/references/{{reference}}/{{test_set}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/scores/references/{{reference}}/{{test_set}}.tsv"
    threads: threads_up_to(2)
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "kdsd score-reference --name {wildcards.reference} --manifest {input.manifest}"
        " --input-scores {input.input_scores} --out {output.scores} --threads {threads} > {log} 2>&1"


rule reference_cost:
    output:
        cost=f"{RESULTS}/cost/references/{{reference}}.json",
    log:
        f"{RESULTS}/logs/cost/references/{{reference}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cost/references/{{reference}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "kdsd cost --reference {wildcards.reference} --out {output.cost} > {log} 2>&1"
