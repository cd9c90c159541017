# Stage 4b: the deployable form of every student. Its cost job (evaluate.smk's model_cost, which
# this file takes over for students) also exports it to ONNX beside its model.pt and times the
# export under onnxruntime: no extra job per student, and the onnxruntime RTF in the cost table
# is that of the file users deploy. A causal student also gets model.stream.onnx, its one-frame
# streaming graph. The teacher keeps model_cost (exported to a temporary folder for its RTF).

STUDENT_DIR = f"{RESULTS}/models/students/{{scenario}}/{{method}}/seed{{seed}}"


def causal_scenarios():
    """Run scenarios with `causal: true`, as a regex alternative ('^$' when none)."""
    scenarios = config["students"]["scenarios"]
    return "|".join(s for s in SCENARIOS if scenarios[s].get("causal")) or "^$"


# Shared by both rules; the paths are model_cost's, so logs and runtime families stay put.
STUDENT_COST = f"{RESULTS}/cost/students/{{scenario}}/{{method}}/seed{{seed}}.json"
STUDENT_COST_LOG = f"{RESULTS}/logs/cost/students/{{scenario}}/{{method}}/seed{{seed}}.log"
STUDENT_COST_BENCHMARK = f"{RESULTS}/benchmarks/cost/students/{{scenario}}/{{method}}/seed{{seed}}.tsv"
EXPORT_SHELL = ("kdsd cost --model {input.model} --name students/{wildcards.scenario}/{wildcards.method}"
                "/seed{wildcards.seed} --out {output.cost} --onnx-out {output.onnx} > {log} 2>&1")


rule export_student:
    input:
        model=f"{STUDENT_DIR}/model.pt",
    output:
        cost=STUDENT_COST,
        onnx=f"{STUDENT_DIR}/model.onnx",
    wildcard_constraints:
        scenario=f"(?!(?:{causal_scenarios()})$)[A-Za-z0-9_]+",
    log:
        STUDENT_COST_LOG,
    benchmark:
        STUDENT_COST_BENCHMARK
    threads: cores_claimed(1)  # one thread: the RTFs are one-thread figures
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        EXPORT_SHELL


rule export_causal_student:
    input:
        model=f"{STUDENT_DIR}/model.pt",
    output:
        cost=STUDENT_COST,
        onnx=f"{STUDENT_DIR}/model.onnx",
        stream_onnx=f"{STUDENT_DIR}/model.stream.onnx",
    wildcard_constraints:
        scenario=causal_scenarios(),
    log:
        STUDENT_COST_LOG,
    benchmark:
        STUDENT_COST_BENCHMARK
    threads: cores_claimed(1)  # one thread: the RTFs are one-thread figures
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        EXPORT_SHELL


ruleorder: export_causal_student > export_student > model_cost
