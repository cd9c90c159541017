# Stage 1: synthesize the embedded corpus, one job per split.


rule synthesize_split:
    output:
        manifest=f"{CORPUS}/{{split}}/manifest.csv",
    params:
        corpus=lambda w: shlex.quote(json.dumps(config["corpus"], sort_keys=True)),
        out=lambda w: f"{CORPUS}/{w.split}",
    log:
        f"{RESULTS}/logs/corpus/{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/corpus/{{split}}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "kdsd synthesize --config-json {params.corpus} --split {wildcards.split}"
        " --out {params.out} --threads {threads} > {log} 2>&1"
