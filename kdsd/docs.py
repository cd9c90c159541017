"""The generated parts of the documentation, so that their numbers and options cannot drift:

- the README's results block (``kdsd readme-results RESULTS_DIR``): the teacher's and students'
  ΔSI-SDR per scenario × method and the pre-registered primary verdicts, written from a run's
  ``tables/summary.csv``, ``tables/primary.csv`` and ``tables/claim.csv``, with its figure;
- a snapshot of those files (``--snapshot docs/results/<run>``), which the README quotes and
  ``tests/test_docs.py`` checks it against;
- ``docs/cli.md``, every subcommand's ``-h`` text (``kdsd cli-docs``).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd

from kdsd.analysis.summary import primary_sentence
from kdsd.atomic import write_csv, write_text
from kdsd.errors import KdsdError

RESULTS_BEGIN = "<!-- readme-results: begin (written by `kdsd readme-results`; do not edit) -->"
RESULTS_END = "<!-- readme-results: end -->"
SUMMARY_CSV, PRIMARY_CSV, CLAIM_CSV = "tables/summary.csv", "tables/primary.csv", "tables/claim.csv"
TRANSFER_CSV = "tables/transfer.csv"  # the transfer question on recorded speech, where the run has one
FIGURE = "plots/claim.png"
FIGURE_ALT = "Retained fraction of the teacher's ΔSI-SDR against compression, per method"
RUN_RECORD = "run.json"
# summary.csv is wide (every metric); the snapshot keeps the columns the results block reads
SNAPSHOT_SUMMARY_COLUMNS = ["kind", "method", "scenario", "test_set", "n_seeds", "params", "compression",
                            "si_sdr_i_mean", "si_sdr_i_std", "si_sdr_i_ci95", "si_sdr_i_n_seeds"]
HELP_COLUMNS = "100"  # docs/cli.md is formatted at this terminal width, whatever the terminal


def read_table(results_dir: Path, name: str) -> pd.DataFrame:
    """A run's table, read verbatim (the method `none` is a name, not a missing value)."""
    path = results_dir / name
    if not path.is_file():
        raise KdsdError(f"{path}: no such table; point at a finished run's results folder "
                        "(its report step writes tables/)")
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def run_record(results_dir: Path) -> dict:
    """The snapshot's record of its run (date, commit, note), or {} for a live results folder."""
    path = results_dir / RUN_RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


def _gain(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:+.2f}" + ("" if pd.isna(std) else f" ± {std:.2f}")


def _compression(row: pd.Series) -> str:
    ratio = row.get("compression")
    return f"{int(row['params']):,}" + ("" if pd.isna(ratio) else f" ({ratio:.0f}×)")


def gain_table(summary: pd.DataFrame, test_set: str) -> str:
    """Teacher line and one row per scenario (least compressed first), one column per method."""
    rows = summary[summary["test_set"] == test_set]
    if rows.empty:
        known = ", ".join(dict.fromkeys(summary["test_set"]))
        raise KdsdError(f"--test-set {test_set}: not in this run's summary.csv (it has {known})")
    teacher = rows[rows["kind"] == "teacher"]
    students = rows[rows["kind"] == "student"]
    methods = list(dict.fromkeys(students["method"]))  # summary.csv's order: baselines first
    scenarios = students.drop_duplicates("scenario").sort_values("params", ascending=False, kind="stable")
    seeds = sorted(set(students["n_seeds"].astype(int)))
    seed_text = "/".join(map(str, seeds)) + (" seed" if seeds == [1] else " seeds")
    lines = [f"ΔSI-SDR on `{test_set}`, dB, mean ± SD over {seed_text}"
             + (f"; {_teacher_words(teacher.iloc[0])} **{teacher['si_sdr_i_mean'].iloc[0]:+.2f} dB**:"
                if len(teacher) else ":"),
             "",
             "| student | parameters (compression) | " + " | ".join(f"`{m}`" for m in methods) + " |",
             "|---|---:|" + "---:|" * len(methods)]
    for _, first in scenarios.iterrows():
        cells = students[students["scenario"] == first["scenario"]].set_index("method")
        gains = [_gain(cells.at[m, "si_sdr_i_mean"], cells.at[m, "si_sdr_i_std"]) if m in cells.index else "–"
                 for m in methods]
        lines.append(f"| {first['scenario']} | {_compression(first)} | " + " | ".join(gains) + " |")
    return "\n".join(lines)


def _teacher_words(teacher: pd.Series) -> str:
    """One teacher run, or (``teacher.per_seed``) a teacher per student seed, whose mean gain is quoted."""
    runs = int(teacher["n_seeds"]) if pd.notna(teacher.get("n_seeds")) else 1
    params = f"{int(teacher['params']):,} parameters"
    return (f"the teacher ({params}, one run) gains" if runs == 1
            else f"the teachers ({params}, one run per seed) gain on average")


def verdict_lines(primary: pd.DataFrame, claim: pd.DataFrame) -> str:
    """The four primary tests and the claim, in summary.md's own words."""
    from kdsd.analysis.summary import claim_words

    lines = [f"- {primary_sentence(row)}." for _, row in primary.iterrows()]
    claims = "; ".join(f"against `{r['baseline']}` {claim_words(r)}" for _, r in claim.iterrows())
    return "\n".join(lines + [f"- The claim (a lead that grows with compression): {claims or 'not testable'}."])


def pairing_line(primary: pd.DataFrame) -> str:
    """How well the seeds pair per baseline (the level rows' correlation of seed-level gains and the
    seed SD of the difference), or "" for a run whose primary.csv has no pairing figures."""
    if "gain_correlation" not in primary.columns:
        return ""
    level = primary[(primary["test"] == "level") & primary["gain_correlation"].notna()]
    parts = [f"r = {row['gain_correlation']:+.2f} with `{row['baseline']}` (seed SD of the difference "
             f"{row['sd_seed']:.2f} dB)" for _, row in level.iterrows()]
    return "- Pairing: the seeds' level gains correlate " + ", ".join(parts) + "." if parts else ""


def results_markdown(results_dir: str | os.PathLike, test_set: str = "test_matched") -> str:
    """The README's results block, from a run's tables (paths in it relative to the repository)."""
    root = Path(results_dir)
    record = run_record(root)
    where = root.as_posix().rstrip("/")
    run = (f"From the {root.name} run of {record['date']} ([{where}/]({where}/README.md) names its commit, "
           f"machine and command; a run's `summary.md` has every table)." if record
           else f"From the run in `{where}/`.")
    figure = root / FIGURE
    summary, primary = read_table(root, SUMMARY_CSV), read_table(root, PRIMARY_CSV)  # the missing one named first
    parts = [RESULTS_BEGIN,
             run,
             "",
             gain_table(summary, test_set),
             "",
             "The pre-registered primary tests (seed as the unit, Holm over the four; "
             "[docs/statistics.md](docs/statistics.md)):",
             "",
             verdict_lines(primary, read_table(root, CLAIM_CSV))]
    if pairing := pairing_line(primary):
        parts.append(pairing)
    transfer = read_table(root, TRANSFER_CSV) if (root / TRANSFER_CSV).is_file() else pd.DataFrame()
    if not transfer.empty:
        sets = ", ".join(f"`{t}`" for t in dict.fromkeys(" ".join(transfer["test_sets"].astype(str)).split()))
        parts += ["", f"The pre-registered transfer question: does the level verdict hold on recorded speech "
                      f"({sets} alone; Holm over its own tests)?", "",
                  "\n".join(f"- {primary_sentence(row)}." for _, row in transfer.iterrows())]
    if figure.is_file():
        parts += ["", f"![{FIGURE_ALT}]({where}/{FIGURE})"]
    return "\n".join(parts + [RESULTS_END]) + "\n"


def replace_block(text: str, block: str, path: str | os.PathLike) -> str:
    """``text`` with the part between the results markers (markers included) replaced by ``block``."""
    start, end = text.find(RESULTS_BEGIN), text.find(RESULTS_END)
    if start < 0 or end < start:
        raise KdsdError(f"{path}: no results block (the lines {RESULTS_BEGIN!r} … {RESULTS_END!r})")
    return text[:start] + block.rstrip("\n") + text[end + len(RESULTS_END):]


def readme_block(readme: str | os.PathLike) -> str:
    """The results block as it stands in ``readme`` (for the test that it matches the command)."""
    text = Path(readme).read_text()
    start, end = text.find(RESULTS_BEGIN), text.find(RESULTS_END)
    if start < 0 or end < start:
        raise KdsdError(f"{readme}: no results block")
    return text[start:end + len(RESULTS_END)] + "\n"


def provenance_commit(results_dir: Path) -> str:
    """The run's git commit, as its summary.md's provenance records it."""
    summary = results_dir / "summary.md"
    found = re.search(r"^- git_commit: (\S+)$", summary.read_text(), re.M) if summary.is_file() else None
    if not found:
        raise KdsdError(f"{summary}: no '- git_commit:' provenance line; snapshot a finished run's folder")
    return found.group(1)


def write_snapshot(results_dir: str | os.PathLike, snapshot_dir: str | os.PathLike, note: str) -> Path:
    """Copy the few files the results block reads into ``snapshot_dir`` (summary.csv trimmed to
    the columns it reads), with ``run.json`` and a README naming the run."""
    source, target = Path(results_dir), Path(snapshot_dir)
    if not note.strip():
        raise KdsdError("--note: say which machine and command made the run (and its wall time)")
    summary = read_table(source, SUMMARY_CSV)
    write_csv(summary[[c for c in SNAPSHOT_SUMMARY_COLUMNS if c in summary.columns]], target / SUMMARY_CSV)
    for name in (PRIMARY_CSV, CLAIM_CSV, TRANSFER_CSV):
        if name != TRANSFER_CSV or (source / name).is_file():
            write_csv(read_table(source, name), target / name)
    if (source / FIGURE).is_file():
        (target / FIGURE).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / FIGURE, target / FIGURE)
    finished = dt.datetime.fromtimestamp((source / SUMMARY_CSV).stat().st_mtime, dt.timezone.utc)
    record = {"date": finished.date().isoformat(), "commit": provenance_commit(source), "note": note.strip()}
    write_text(target / RUN_RECORD, json.dumps(record, indent=2) + "\n")
    write_text(target / "README.md", snapshot_readme(record, target))
    return target


def snapshot_readme(record: dict, snapshot_dir: Path) -> str:
    return (f"# The run the README quotes\n\n"
            f"- Finished: {record['date']} (UTC; the report step's time)\n"
            f"- Commit: {record['commit']}\n"
            f"- Machine and command: {record['note']}\n\n"
            f"Files: `{SUMMARY_CSV}` (the columns the README's table reads), `{PRIMARY_CSV}`, "
            f"`{CLAIM_CSV}`, `{TRANSFER_CSV}` (if the run has it), `{FIGURE}`, copied from the run's `results/` by "
            f"`kdsd readme-results results --snapshot {snapshot_dir.as_posix()} --note ...` (with "
            f"`--readme README.md` it also rewrites the README's results block from them; "
            f"`make readme-results` does both for docs/results/default).\n")


@contextlib.contextmanager
def _help_width(columns: str):
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = columns  # argparse sizes help text to the terminal it finds
    try:
        yield
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def cli_markdown() -> str:
    """docs/cli.md: `kdsd -h`, then every command's ``-h`` in the order of the command groups."""
    from kdsd.cli import COMMAND_GROUPS, build_parser

    with _help_width(HELP_COLUMNS):
        parser = build_parser()
        commands = parser._subparsers._group_actions[0].choices  # argparse keeps them nowhere public
        sections = ["# Command-line reference",
                    "Written from the parser by `make cli-docs` (`kdsd cli-docs --out docs/cli.md`); "
                    "`tests/test_docs.py` fails when it differs. `kdsd COMMAND -h` prints the same.",
                    f"```text\n{parser.format_help().rstrip()}\n```"]
        for title, names in COMMAND_GROUPS:
            sections.append(f"## {title[0].upper()}{title[1:]}")
            sections += [f"### kdsd {name}\n\n```text\n{commands[name].format_help().rstrip()}\n```"
                         for name in names]
    return "\n\n".join(sections) + "\n"
