# Stage 4b: the deployment cost of each scenario's architecture. The training jobs (distill.smk)
# export every student to ONNX beside its model.pt and write its untimed cost record; here one
# student per scenario (the first method's first seed) is timed, in PyTorch and under onnxruntime,
# and every student of the scenario takes those real-time factors: they share one architecture.
# The teacher keeps model_cost (evaluate.smk).


def timed_student(scenario):
    return f"{RESULTS}/models/students/{scenario}/{METHODS[0]}/seed{SEEDS[0]}"


rule scenario_timing:
    input:
        model=lambda w: f"{timed_student(w.scenario)}/model.pt",
        onnx=lambda w: f"{timed_student(w.scenario)}/model.onnx",
    output:
        timing=f"{RESULTS}/cost/scenarios/{{scenario}}.json",
    log:
        f"{RESULTS}/logs/cost/scenarios/{{scenario}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cost/scenarios/{{scenario}}.tsv"
    threads: cores_claimed(1)  # one thread: the RTFs are one-thread figures
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "kdsd cost --model {input.model} --onnx {input.onnx} --scenario-timing {wildcards.scenario}"
        " --out {output.timing} > {log} 2>&1"
