# Stage 1: build the corpus (synthetic, or an adapter over audio on disk), one job per split,
# and describe it.

# Every split and fetch before the teacher (100) and the students (50): a job claiming both cores
# cannot start beside a training job, so a test split left for later waited until training ended
# (and the input's scores, and every score after them, waited on it).
CORPUS_PRIORITY = 110


rule fetch_recorded:
    """One recorded collection: its pinned .deb files fetched (or taken from deb_dir), hash-checked,
    unpacked and converted to 16 kHz into the cache outside results/, once for every run using it."""
    output:
        inventory=f"{RECORDED_CACHE}/{{collection}}/inventory.csv",
    params:
        recorded=RECORDED_FETCH_ARG,
    log:
        f"{RESULTS}/logs/recorded/{{collection}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/recorded/{{collection}}.tsv"
    threads: cores_claimed(2)
    priority: CORPUS_PRIORITY  # test_recorded and the recorded training splits wait on it
    resources:
        job_threads=job_threads,
        mem_mb=2000,
        runtime=30,
    shell:
        "kdsd fetch-recorded --config-json {params.recorded} --collection {wildcards.collection}"
        " --threads {resources.job_threads} > {log} 2>&1"


rule build_corpus_split:
    input:
        recorded=lambda w: recorded_inventories(w.split),
    output:
        manifest=f"{CORPUS}/{{split}}/manifest.csv",
    params:
        corpus=lambda w: json_arg(config["corpus"]),
        out=lambda w: f"{CORPUS}/{w.split}",
    log:
        f"{RESULTS}/logs/corpus/{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/corpus/{{split}}.tsv"
    threads: cores_claimed(2)
    priority: CORPUS_PRIORITY
    resources:
        job_threads=job_threads,
        mem_mb=4000,
        runtime=60,
    shell:
        "kdsd build-corpus --config-json {params.corpus} --split {wildcards.split}"
        " --out {params.out} --threads {resources.job_threads} > {log} 2>&1"


rule corpus_report:
    input:
        manifests=expand(f"{CORPUS}/{{split}}/manifest.csv", split=["train", "valid", *TEST_SETS]),
    output:
        table_csv=report(f"{RESULTS}/tables/corpus.csv", caption="../report/corpus.rst",
                         category="Corpus", labels={"table": "per split (CSV)"}),
        table_md=f"{RESULTS}/tables/corpus.md",
        sources=report(f"{RESULTS}/tables/corpus_sources.csv", caption="../report/corpus_sources.rst",
                       category="Corpus", labels={"table": "recorded sources and licences (CSV)"}),
        families=report(f"{RESULTS}/tables/corpus_families.csv", caption="../report/corpus.rst",
                        category="Corpus", labels={"table": "noise families per split (CSV)"}),
        snr=report(f"{RESULTS}/plots/corpus_snr.png", caption="../report/corpus_snr.rst",
                   category="Corpus", labels={"figure": "SNR histogram"}),
        family_plot=report(f"{RESULTS}/plots/corpus_families.png", caption="../report/corpus.rst",
                           category="Corpus", labels={"figure": "noise families"}),
        spectrograms=report(f"{RESULTS}/plots/corpus_spectrograms.png",
                            caption="../report/corpus_spectrograms.rst", category="Corpus",
                            labels={"figure": "example spectrograms"}),
        examples=report(directory(f"{RESULTS}/examples/corpus"), patterns=["{split}/{name}.wav"],
                        caption="../report/corpus_audio.rst", category="Corpus",
                        subcategory="audio examples", labels={"file": "{split}/{name}"}),
    params:
        splits=["train", "valid", *TEST_SETS],
        out=RESULTS,
    log:
        f"{RESULTS}/logs/corpus_report.log",
    benchmark:
        f"{RESULTS}/benchmarks/corpus_report.tsv"
    threads: cores_claimed(1)
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "kdsd corpus-report --splits {params.splits} --manifests {input.manifests}"
        " --out-dir {params.out} > {log} 2>&1"
