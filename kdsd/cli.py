"""`kdsd <subcommand>`: commands for users (enhance, export, benchmarks, power), the steps the
Snakemake rules call, and the documentation's generators.

Config sections arrive as JSON strings (``--config-json``) resolved by the workflow, so every
job sees exactly the validated config. User errors print one line and exit 2. Each command's
description and example live in COMMAND_GROUPS, DETAILS and EXAMPLES below; docs/cli.md is
written from the parser (``kdsd cli-docs``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from kdsd.errors import KdsdError
from kdsd.metrics import METRIC_GROUPS, METRIC_TIERS
from kdsd.train.groups import GROUPINGS


def _threads(args) -> None:
    import torch

    torch.set_num_threads(max(1, args.threads))


def cmd_build_corpus(args) -> None:
    from kdsd.corpus.sources import build_split

    build_split(json.loads(args.config_json), args.split, args.out, workers=args.threads)


def cmd_fetch_recorded(args) -> None:
    from kdsd.corpus.recorded_collections import prepare

    prepare(json.loads(args.config_json), args.collection, workers=args.threads)


def cmd_bench_synthesis(args) -> None:
    from kdsd.corpus.bench import bench_synthesis

    bench_synthesis(json.loads(args.config_json), args.split, args.workers, args.utterances)  # prints


def cmd_train_teacher(args) -> None:
    from kdsd.train.jobs import train_teacher

    _threads(args)
    train_teacher(json.loads(args.config_json), args.train, args.valid, args.out)


def cmd_distill(args) -> None:
    from kdsd.metrics.cost import export_student
    from kdsd.models.io import load_model
    from kdsd.train.groups import write_job_record
    from kdsd.train.jobs import StudentJob, distill_students

    _threads(args)
    students = json.loads(args.students_json)
    jobs = [StudentJob(s["job"]["config"], s["method"], s["scenario"], s["out"], s["job"]["seed"], s["teacher"])
            for s in students]
    models = distill_students(jobs, args.train, args.valid)
    for student, model_path in zip(students, models):
        model, payload = load_model(model_path)
        export_student(model, payload, student["name"], Path(student["out"]) / "model.onnx", student["cost"])
        # last: a student with its record is finished (kdsd/train/groups.py)
        write_job_record(student["out"], student["job"])


def cmd_score_input(args) -> None:
    from kdsd.metrics.scoring import score_input

    _threads(args)  # the speaker encoder runs torch
    score_input(args.manifest, args.out, workers=args.threads, tier=metric_tier(args), disabled=args.metrics_off)


def cmd_score(args) -> None:
    from kdsd.metrics.scoring import score_model

    _threads(args)
    score_model(args.model, args.name, args.manifest, args.input_scores, args.out, workers=args.threads,
                tier=metric_tier(args), disabled=args.metrics_off)


def cmd_score_group(args) -> None:
    from kdsd.metrics.scoring import score_models
    from kdsd.train.groups import write_job_record

    _threads(args)
    models = _models_json(args.models_json)
    score_models(models, args.manifest, args.input_scores, workers=args.threads, disabled=args.metrics_off)
    for spec in models:  # last: a model with its record is scored (kdsd/metrics/groups.py)
        if "job" in spec:
            write_job_record(Path(spec["out"][0]).parent, spec["job"])


def _models_json(text: str) -> list[dict]:
    try:
        models = json.loads(text)
    except ValueError as exc:
        raise KdsdError(f"--models-json: not JSON ({exc})") from None
    required = ("model", "name", "out")
    if not isinstance(models, list) or not models or not all(
            isinstance(m, dict) and all(k in m for k in required) for m in models):
        raise KdsdError(f"--models-json: expected a non-empty list of objects with {', '.join(required)}")
    return models


def cmd_cost(args) -> None:
    from kdsd.metrics.cost import write_model_cost, write_reference_cost, write_scenario_timing

    if args.reference:
        write_reference_cost(args.reference, args.out)
    elif args.scenario_timing:
        write_scenario_timing(args.model, args.onnx, args.scenario_timing, args.out)
    else:
        write_model_cost(args.model, args.name, args.out, onnx_out=args.onnx_out)


def cmd_score_reference(args) -> None:
    from kdsd.metrics.scoring import score_reference

    _threads(args)
    score_reference(args.name, args.manifest, args.input_scores, args.out, workers=args.threads,
                    tier=metric_tier(args), disabled=args.metrics_off)


def cmd_bench_scoring(args) -> None:
    from kdsd.metrics.bench import bench_scoring, print_bench

    rows = bench_scoring(args.manifest, args.models, args.grouping, args.tiers, args.repeats, args.limit,
                         args.preset)
    print_bench(rows, args.repeats)


def cmd_bench_deploy(args) -> None:
    from kdsd.metrics.deploy_bench import bench_deployment, print_deployment

    rows = bench_deployment(args.model_dirs, args.audio, args.seconds, args.repeats)
    print_deployment(rows)


def cmd_examples(args) -> None:
    from kdsd.analysis.examples import write_examples

    _threads(args)
    write_examples(args.manifest, args.scores, args.model_dir, args.out_dir, n=args.count,
                   references=[r for r in args.references if r])


def cmd_corpus_report(args) -> None:
    from kdsd.analysis.corpus_report import write_corpus_report

    if len(args.splits) != len(args.manifests):
        raise KdsdError(f"--splits names {len(args.splits)} splits but --manifests gives "
                        f"{len(args.manifests)} files")
    write_corpus_report(dict(zip(args.splits, args.manifests)), args.out_dir)


def cmd_report(args) -> None:
    from kdsd.analysis.pipeline import write_results

    write_results(args.scores, args.histories, args.costs, args.out_dir,
                  json.loads(args.provenance_json))


def cmd_ablations(args) -> None:
    from kdsd.analysis.ablations import write_ablations

    write_ablations(args.scores, args.models, args.out_csv, args.out_md)


def cmd_kd_weights(args) -> None:
    from kdsd.analysis.kd_sweep import write_kd_weights

    write_kd_weights(args.models, args.out)


def cmd_runtime(args) -> None:
    from kdsd.analysis.runtime import write_runtime

    write_runtime(args.benchmarks, args.out)


def cmd_power(args) -> None:
    from kdsd.analysis.simulate import print_power_report

    print_power_report({f"level SD {sd:g}": sd for sd in args.sd}, args.seeds, alpha=args.alpha,
                       family_size=args.family_size, target_power=args.power, target_effect=args.target,
                       trend_studies=args.trend_studies, measured_on=args.measured_on)


def cmd_bench(args) -> None:
    from kdsd.bench import bench

    _threads(args)
    bench(args.preset, args.method, args.steps, profile=args.profile)  # prints its tables


def cmd_enhance(args) -> None:
    import torch

    from kdsd.enhance import EnhanceOptions, OnnxModel, enhance_paths
    from kdsd.models.io import load_model

    torch.set_num_threads(max(1, args.threads))
    if args.stream:
        return _enhance_stream(args)
    if args.onnx and args.device != "cpu":
        raise KdsdError("--onnx runs under onnxruntime on the CPU; drop --device")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise KdsdError("--device cuda: no CUDA device is available here; use --device cpu")
    if args.chunk_s is not None and args.chunk_s <= 0:
        raise KdsdError(f"--chunk-s: must be positive, got {args.chunk_s}")
    model = (OnnxModel(args.onnx, threads=max(1, args.threads)) if args.onnx
             else load_model(args.model)[0].to(args.device))
    options = EnhanceOptions(channel=args.channel, mix=args.mix, keep_rate=args.keep_rate,
                             **({"chunk_s": args.chunk_s} if args.chunk_s else {}))
    written = enhance_paths(model, args.input, args.output, options)
    print(f"kdsd: wrote {written[0] if len(written) == 1 else f'{len(written)} files'}",
          file=sys.stderr)


def _enhance_stream(args) -> None:
    """`kdsd enhance --stream`: hop by hop through a causal model (PyTorch or its streaming ONNX
    graph), printing the per-hop compute time against the hop."""
    from kdsd.enhance import EnhanceOptions, stream_file
    from kdsd.models.io import load_model

    if args.device != "cpu":
        raise KdsdError("--stream runs on the CPU, one hop at a time; drop --device")
    if Path(args.input).is_dir():
        raise KdsdError(f"{args.input}: --stream takes one file, not a folder")
    model = load_model(args.model)[0] if args.model else None
    if model is not None and not getattr(model, "causal", False):
        raise KdsdError(f"{args.model}: only a causal model (scenario option `causal: true`) can "
                        "stream; this one reads future frames (enhance it without --stream)")
    options = EnhanceOptions(channel=args.channel, mix=args.mix, keep_rate=args.keep_rate)
    result = stream_file(args.input, args.output, model=model, onnx_path=args.onnx,
                         options=options, threads=max(1, args.threads))
    print(f"kdsd: wrote {args.output}; {result.timing_line()}", file=sys.stderr)


PARITY_TOLERANCE = 1e-4  # onnxruntime against PyTorch, max abs difference (tests/test_deploy.py)


def cmd_export(args) -> None:
    import numpy as np

    from kdsd.enhance import enhance_wave
    from kdsd.metrics.cost import fixed_noise
    from kdsd.models.export import OnnxDenoiser, export_all
    from kdsd.models.io import load_model

    out = Path(args.out)
    if out.suffix != ".onnx":
        raise KdsdError(f"--out {out}: name the ONNX file, ending in .onnx (e.g. model.onnx)")
    model, _ = load_model(args.model)
    written = export_all(model, out)
    noise = fixed_noise(1.0)
    difference = float(np.abs(OnnxDenoiser(out)(noise) - enhance_wave(model, noise)).max())
    if not difference <= PARITY_TOLERANCE:  # NaN fails too
        raise KdsdError(f"{out}: onnxruntime and PyTorch differ by {difference:.2g} on 1 s of noise "
                        f"(tolerance {PARITY_TOLERANCE:g}); the export is not usable")
    print(f"kdsd: wrote {out} (offline graph: kdsd enhance --onnx {out} IN OUT); onnxruntime matches "
          f"PyTorch to {difference:.1g} on 1 s of noise", file=sys.stderr)
    for stream in written[1:]:
        print(f"kdsd: wrote {stream} (streaming graph: kdsd enhance --stream --onnx {stream} IN OUT)",
              file=sys.stderr)
    if len(written) == 1:
        print(f"kdsd: {args.model} is not causal, so it has no streaming graph (causal students: "
              "workflow/presets/causal.yaml)", file=sys.stderr)


def cmd_readme_results(args) -> None:
    from kdsd.atomic import write_text
    from kdsd.docs import replace_block, results_markdown, write_snapshot

    source = args.results
    block = results_markdown(source, args.test_set)  # a bad run stops here, before any file is written
    if args.snapshot:
        source = write_snapshot(source, args.snapshot, args.note or "")
        block = results_markdown(source, args.test_set)
    if not args.readme:
        sys.stdout.write(block)
        return
    readme = Path(args.readme)
    write_text(readme, replace_block(readme.read_text(), block, readme))
    print(f"kdsd: rewrote the results block of {readme} from {source}", file=sys.stderr)


def cmd_cli_docs(args) -> None:
    from kdsd.atomic import write_text
    from kdsd.docs import cli_markdown

    if args.out:
        write_text(args.out, cli_markdown())
    else:
        sys.stdout.write(cli_markdown())


def add_test_set_paths(parser, input_scores: bool = True, per_model: bool = False) -> None:
    """The per-test-set paths of a scoring command: the i-th of each list belong together.
    ``per_model``: the tables and tiers come with each model (``--models-json``) instead."""
    parser.add_argument("--manifest", nargs="+", required=True, help="test-set manifest.csv files")
    if input_scores:
        parser.add_argument("--input-scores", nargs="+", required=True,
                            help="the noisy input's score CSV of each manifest, in order")
    parser.add_argument("--metrics-off", nargs="*", default=[], choices=METRIC_GROUPS, metavar="GROUP",
                        help="metric groups left empty (evaluation.metrics switches set to false)")
    if per_model:
        return
    parser.add_argument("--out", nargs="+", required=True, help="one score CSV per manifest, in order")
    parser.add_argument("--metric-tier", choices=list(METRIC_TIERS), nargs="+", default=["all"],
                        help="one for every test set, or one per --manifest: all metrics; base: the "
                             "switchable groups left empty (input, single teacher and references outside "
                             "evaluation.secondary_metric_test_sets); core: every secondary one left "
                             "empty (evaluation.secondary_metric_seeds, secondary_metric_test_sets); "
                             "primary: SI-SDR only (evaluation.core_metric_seeds)")


def metric_tier(args) -> str | list[str]:
    """``--metric-tier``: one tier for every test set, or the list of them."""
    return args.metric_tier[0] if len(args.metric_tier) == 1 else args.metric_tier


USER_COMMANDS = ("enhance", "export", "bench", "bench-deploy", "power")
PIPELINE_BENCHMARKS = ("bench-synthesis", "bench-scoring")
DOCS_COMMANDS = ("readme-results", "cli-docs")
# The steps the Snakemake rules run: (rule, rule file, a target whose job runs it). A step's help
# shows `snakemake -n -p -f TARGET`, which prints the exact command line the rule would run.
PIPELINE_STEPS = {
    "fetch-recorded": ("fetch_recorded", "corpus.smk", "data/recorded/asterisk-en/inventory.csv"),
    "build-corpus": ("build_corpus_split", "corpus.smk", "results/corpus/synthetic/train/manifest.csv"),
    "corpus-report": ("corpus_report", "corpus.smk", "results/tables/corpus.csv"),
    "train-teacher": ("train_teacher", "teacher.smk", "results/models/teacher/model.pt"),
    "distill": ("distill_students_seed<k>", "distill.smk",
                "results/models/students/width_1_8/cosine/seed1/model.pt"),
    "score-input": ("score_input", "evaluate.smk", "results/scores/input/test_matched.csv"),
    "score": ("score_model", "evaluate.smk", "results/scores/teacher/test_matched.csv"),
    "score-group": ("score_students_seed<k>", "evaluate.smk",
                    "results/scores/students/width_1_8/cosine/seed1/test_matched.csv"),
    "score-reference": ("score_reference", "evaluate.smk",
                        "results/scores/references/rnnoise/test_matched.csv"),
    "cost": ("model_cost, reference_cost, scenario_timing", "evaluate.smk, export.smk",
             "results/cost/teacher.json"),
    "examples": ("listening_examples", "report.smk", "results/examples/test_matched"),
    "report": ("report_results", "report.smk", "results/tables/summary.csv"),
    "ablations": ("ablation_table", "study.smk",
                  "--configfile workflow/presets/ablations.yaml -- results/tables/ablations.csv"),
    "kd-weights": ("kd_weights", "study.smk",
                   "--configfile workflow/presets/kd_sweep.yaml -- results/tables/kd_weights.csv"),
    "runtime": ("runtime_table", "study.smk", "results/tables/runtime.csv"),
}
COMMAND_GROUPS = (
    ("commands for users", USER_COMMANDS),
    ("benchmarks of pipeline steps", PIPELINE_BENCHMARKS),
    ("pipeline steps (the Snakemake rules run these)", tuple(PIPELINE_STEPS)),
    ("documentation (maintainers)", DOCS_COMMANDS),
)
STUDENT = "results/models/students/width_1_8/cosine/seed1"
CAUSAL_STUDENT = "results/models/students/width_1_4_causal/cosine/seed1"
DETAILS = {
    "enhance": (
        "The model is a kdsd model.pt (PyTorch), its offline ONNX export (--onnx model.onnx: "
        "onnxruntime and a numpy STFT), or, with --stream, a causal model processed hop by hop as a "
        "live input arrives (--model model.pt or --onnx model.stream.onnx). A run's models: "
        "results/models/teacher/model.pt and results/models/students/<scenario>/<method>/seed<k>/"
        "model.pt, with model.onnx (and, for causal students, model.stream.onnx) beside each student.\n\n"
        "Input: any format and sample rate libsndfile reads; other rates than 16 kHz are resampled "
        "(a note says so) and the estimate is written at 16 kHz, or at the input's rate with "
        "--keep-rate. A folder is enhanced file by file into the output folder under the same "
        "relative names; a file that fails is named and the others finish (exit status 2 if any "
        "failed). Long files go through in chunks with the model's receptive field as context, so "
        "the result equals whole-file processing. More: docs/deployment.md."),
    "export": (
        "The graph is the network between STFT and iSTFT: input `magnitude` (1, 257, frames), output "
        "`mask` of the same shape; the framing (n_fft, hop, causal) is in its metadata, and the STFT "
        "and iSTFT stay outside (numpy; docs/deployment.md has a 10-line runner needing only numpy, "
        "onnxruntime and soundfile). A causal model (scenario option `causal: true`; `snakemake "
        "--cores 2 --configfile workflow/presets/causal.yaml` trains some, after `make reproduce`) "
        "also gets its one-frame streaming graph, "
        "NAME.stream.onnx, beside --out. The export is checked against PyTorch on 1 s of noise. "
        "A run's students already have model.onnx (and model.stream.onnx) beside their model.pt."),
    "bench": (
        "Prints, per model of the preset (the teacher and the smallest student), the training loop's "
        "throughput in audio seconds per second against its ceiling (forward and backward alone), "
        "inference throughput and the one-thread real-time factor, on this machine; one seed's "
        "students stepped alone and side by side; and each scenario's training step on one thread "
        "against the machine's single-core peak, measured by a GEMM on the spot (MACs per CPU "
        "second, share of peak). --profile adds where one seed's group step spends its CPU, by "
        "stage and by operator family. docs/measurements.md logs past figures."),
    "bench-deploy": (
        "Each folder holds model.pt and model.onnx (and model.stream.onnx if causal). Prints, on one "
        "thread: parameters, algorithmic latency, real-time factor under PyTorch and onnxruntime, "
        "and for causal students the median and 99th-percentile compute time per 8 ms hop; then the "
        "deployment targets (latency ≤ 40 ms, p99 hop time ≤ 20 % of the hop, onnxruntime RTF ≤ "
        "0.002) with the figure each was judged on. More: docs/deployment.md."),
    "power": (
        "For each seed SD of the level difference (cosine − baseline, dB) and seed count: the 95 % "
        "half-width, the minimum detectable effect (80 % power at Holm's first step, two-sided α/4) "
        "and the power for the target effect. With --trend-studies, simulates the size and power of "
        "the two trend tests. A run's seed SDs are in its tables/primary.csv (sd_seed). "
        "More: docs/statistics.md."),
    "bench-synthesis": "Speed of the embedded corpus's synthesis (TTS, noise, mixing) per worker count.",
    "bench-scoring": ("CPU seconds per student of real `kdsd score-group` processes, on the SI-SDR-only "
                      "and core metric tiers, grouped as the run groups them and alone (random-weight "
                      "students of one seed of --preset, or --models)."),
    "readme-results": (
        "Reads RESULTS/tables/summary.csv, primary.csv and claim.csv (and shows plots/claim.png) and "
        "prints the README's results block: the teacher's and students' ΔSI-SDR per scenario × "
        "method (mean ± SD over seeds) and the primary verdicts. --snapshot first copies those files "
        "into a folder of the repository (docs/results/default) and the block quotes the copy; "
        "--readme rewrites the block in place. tests/test_docs.py fails when the README's block "
        "differs from this command's output on the snapshot."),
    "cli-docs": "docs/cli.md: `kdsd -h` and every command's -h text, in the order of `kdsd -h`.",
}
EXAMPLES = {
    "enhance": [
        "kdsd enhance --model results/models/teacher/model.pt noisy.wav estimate.wav",
        "kdsd enhance --model results/models/teacher/model.pt recordings/ enhanced/",
        f"kdsd enhance --onnx {STUDENT}/model.onnx noisy.flac estimate.wav",
        f"kdsd enhance --stream --onnx {CAUSAL_STUDENT}/model.stream.onnx noisy.wav estimate.wav"],
    "export": [
        f"kdsd export {CAUSAL_STUDENT}/model.pt --out model.onnx   # + model.stream.onnx",
        "kdsd enhance --onnx model.onnx noisy.wav estimate.wav",
        "kdsd enhance --stream --onnx model.stream.onnx noisy.wav estimate.wav"],
    "bench": ["kdsd bench", "kdsd bench --profile --threads 1", "kdsd bench --preset paper --steps 5"],
    "bench-deploy": [f"kdsd bench-deploy {STUDENT} {CAUSAL_STUDENT} --audio noisy20s.wav"],
    "power": ["kdsd power --sd 0.09 0.24 --seeds 6 8 10 12", "kdsd power --trend-studies 2000"],
    "bench-synthesis": ["kdsd bench-synthesis --workers 1 2"],
    "bench-scoring": ["kdsd bench-scoring --manifest results/corpus/synthetic/test_*/manifest.csv"],
    "readme-results": ["kdsd readme-results results/",
                       "make readme-results NOTE='make reproduce on a fresh clone, 2 cores (…), 63 min'"],
    "cli-docs": ["kdsd cli-docs --out docs/cli.md   # or: make cli-docs"],
    **{name: [f"snakemake -n -p -f {target}   # prints this step's exact kdsd command line"]
       for name, (_, _, target) in PIPELINE_STEPS.items()},
}
NO_THREADS = ("export", "readme-results", "cli-docs")  # every other command takes --threads


def command_details(name: str) -> str:
    if name in PIPELINE_STEPS:
        rule, rule_file, _ = PIPELINE_STEPS[name]
        rules = "the rules {} (workflow/rules/{}) run" if "," in rule else "the rule {} (workflow/rules/{}) runs"
        return f"A pipeline step: {rules.format(rule, rule_file)} it with paths and config from the workflow."
    return DETAILS[name]


class HelpFormatter(argparse.HelpFormatter):
    """Paragraphs wrapped to the terminal; indented lines (lists, examples) kept as written."""

    def _fill_text(self, text, width, indent):
        return "\n\n".join("\n".join(indent + line for line in block.splitlines()) if "\n  " in block
                           else super(HelpFormatter, self)._fill_text(block, width, indent)
                           for block in text.split("\n\n"))


def mark_required(parser: argparse.ArgumentParser) -> None:
    """argparse lists a required option among the optional ones; say that it is required."""
    for action in parser._actions:
        if action.required and action.option_strings:
            action.help = f"{action.help} (required)" if action.help else "required"


def command_listing(summaries: dict[str, str]) -> str:
    """`kdsd -h`'s list of commands, group by group, user commands first."""
    import shutil
    import textwrap

    name_width = 2 + max(map(len, summaries)) + 2
    width = max(60, shutil.get_terminal_size().columns - 2)
    blocks = []
    for title, names in COMMAND_GROUPS:
        lines = [f"{title[0].upper()}{title[1:]}:"]
        for name in names:
            wrapped = textwrap.wrap(summaries[name], width - name_width) or [""]
            lines.append(f"  {name:<{name_width - 2}}{wrapped[0]}")
            lines += [" " * name_width + more for more in wrapped[1:]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def build_parser() -> argparse.ArgumentParser:
    from kdsd import __version__

    parser = argparse.ArgumentParser(
        prog="kdsd", usage="kdsd [-h] [--version] COMMAND ...", formatter_class=HelpFormatter,
        epilog="Run `kdsd COMMAND -h` for a command's options and an example.\n\nexamples:\n"
               "  kdsd enhance --model results/models/teacher/model.pt noisy.wav estimate.wav\n"
               f"  kdsd export {CAUSAL_STUDENT}/model.pt --out model.onnx\n"
               "  kdsd enhance --stream --onnx model.stream.onnx noisy.wav estimate.wav")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help=argparse.SUPPRESS,
                                prog="kdsd")
    summaries = {}

    def add(name, func, help_):
        summaries[name] = help_
        p = sub.add_parser(name, help=help_, description=f"{help_[0].upper()}{help_[1:]}.\n\n"
                           f"{command_details(name)}", formatter_class=HelpFormatter,
                           epilog="example" + "s" * (len(EXAMPLES[name]) > 1) + ":\n"
                           + "\n".join(f"  {line}" for line in EXAMPLES[name]))
        p.set_defaults(func=func)
        if name not in NO_THREADS:
            p.add_argument("--threads", type=int, default=1, help="CPU threads / worker processes")
        return p

    p = add("build-corpus", cmd_build_corpus, "build one split of the configured corpus source")
    p.add_argument("--config-json", required=True, help="the resolved `corpus` config section")
    p.add_argument("--split", required=True)
    p.add_argument("--out", required=True, help="split folder (manifest.csv and audio go here)")

    p = add("fetch-recorded", cmd_fetch_recorded,
            "fetch, verify and convert one recorded collection into corpus.recorded.cache_dir (once)")
    p.add_argument("--config-json", required=True, help="the resolved `corpus` config section")
    p.add_argument("--collection", required=True, help="a name of kdsd.corpus.recorded_collections.COLLECTIONS")

    p = add("bench-synthesis", cmd_bench_synthesis,
            "print audio seconds synthesized per wall second per worker count")
    p.add_argument("--config-json", default="{}", help="corpus section (defaults: config schema)")
    p.add_argument("--split", default="train")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--utterances", type=int, default=24, help="utterances per measurement")

    p = add("train-teacher", cmd_train_teacher, "train the teacher")
    p.add_argument("--config-json", required=True)
    p.add_argument("--out", required=True, help="model folder")
    p = add("distill", cmd_distill, "distill students side by side (each with its seed and teacher)")
    p.add_argument("--students-json", required=True,
                   help='[{"scenario", "method", "name": model id, "out": model folder, "cost": cost '
                        'JSON, "teacher": its teacher model.pt, "job": {"config": the job config, '
                        '"seed": its seed, ...}}, ...]: the students to train together')
    for p in (sub.choices["train-teacher"], p):
        p.add_argument("--train", required=True, help="train manifest.csv")
        p.add_argument("--valid", required=True, help="valid manifest.csv (checkpoint choice)")

    p = add("score-input", cmd_score_input, "score the noisy input of test sets")
    add_test_set_paths(p, input_scores=False)

    p = add("score", cmd_score, "enhance test sets with a model and score them per utterance")
    p.add_argument("--model", required=True)
    p.add_argument("--name", required=True, help="model id written in the table")
    add_test_set_paths(p)

    p = add("score-group", cmd_score_group, "score a group of models in one process (each test set "
            "read once, each utterance's clean side shared); the same tables as scoring each alone")
    p.add_argument("--models-json", required=True,
                   help='[{"model": model.pt, "name": model id, "out": [one score CSV per --manifest], '
                        '"tier": a --metric-tier or one per --manifest (default all), "job": what to '
                        'record in job.json beside the tables once written (optional)}, ...]')
    add_test_set_paths(p, per_model=True)

    p = add("score-reference", cmd_score_reference, "score an external reference denoiser on test sets")
    p.add_argument("--name", required=True, help="rnnoise, deepfilternet3 or spectral_gating")
    add_test_set_paths(p)

    p = add("cost", cmd_cost, "parameters, MACs per second and 1-thread real-time factor of a model")
    p.add_argument("--model", help="a kdsd model.pt")
    p.add_argument("--name", help="model id written in the record")
    p.add_argument("--reference", help="instead of --model: an external reference denoiser's name")
    p.add_argument("--out", required=True, help="JSON file")
    p.add_argument("--onnx-out", help="with --model: keep its ONNX export here (model.onnx; a "
                   "causal model's streaming graph goes beside it as model.stream.onnx)")
    p.add_argument("--scenario-timing", metavar="SCENARIO",
                   help="with --model and --onnx: only the RTFs, as the timing of this scenario")
    p.add_argument("--onnx", help="the ONNX export of --model (with --scenario-timing)")

    p = add("bench-scoring", cmd_bench_scoring, "print CPU seconds per student of a scoring job "
            "(`kdsd score-group`, one thread) per metric tier, grouped and alone")
    p.add_argument("--manifest", nargs="+", required=True, help="test-set manifest.csv files")
    p.add_argument("--models", nargs="+", help="trained students' model.pt files, scored as one group "
                   "(default: random-weight students of each scenario of --preset)")
    p.add_argument("--preset", default="default", help="default (config.yaml), a workflow/presets "
                   "name, or a YAML path: one seed of its students, every run scenario × method")
    p.add_argument("--grouping", choices=GROUPINGS, help="how the random-weight students are grouped, "
                   "as students.train_together (default: the preset's)")
    p.add_argument("--tiers", nargs="+", choices=list(METRIC_TIERS), default=["primary", "core"],
                   help="metric tiers measured (primary: SI-SDR only; core: + PESQ-WB, STOI, ESTOI)")
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    p.add_argument("--limit", type=int, help="utterances per test set (default: all)")

    p = add("bench-deploy", cmd_bench_deploy, "one-thread RTF (PyTorch, onnxruntime), latency and "
            "per-hop streaming time of trained students, against the deployment targets")
    p.add_argument("model_dirs", nargs="+", help="student folders holding model.pt and model.onnx")
    p.add_argument("--audio", help="a 16 kHz file to time on (default: seeded noise; timings do not "
                   "depend on the content)")
    p.add_argument("--seconds", type=float, default=20.0, help="audio length timed")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per RTF (median)")

    p = add("examples", cmd_examples, "audio examples and spectrograms of one test set")
    p.add_argument("--manifest", required=True)
    p.add_argument("--scores", nargs="+", required=True, help="score CSVs of this test set")
    p.add_argument("--model-dir", required=True, help="results/models")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--count", type=int, default=3, help="utterances to show")
    p.add_argument("--references", nargs="*", default=[], help="reference denoisers to include")

    p = add("corpus-report", cmd_corpus_report, "corpus tables, SNR/family plots, spectrograms, audio")
    p.add_argument("--splits", nargs="+", required=True, help="split names, in the order of --manifests")
    p.add_argument("--manifests", nargs="+", required=True)
    p.add_argument("--out-dir", required=True, help="results folder (tables/, plots/, examples/corpus/)")

    p = add("report", cmd_report, "tables, plots and summary from all score tables")
    p.add_argument("--scores", nargs="+", required=True)
    p.add_argument("--histories", nargs="+", required=True, help="history.csv of each model")
    p.add_argument("--costs", nargs="+", required=True, help="cost JSON of each model")
    p.add_argument("--out-dir", required=True, help="results folder (tables/, plots/, summary.md)")
    p.add_argument("--provenance-json", default="{}")

    p = add("ablations", cmd_ablations, "table of named KD variants against their base method")
    p.add_argument("--scores", nargs="+", required=True, help="student score CSVs")
    p.add_argument("--models", nargs="+", required=True, help="student model.pt files")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)

    p = add("kd-weights", cmd_kd_weights, "KD-weight sweep table from the students' valid SI-SDR")
    p.add_argument("--models", nargs="+", required=True, help="student model.pt files")
    p.add_argument("--out", required=True, help="kd_weights.csv")

    p = add("runtime", cmd_runtime, "wall and CPU seconds per rule family from benchmark files")
    p.add_argument("--benchmarks", required=True, help="results/benchmarks")
    p.add_argument("--out", required=True, help="runtime.csv")

    p = add("power", cmd_power, "power of the primary tests per seed count, and the trend tests simulated")
    p.add_argument("--sd", type=float, nargs="+", default=[0.09, 0.24],
                   help="seed SDs of the level difference, dB (default: against none and sp2step on the "
                        "default run, docs/statistics.md#power)")
    p.add_argument("--seeds", type=int, nargs="+", default=[3, 6, 8, 10, 12], help="seed counts to tabulate")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise α")
    p.add_argument("--family-size", type=int, default=4, help="tests in the Holm family")
    p.add_argument("--power", type=float, default=0.8, help="power the MDE is computed for")
    p.add_argument("--target", type=float, default=0.3, help="effect of interest, dB")
    p.add_argument("--measured-on", type=int, default=6,
                   help="seeds the SDs were measured on: the seeds-needed range uses the SD's 80 %% interval")
    p.add_argument("--trend-studies", type=int, default=0,
                   help="simulate each trend test on this many studies per setting (0: skip)")

    p = add("bench", cmd_bench, "training loop vs its ceiling, inference and RTF of teacher and smallest student")
    p.set_defaults(threads=os.cpu_count() or 1)  # a benchmark of the whole machine
    p.add_argument("--preset", default="default", help="default (config.yaml), a workflow/presets name, or a YAML path")
    p.add_argument("--method", default="cosine", help="KD method of the student's loop")
    p.add_argument("--steps", type=int, default=3, help="timed steps per measurement (median; after two warm-ups)")
    p.add_argument("--profile", action="store_true", help="also where one seed's group step spends its "
                   "time (torch.profiler): by stage and by operator family")

    p = add("enhance", cmd_enhance, "denoise an audio file, or a folder of them, with a trained model")
    models = p.add_argument_group("the model (one of the two is required)").add_mutually_exclusive_group(
        required=True)
    models.add_argument("--model", metavar="FILE", help="a model.pt written by kdsd (PyTorch)")
    models.add_argument("--onnx", metavar="FILE", help="an ONNX export under onnxruntime: model.onnx "
                        "(offline), or with --stream a causal model's model.stream.onnx")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="with --model: where "
                   "PyTorch runs (default: cpu)")
    p.add_argument("--stream", action="store_true", help="causal models: process hop by hop with "
                   "the convolution state carried (as a live input would be) and print per-hop "
                   "compute time; the output equals the offline causal estimate")
    channels = p.add_mutually_exclusive_group()
    channels.add_argument("--channel", type=int, metavar="N", help="enhance channel N (1 = first) "
                          "of multi-channel input (refused otherwise)")
    channels.add_argument("--mix", action="store_true", help="average the channels of multi-channel input")
    p.add_argument("--keep-rate", action="store_true",
                   help="write at the input's sample rate (default: 16 kHz, the model's rate)")
    p.add_argument("--chunk-s", type=float, help="seconds per network pass (default 10): memory, "
                   "not the result, depends on it")
    p.add_argument("input", help="noisy audio file (any libsndfile format and rate), or a folder")
    p.add_argument("output", help="output file (format from its suffix; WAV is 32-bit float), or "
                   "a folder (created; relative paths and names kept)")

    p = add("export", cmd_export, "export a trained model to ONNX (and a causal one's streaming graph)")
    p.add_argument("model", metavar="MODEL.pt", help="a model.pt written by kdsd")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="the offline graph; a causal "
                   "model's streaming graph goes beside it as FILE.stream.onnx")

    p = add("readme-results", cmd_readme_results, "the README's results block from a run's tables")
    p.add_argument("results", metavar="RESULTS", help="a finished run's results folder (or a snapshot)")
    p.add_argument("--test-set", default="test_matched", help="the test set of the ΔSI-SDR table "
                   "(default: test_matched)")
    p.add_argument("--snapshot", metavar="DIR", help="first copy the files the block reads into DIR "
                   "(e.g. docs/results/default) and quote the copy")
    p.add_argument("--note", help="with --snapshot: the machine, command and wall time of the run")
    p.add_argument("--readme", metavar="FILE", help="rewrite the block in FILE (between its "
                   "readme-results markers) instead of printing it")

    p = add("cli-docs", cmd_cli_docs, "write the command-line reference (docs/cli.md) from this parser")
    p.add_argument("--out", metavar="FILE", help="the Markdown file (default: print it)")

    parser.description = ("kdsd: knowledge distillation for speech denoising, benchmarked. `make reproduce` "
                          "runs the whole study (the pipeline steps below) and leaves the trained models "
                          "under results/models/; the commands for users run on them.\n\n"
                          + command_listing(summaries))
    for command in sub.choices.values():
        mark_required(command)
    return parser


def limit_blas_threads(threads: int) -> None:
    """Numpy's and scipy's OpenBLAS start a thread per core unless told otherwise, and idle ones
    spin: in a job that claims one core beside others' jobs (scoring: STOI's matrix products) that
    costs CPU time, and on a busy 2-core machine one 15 x 257 x 200 product took 15 ms instead of
    0.05. Read when the library loads, so only set here while numpy is not imported yet (the
    command line; not a caller's process); an explicit setting in the environment wins."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", str(max(1, threads)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limit_blas_threads(getattr(args, "threads", 1))  # export and the docs commands take none
    try:
        args.func(args)
    except KdsdError as exc:
        print(f"kdsd: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
