# Stage 3: distill the students (scenario × method × seed), side by side in groups.
# Each group job also writes its students' deployable model.onnx (model.stream.onnx when causal)
# and their untimed cost records (export.smk times one student per scenario).
#
# A group (students.train_together: one per seed by default) is one job: one process, one data
# pipeline and one teacher forward per batch for all its students, each bit-identical to the
# same student trained alone (tests/test_together.py). A group holds only the students that still
# need training: a student is current when its job.json records the job config and upstream
# (teacher, loss, corpus) this run would use and its model is newer than its teacher. So a
# method, variant, scenario or seed added to a finished run trains only the new students.
import os

from kdsd.train.groups import student_groups, student_is_current



def teacher_model(seed):
    return f"{RESULTS}/models/{teacher_of(seed)}/model.pt"


def upstream(seed):
    """What a student's training depends on beyond its own job config: its teacher, the loss, the corpus."""
    return {"teacher": teacher_config(teacher_of(seed)), "loss": config["loss"], "corpus": config["corpus"]}


def student_dir(scenario, method, seed):
    return f"{RESULTS}/models/{student_model(scenario, method, seed)}"


def student_cost(scenario, method, seed):
    """A student's untimed cost record (its scenario's timing joins it in the report)."""
    return f"{RESULTS}/cost/{student_model(scenario, method, seed)}.json"


def is_causal(scenario):
    return bool(config["students"]["scenarios"][scenario].get("causal"))


def student_job(scenario, method, seed):
    """What one student's job.json records: its config, seed and upstream."""
    return {"config": student_job_config(config, scenario, method), "seed": seed, "upstream": upstream(seed)}


def _pending(scenario, method, seed):
    return not student_is_current(student_dir(scenario, method, seed), student_job(scenario, method, seed),
                                  teacher_model(seed))


# A cluster profile that gives train_teacher GPUs gives them to the student groups as well
# (profiles/slurm-gpu); their rule names change with the groups, so they are not named there.
TRAINING_GPUS = workflow.resource_settings.overwrite_resources.get("train_teacher", {}).get("gpu", 0)
PENDING = [student for student in STUDENTS if _pending(*student)]

for group, members in student_groups(PENDING, config["students"]["train_together"]).items():
    dirs = [student_dir(*member) for member in members]
    teachers = sorted({teacher_model(seed) for _, _, seed in members})

    rule:
        name:
            f"distill_students_{group}"
        input:
            teachers=teachers,
            train=manifest("train"),
            valid=manifest("valid"),
            method_files=METHOD_FILES,  # an edited method file retrains its students
        output:
            models=[f"{d}/model.pt" for d in dirs],
            histories=[f"{d}/history.csv" for d in dirs],
            onnx=[f"{d}/model.onnx" for d in dirs],
            # the causal ones' one-frame streaming graphs (kdsd/models/export.py)
            stream_onnx=[f"{d}/model.stream.onnx" for (sc, _, _), d in zip(members, dirs) if is_causal(sc)],
            costs=[student_cost(*member) for member in members],
            jobs=[f"{d}/job.json" for d in dirs],
        params:
            students=json_arg([{"scenario": sc, "method": m, "name": student_model(sc, m, s), "out": d,
                                "cost": student_cost(sc, m, s), "teacher": teacher_model(s),
                                "job": student_job(sc, m, s)}
                               for (sc, m, s), d in zip(members, dirs)]),
        log:
            f"{RESULTS}/logs/models/students/{group}.log",
        benchmark:
            f"{RESULTS}/benchmarks/models/students/{group}.tsv"
        threads: cores_claimed(1)
        # Training is the critical path: students start before any scoring. Of the groups, those
        # whose scoring costs most train first, so the last to finish is quick to score.
        priority: 50 + scoring_priority(student_model(*member) for member in members)
        resources:
            job_threads=job_threads,
            mem_mb=4000,
            runtime=240 * len(members),
            **({"gpu": TRAINING_GPUS} if TRAINING_GPUS else {}),
        shell:
            "kdsd distill --students-json {params.students}"
            " --train {input.train} --valid {input.valid} --threads {resources.job_threads} > {log} 2>&1"
