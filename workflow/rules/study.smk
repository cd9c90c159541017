# Stage 6: the KD study's own tables — ablations (named variants), the valid-only KD-weight sweep,
# and where the run's time went.
from kdsd.distill.variants import base_method

# Variants (kd.<name>.method) in the run: their table joins `rule all` (presets/ablations.yaml).
VARIANTS = [m for m in METHODS if base_method(config["kd"], m) != m]


def study_targets():
    ablations = [f"{RESULTS}/tables/ablations.csv", f"{RESULTS}/tables/ablations.md"] if VARIANTS else []
    return ablations + [f"{RESULTS}/tables/runtime.csv"]


rule ablation_table:
    input:
        scores=expand(f"{RESULTS}/scores/{{model}}/{{test_set}}.csv", model=student_models(),
                      test_set=TEST_SETS),
        models=expand(f"{RESULTS}/models/{{model}}/model.pt", model=student_models()),
    output:
        csv=report(f"{RESULTS}/tables/ablations.csv", caption="../report/ablations.rst",
                   category="Ablations", labels={"table": "ablations (CSV)"}),
        md=f"{RESULTS}/tables/ablations.md",
    log:
        f"{RESULTS}/logs/ablations.log",
    benchmark:
        f"{RESULTS}/benchmarks/study/ablations.tsv"
    threads: cores_claimed(1)
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "kdsd ablations --scores {input.scores} --models {input.models}"
        " --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


# Not in `rule all`: run it as a target, so no test set is ever scored for the sweep
#   snakemake --cores 2 --configfile workflow/presets/kd_sweep.yaml -- results/tables/kd_weights.csv
rule kd_weights:
    input:
        models=expand(f"{RESULTS}/models/{{model}}/model.pt", model=student_models()),
    output:
        csv=f"{RESULTS}/tables/kd_weights.csv",
    log:
        f"{RESULTS}/logs/kd_weights.log",
    benchmark:
        f"{RESULTS}/benchmarks/study/kd_weights.tsv"
    threads: cores_claimed(1)
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "kdsd kd-weights --models {input.models} --out {output.csv} > {log} 2>&1"


# Last job of a run: its inputs are every other target of `rule all`, so all benchmarks exist.
rule runtime_table:
    input:
        rules.report_results.output,
        expand(f"{RESULTS}/examples/{{test_set}}", test_set=TEST_SETS),
        f"{RESULTS}/tables/corpus.md",
        [t for t in study_targets() if not t.endswith("runtime.csv")],
    output:
        csv=report(f"{RESULTS}/tables/runtime.csv", caption="../report/runtime.rst",
                   category="Runtime", labels={"table": "wall and CPU seconds per rule family"}),
    params:
        benchmarks=f"{RESULTS}/benchmarks",
    log:
        f"{RESULTS}/logs/runtime.log",
    benchmark:
        f"{RESULTS}/benchmarks/study/runtime.tsv"
    threads: cores_claimed(1)
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "kdsd runtime --benchmarks {params.benchmarks} --out {output.csv} > {log} 2>&1"
