# kdsd: knowledge distillation for speech denoising, one DAG end to end.
#   snakemake --cores 8                                        # default experiment (config.yaml)
#   snakemake --cores 2 --configfile workflow/presets/smoke.yaml   # tiny CI run
#   snakemake --profile profiles/slurm                          # the same DAG on a SLURM cluster
#   snakemake --report results/report.html                      # HTML report with captions
from snakemake.utils import min_version, validate

min_version("9.0")

configfile: os.path.join(workflow.basedir, "config.yaml")
validate(config, "workflow/schemas/config.schema.yaml")  # before any job runs

report: "workflow/report/workflow.rst"

include: "workflow/rules/common.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/study.smk"


rule all:
    input:
        "results/summary.md",
        "results/tables/summary.csv",
        "results/tables/summary.md",
        "results/plots/improvements.png",
        "results/plots/learning_curves.png",
        expand("results/examples/{test_set}", test_set=TEST_SETS),
        "results/tables/corpus.md",
        study_targets(),
