# Stage 5: the pre-registered primary tests (the verdicts) and transfer question, tables (mean ± SD and 95 % intervals over
# seeds), exploratory seed-level comparisons, the retained fraction, budgets, plots and summary, all
# wrapped for the HTML report.


rule report_results:
    input:
        scores=expand(f"{RESULTS}/scores/{{model}}/{{test_set}}.csv", model=scored_models(),
                      test_set=TEST_SETS),
        histories=expand(f"{RESULTS}/models/{{model}}/history.csv", model=all_models()),
        costs=expand(f"{RESULTS}/cost/{{model}}.json", model=scored_models())
        + expand(f"{RESULTS}/cost/scenarios/{{scenario}}.json", scenario=SCENARIOS),
    output:
        table_csv=report(f"{RESULTS}/tables/summary.csv", caption="../report/table.rst",
                         category="Results", labels={"table": "summary (CSV)"}),
        table_md=f"{RESULTS}/tables/summary.md",
        comparisons=report(f"{RESULTS}/tables/comparisons.csv", caption="../report/comparisons.rst",
                           category="Results", labels={"table": "method comparisons over seeds (CSV)"}),
        primary=report(f"{RESULTS}/tables/primary.csv", caption="../report/primary.rst", category="Results",
                       labels={"table": "primary tests (pre-registered; the verdicts)"}),
        transfer=report(f"{RESULTS}/tables/transfer.csv", caption="../report/transfer.rst", category="Results",
                        labels={"table": "transfer question (pre-registered; recorded speech)"}),
        claim_csv=f"{RESULTS}/tables/claim.csv",
        retained=f"{RESULTS}/tables/retained.csv",
        slopes=f"{RESULTS}/tables/slopes.csv",
        budgets=f"{RESULTS}/tables/budgets.csv",
        claim=report(f"{RESULTS}/plots/claim.png", caption="../report/claim.rst", category="Results",
                     labels={"figure": "retained fraction vs compression (the paper's claim)"}),
        cost_csv=report(f"{RESULTS}/tables/cost.csv", caption="../report/cost.rst",
                        category="Model cost", labels={"table": "cost per model (CSV)"}),
        pareto=report(f"{RESULTS}/plots/pareto.png", caption="../report/pareto.rst",
                      category="Model cost", labels={"figure": "quality vs cost"}),
        improvements=report(f"{RESULTS}/plots/improvements.png",
                            caption="../report/improvements.rst", category="Results",
                            labels={"figure": "improvement over the noisy input"}),
        improvements_secondary=report(f"{RESULTS}/plots/improvements_secondary.png",
                                      caption="../report/improvements_secondary.rst", category="Results",
                                      labels={"figure": "improvement on the secondary metrics"}),
        curves=report(f"{RESULTS}/plots/learning_curves.png", caption="../report/learning_curves.rst",
                      category="Training", labels={"figure": "learning curves"}),
        summary=report(f"{RESULTS}/summary.md", caption="../report/summary.rst",
                       category="Results", labels={"table": "summary"}),
    params:
        out=RESULTS,
        provenance=lambda w: json_arg({"config": config}),
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    threads: cores_claimed(1)
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "kdsd report --scores {input.scores} --histories {input.histories} --costs {input.costs}"
        " --out-dir {params.out} --provenance-json {params.provenance} > {log} 2>&1"


rule listening_examples:
    input:
        manifest=manifest("{test_set}"),
        scores=lambda w: expand(f"{RESULTS}/scores/{{model}}/{w.test_set}.csv", model=scored_models()),
        models=expand(f"{RESULTS}/models/{{model}}/model.pt", model=all_models()),
    output:
        examples=report(directory(f"{RESULTS}/examples/{{test_set}}"), patterns=["{name}.png", "{name}.wav"],
                        caption="../report/examples.rst", category="Listening",
                        subcategory="{test_set}", labels={"file": "{name}"}),
    params:
        model_dir=f"{RESULTS}/models",
        references=" ".join(REFERENCES) or "''",
    log:
        f"{RESULTS}/logs/examples/{{test_set}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/examples/{{test_set}}.tsv"
    threads: cores_claimed(1)
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "kdsd examples --manifest {input.manifest} --scores {input.scores} --model-dir {params.model_dir}"
        " --references {params.references} --out-dir {output.examples} > {log} 2>&1"
