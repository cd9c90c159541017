# Shared names: which models exist, where their files go, how config reaches a job.
import json
import shlex

from kdsd.cluster import capped_threads, is_slurm, local_cores_claimed, threads_of_claim
from kdsd.corpus import recorded, recorded_collections, sources
from kdsd.metrics import METRIC_INFO, METRIC_TIERS, METRICS
from kdsd.train.jobs import check_students, run_scenarios, run_students, student_job_config

# A score table's columns follow kdsd's metric list; as a rule param, a change to that list
# makes Snakemake rescore instead of mixing old and new tables.
# Metric groups switched off (evaluation.metrics) drop out of the param too, so a switch rescores.
METRICS_OFF = [group for group, on in config["evaluation"]["metrics"].items() if not on]
METRICS_ON = [m for m in METRICS if METRIC_INFO[m].group not in METRICS_OFF]
TIER_METRICS = {tier: ",".join(m for m in metrics if m in METRICS_ON) for tier, metrics in METRIC_TIERS.items()}
METRICS_OFF_ARG = f" --metrics-off {' '.join(METRICS_OFF)}" if METRICS_OFF else ""

RESULTS = "results"
# Folders missing on disk or test sets the corpus lacks stop the run here, before any job.
sources.check(config["corpus"], config["evaluation"]["test_sets"])
CORPUS = f"{RESULTS}/corpus/{config['corpus']['source']}"
TEST_SETS = config["evaluation"]["test_sets"] or sources.test_splits(config["corpus"])
config["evaluation"]["test_sets"] = TEST_SETS  # resolved, so provenance and report name them
SCENARIOS = run_scenarios(config["students"])
STUDENTS = run_students(config["students"])  # (scenario, method, seed) of every student
METHODS = config["students"]["methods"]
# Unknown methods or variants, bad KD options and shape clashes stop the run here, before any job.
check_students(config)
METHOD_FILES = config["students"]["method_files"]
SEEDS = config["students"]["seeds"]
REFERENCES = config["evaluation"]["references"]
SECONDARY_SEEDS = SEEDS[:config["evaluation"]["secondary_metric_seeds"]]  # [:None] = all
CORE_SEEDS = SEEDS[:config["evaluation"]["core_metric_seeds"]]


SECONDARY_TEST_SETS = config["evaluation"]["secondary_metric_test_sets"]  # None = all


def unique_or_all(values):
    """``[v]`` when every value is ``v``, else the values."""
    return values[:1] if len(set(values)) == 1 else values


def _on_secondary_test_sets(tier, elsewhere):
    return [tier if SECONDARY_TEST_SETS is None or t in SECONDARY_TEST_SETS else elsewhere for t in TEST_SETS]


def metric_tiers(model):
    """What a table on each test set holds (schema: why). The input, the one teacher and the
    references: every metric on the secondary test sets, the base ones (no switchable group)
    elsewhere. A student's first seeds: every metric on the secondary test sets, the core ones
    elsewhere; the next seeds the core metrics, the rest SI-SDR alone. A teacher per seed
    (teacher.per_seed) is scored like its seed's students, but never below the core metrics."""
    if model in ("input", "teacher") or model.startswith("references/"):
        return _on_secondary_test_sets("all", "base")
    seed = int(model.rsplit("/seed", 1)[1])
    if seed in SECONDARY_SEEDS:
        return _on_secondary_test_sets("all", "core")
    core = seed in CORE_SEEDS or model.startswith("teachers/")
    return ["core" if core else "primary"] * len(TEST_SETS)


# A tier's cost rank: "all" (every metric) highest, "primary" (SI-SDR alone) 0.
_TIER_COST_RANK = {tier: rank for rank, tier in enumerate(reversed(METRIC_TIERS))}


def scoring_priority(models):
    """A scoring job's ``priority:`` (0-3, below training): the more metrics it computes, the
    earlier it starts, so that the run does not end on one long scoring job beside an idle core
    (the seed-1 group's every metric took 14x a SI-SDR-only group's CPU on 2026-12-06)."""
    return max((_TIER_COST_RANK[tier] for model in models for tier in metric_tiers(model)), default=0)


def tier_params(model):
    """A scoring rule's params: its tier (one, or one per test set where they differ) and the
    metric lists they hold, so that a change to either rescores."""
    tiers = unique_or_all(metric_tiers(model))
    return {"tier": " ".join(tiers), "metrics": ";".join(TIER_METRICS[t] for t in tiers)}

wildcard_constraints:
    split="[a-z_]+",
    test_set="test_[a-z_]+",
    scenario="[A-Za-z0-9_]+",
    method="[a-z0-9_]+",
    seed=r"\d+",
    model=r"teacher|teachers/seed\d+|students/[A-Za-z0-9_]+/[a-z0-9_]+/seed\d+",
    reference="[a-z0-9_]+",
    collection="[a-z0-9-]+",


def json_arg(value):
    """A value as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(value, sort_keys=True))


def as_json_arg(*sections):
    """Resolved config sections as one shell-quoted JSON argument."""
    return json_arg({s: config[s] for s in sections})


def student_model(scenario, method, seed):
    """A student's model name: its folder under models/ and scores/, its name in the tables."""
    return f"students/{scenario}/{method}/seed{seed}"


def student_models():
    return [student_model(*student) for student in STUDENTS]


PER_SEED_TEACHERS = config["teacher"]["per_seed"]
TEACHERS = [f"teachers/seed{s}" for s in SEEDS] if PER_SEED_TEACHERS else ["teacher"]


def teacher_of(seed):
    """The teacher a student seed distils from: its own with teacher.per_seed, else the one."""
    return f"teachers/seed{seed}" if PER_SEED_TEACHERS else "teacher"


def teacher_config(teacher):
    """The `teacher` section one teacher trains with: a per-seed teacher takes its student seed."""
    section = {k: v for k, v in config["teacher"].items() if k != "per_seed"}
    if teacher.startswith("teachers/seed"):
        section["seed"] = int(teacher.removeprefix("teachers/seed"))
    return section


def all_models():
    return TEACHERS + student_models()


def scored_models():
    """Everything with a score table: our models and the external reference denoisers."""
    return all_models() + [f"references/{r}" for r in REFERENCES]


def manifest(split):
    return f"{CORPUS}/{split}/manifest.csv"


RECORDED = recorded_collections.settings(config["corpus"])
RECORDED_CACHE = RECORDED["cache_dir"]
# What fetching needs and nothing more: a change to the test set's SNR or counts must not look
# like a reason to fetch and convert again.
RECORDED_FETCH_ARG = json_arg({"recorded": {k: RECORDED[k] for k in ("cache_dir", "deb_dir")}})


def recorded_inventories(split):
    """The converted recorded collections a corpus split is built from (none for most splits)."""
    return [str(recorded_collections.inventory_path(config["corpus"], name))
            for name in recorded.collections_for(config["corpus"], split)]


def _executor():
    plugin = workflow.executor_plugin
    return plugin.name if plugin else None


def _local_cores():
    """``--cores`` of a local run; None on SLURM, where Snakemake may have no core count."""
    return None if is_slurm(_executor()) else workflow.cores


def cores_claimed(requested):
    """A rule's ``threads:``, what the scheduler counts against ``--cores``: ``requested`` capped
    (on SLURM to the largest node, locally to this machine's CPUs), then scaled up locally where
    ``--cores`` exceeds the CPUs (kdsd/cluster.py). Evaluated per job, once Snakemake knows its
    executor."""
    def claim(wildcards):
        return local_cores_claimed(capped_threads(requested, _executor()), _local_cores(), _executor())
    return claim


def job_threads(wildcards, threads):
    """``resources.job_threads``: the threads a job's command runs for what it claimed."""
    return threads_of_claim(threads, _local_cores(), _executor())
