# Stage 2: train the teacher on `train`, choosing its checkpoint on `valid` only.


rule train_teacher:
    input:
        train=manifest("train"),
        valid=manifest("valid"),
    output:
        model=f"{RESULTS}/models/teacher/model.pt",
        history=f"{RESULTS}/models/teacher/history.csv",
    params:
        cfg=as_json_arg("teacher", "loss"),
        out=f"{RESULTS}/models/teacher",
    log:
        f"{RESULTS}/logs/models/teacher.log",
    benchmark:
        f"{RESULTS}/benchmarks/models/teacher.tsv"
    threads: cores_claimed(4)
    priority: 100  # the start of the critical path: before the students and any scoring
    resources:
        job_threads=job_threads,
        mem_mb=8000,
        runtime=240,
    shell:
        "kdsd train-teacher --config-json {params.cfg} --train {input.train} --valid {input.valid}"
        " --out {params.out} --threads {resources.job_threads} > {log} 2>&1"
