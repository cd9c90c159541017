# Stage 3: distill one student per scenario × method × seed.


rule distill_student:
    input:
        teacher=rules.train_teacher.output.model,
        train=manifest("train"),
        valid=manifest("valid"),
        method_files=METHOD_FILES,  # an edited method file retrains its students
    output:
        model=f"{RESULTS}/models/students/{{scenario}}/{{method}}/seed{{seed}}/model.pt",
        history=f"{RESULTS}/models/students/{{scenario}}/{{method}}/seed{{seed}}/history.csv",
    params:
        # Only this student's part of the config: new methods, seeds or scenarios leave it as is.
        cfg=lambda w: json_arg(student_job_config(config, w.scenario, w.method)),
        out=lambda w: f"{RESULTS}/models/students/{w.scenario}/{w.method}/seed{w.seed}",
    log:
        f"{RESULTS}/logs/models/students/{{scenario}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/models/students/{{scenario}}/{{method}}/seed{{seed}}.tsv"
    threads: cores_claimed(1)
    priority: 50  # training is the critical path: students start before any scoring
    resources:
        job_threads=job_threads,
        mem_mb=4000,
        runtime=240,
    shell:
        "kdsd distill --config-json {params.cfg} --teacher {input.teacher}"
        " --method {wildcards.method} --scenario {wildcards.scenario} --seed {wildcards.seed}"
        " --train {input.train} --valid {input.valid} --out {params.out}"
        " --threads {resources.job_threads} > {log} 2>&1"
