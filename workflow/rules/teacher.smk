# Stage 2: train the teacher on `train`, choosing its checkpoint on `valid` only. One teacher
# (`teacher`, seed teacher.seed), or with teacher.per_seed one per student seed (`teachers/seed<k>`,
# seed k), so that each student seed distils from a teacher of its own.


rule train_teacher:
    input:
        train=manifest("train"),
        valid=manifest("valid"),
    output:
        model=f"{RESULTS}/models/{{teacher}}/model.pt",
        history=f"{RESULTS}/models/{{teacher}}/history.csv",
    wildcard_constraints:
        teacher=r"teacher|teachers/seed\d+",
    params:
        cfg=lambda w: json_arg({"teacher": teacher_config(w.teacher), "loss": config["loss"]}),
        out=lambda w: f"{RESULTS}/models/{w.teacher}",
    log:
        f"{RESULTS}/logs/models/{{teacher}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/models/{{teacher}}.tsv"
    threads: cores_claimed(4)
    priority: 100  # the start of the critical path: before the students and any scoring
    resources:
        job_threads=job_threads,
        mem_mb=8000,
        runtime=240,
    shell:
        "kdsd train-teacher --config-json {params.cfg} --train {input.train} --valid {input.valid}"
        " --out {params.out} --threads {resources.job_threads} > {log} 2>&1"
