"""The documentation cannot drift: the README's results block equals `kdsd readme-results` on the
committed snapshot, docs/cli.md equals the parser's help, every cross-reference resolves, the
README stays short and names no commit, and every command explains itself."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from kdsd.docs import (RESULTS_BEGIN, RESULTS_END, cli_markdown, readme_block, replace_block,
                       results_markdown, write_snapshot)
from kdsd.errors import KdsdError

SNAPSHOT = "docs/results/default"
MARKDOWN_FILES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").rglob("*.md"))]
# Files whose comments and strings may name a docs page: code, config, rules, captions, tests.
REFERRING_GLOBS = ("kdsd/**/*.py", "tests/*.py", "examples/*.py", "tools/*.py", "workflow/**/*.yaml",
                   "workflow/**/*.smk", "workflow/**/*.rst", "workflow/**/*.sh", "profiles/**/*.yaml",
                   "config.yaml", "Snakefile", "Makefile", ".ci/run")


# --- the README's results block ---------------------------------------------------------------

def snapshot_or_skip() -> Path:
    """The snapshot of the run the README quotes; until a run is snapshotted the README's block
    quotes docs/measurements.md by hand, and these two tests say so instead of passing."""
    if not (REPO / SNAPSHOT / "run.json").is_file():
        pytest.skip(f"no run snapshotted in {SNAPSHOT} yet: after `make reproduce`, `make readme-results "
                    "NOTE='machine, command, wall time'` writes it and the README's results block")
    return REPO / SNAPSHOT


def test_readme_results_block_equals_the_command_on_the_snapshot(monkeypatch):
    snapshot_or_skip()
    monkeypatch.chdir(REPO)  # the block's links are relative to the repository
    assert readme_block(REPO / "README.md") == results_markdown(SNAPSHOT)


def test_readme_has_a_results_block_the_command_can_rewrite():
    block = readme_block(REPO / "README.md")
    text = (REPO / "README.md").read_text()
    assert replace_block(text, block, "README.md") == text
    assert "Holm" in block and "ΔSI-SDR" in block  # the verdicts and the gains


def test_snapshot_names_its_run():
    record = json.loads((snapshot_or_skip() / "run.json").read_text())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["date"])
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", record["commit"]) and record["note"]
    page = (REPO / SNAPSHOT / "README.md").read_text()
    assert record["date"] in page and record["commit"] in page and record["note"] in page


def _known_run(root: Path) -> Path:
    """A finished run's tables, small enough to know every number of the block."""
    tables = root / "tables"
    tables.mkdir(parents=True)
    rows = [("input", "input", "input", 1, None, None, 0.0, None),
            ("teacher", "teacher", "teacher", 1, 64_000, 1.0, 7.6789, None),
            ("student", "none", "w_1_2", 6, 16_000, 4.0, 6.0, 0.1234),
            ("student", "cosine", "w_1_2", 6, 16_000, 4.0, 6.5, 0.05),
            ("student", "none", "w_1_8", 6, 1_000, 64.0, 4.0, 0.4),
            ("student", "cosine", "w_1_8", 5, 1_000, 64.0, 5.25, 0.3)]
    summary = pd.DataFrame(rows, columns=["kind", "method", "scenario", "n_seeds", "params", "compression",
                                          "si_sdr_i_mean", "si_sdr_i_std"])
    other = summary.assign(test_set="test_noise", si_sdr_i_mean=summary["si_sdr_i_mean"] - 1)
    pd.concat([summary.assign(test_set="test_matched"), other]).assign(pesq_wb_mean=3.0).to_csv(
        tables / "summary.csv", index=False)
    primary = {"baseline": ["none", "none"], "test": ["level", "trend"], "unit": ["dB", "fraction per doubling"],
               "n_seeds": [6, 6], "estimate": [0.17, 0.001], "sd_seed": [0.09, 0.01], "p": [0.005, 0.8],
               "p_signflip": [0.03125, 0.8], "p_signflip_floor": [0.03125, 0.03125], "p_holm": [0.019, 0.8],
               "decision_level": [0.9875, 0.9833333], "decision_low": [0.04, -0.0081],
               "decision_high": [0.30, 0.0074], "tost_level": [0.975, 0.975], "tost_low": [0.06, -0.0070],
               "tost_high": [0.28, 0.0065], "p_tost": [0.2, 0.001], "verdict": ["better", "equivalent"],
               "status": ["ok", "ok"], "margin": [0.2, 0.008], "per_seed": ["+0.1 +0.2 +0.1 +0.2 +0.2 +0.2"] * 2,
               "gain_correlation": [0.934, None]}
    pd.DataFrame(primary).to_csv(tables / "primary.csv", index=False)
    pd.DataFrame({"baseline": ["none"], "trend_verdict": ["equivalent"], "most_compressed": ["w_1_8"],
                  "lead_db": [1.25], "lead_n_seeds": [5], "lead_level": [0.975], "lead_low": [0.5],
                  "lead_high": [2.0], "trend_margin": [0.008],
                  "claim": ["trend within the margin"]}).to_csv(tables / "claim.csv", index=False)
    (root / "summary.md").write_text("## Provenance\n\n- python: 3.11\n- git_commit: " + "ab12" * 10 + "\n")
    return root


def test_results_block_on_known_tables(tmp_path):
    block = results_markdown(_known_run(tmp_path / "run"))
    assert block.startswith(RESULTS_BEGIN + "\n") and block.endswith(RESULTS_END + "\n")
    lines = block.splitlines()
    assert ("ΔSI-SDR on `test_matched`, dB, mean ± SD over 5/6 seeds; the teacher (64,000 parameters, one "
            "run) gains **+7.68 dB**:") in lines
    assert "| student | parameters (compression) | `none` | `cosine` |" in lines
    assert "| w_1_2 | 16,000 (4×) | +6.00 ± 0.12 | +6.50 ± 0.05 |" in lines  # least compressed first
    assert "| w_1_8 | 1,000 (64×) | +4.00 ± 0.40 | +5.25 ± 0.30 |" in lines
    assert ("- level against `none`: **cosine better**, +0.17 dB, 98.75 % decision interval [+0.04, +0.30] dB, "
            "Holm p = 0.019; t-test p = 0.005, exact sign-flip p = 0.031, which with 6 seeds cannot go below "
            "0.031, above this test's Holm level 0.0125.") in lines
    assert any(line.startswith("- trend against `none`: **within ±0.80 pp per doubling**: the whole 97.5 % "
                               "TOST interval [-0.70, +0.65] pp per doubling lies inside the margin")
               for line in lines)
    assert ("- The claim (a lead that grows with compression): against `none` not supported: the trend lies "
            "within ±0.80 pp per doubling.") in lines
    assert "- Pairing: the seeds' level gains correlate r = +0.93 with `none` (seed SD of the difference 0.09 dB)." \
        in lines
    assert "![" not in block  # no figure in this run
    assert "transfer question" not in block  # this run has none
    level = pd.read_csv(tmp_path / "run" / "tables" / "primary.csv").iloc[:1].assign(test_sets="test_recorded")
    level.to_csv(tmp_path / "run" / "tables" / "transfer.csv", index=False)
    transfer = results_markdown(tmp_path / "run").splitlines()
    assert ("The pre-registered transfer question: does the level verdict hold on recorded speech "
            "(`test_recorded` alone; Holm over its own tests)?") in transfer
    assert transfer[-2] == lines[lines.index("- level against `none`: **cosine better**, +0.17 dB, 98.75 % decision "
                                             "interval [+0.04, +0.30] dB, Holm p = 0.019; t-test p = 0.005, exact "
                                             "sign-flip p = 0.031, which with 6 seeds cannot go below 0.031, above "
                                             "this test's Holm level 0.0125.")]
    (tmp_path / "run" / "tables" / "transfer.csv").unlink()
    other = results_markdown(tmp_path / "run", test_set="test_noise")
    assert "| w_1_8 | 1,000 (64×) | +3.00 ± 0.40 | +4.25 ± 0.30 |" in other.splitlines()
    with pytest.raises(KdsdError, match="--test-set test_speaker: not in this run's summary.csv "
                                        "\\(it has test_matched, test_noise\\)"):
        results_markdown(tmp_path / "run", test_set="test_speaker")
    with pytest.raises(KdsdError, match="nowhere/tables/summary.csv: no such table"):
        results_markdown(tmp_path / "nowhere")


def test_block_of_a_per_seed_teacher_run_says_teachers_and_names_its_snapshot(tmp_path, monkeypatch):
    run = _known_run(tmp_path / "results")
    summary = pd.read_csv(run / "tables" / "summary.csv")
    summary.loc[summary["kind"] == "teacher", "n_seeds"] = 6  # teacher.per_seed: a teacher per student seed
    summary.to_csv(run / "tables" / "summary.csv", index=False)
    monkeypatch.chdir(tmp_path)
    write_snapshot("results", "docs/results/teachers", "2 cores, the teachers preset, 150 min")
    block = results_markdown("docs/results/teachers").splitlines()
    assert block[1].startswith("From the teachers run of 20")
    assert ("ΔSI-SDR on `test_matched`, dB, mean ± SD over 5/6 seeds; the teachers (64,000 parameters, one "
            "run per seed) gain on average **+7.68 dB**:") in block
    page = Path("docs/results/teachers/README.md").read_text()
    assert "--snapshot docs/results/teachers" in page and "--snapshot docs/results/default" not in page


def test_snapshot_copies_what_the_block_reads_and_the_block_quotes_it(tmp_path, monkeypatch):
    run = _known_run(tmp_path / "results")
    (run / "plots").mkdir()
    (run / "plots" / "claim.png").write_bytes(b"png")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KdsdError, match="--note: say which machine"):
        write_snapshot("results", "docs/results/default", " ")
    write_snapshot("results", "docs/results/default", "2 cores, make reproduce, 63 min")
    snapshot = Path("docs/results/default")
    assert list(pd.read_csv(snapshot / "tables" / "summary.csv").columns) == [
        "kind", "method", "scenario", "test_set", "n_seeds", "params", "compression", "si_sdr_i_mean",
        "si_sdr_i_std"]  # pesq_wb_mean left behind: the block does not read it
    assert (snapshot / "plots" / "claim.png").read_bytes() == b"png"
    assert json.loads((snapshot / "run.json").read_text())["commit"] == "ab12" * 10
    block = results_markdown("docs/results/default")
    assert "From the default run of 20" in block and "(docs/results/default/README.md)" in block
    assert block.rstrip().endswith("(docs/results/default/plots/claim.png)\n" + RESULTS_END)
    table = [line for line in block.splitlines() if line.startswith("|")]
    assert table == [line for line in results_markdown("results").splitlines() if line.startswith("|")]
    readme = f"# x\n\n{RESULTS_BEGIN}\nold\n{RESULTS_END}\n\n## next\n"
    assert replace_block(readme, block, "README.md") == f"# x\n\n{block}\n## next\n"
    with pytest.raises(KdsdError, match="README.md: no results block"):
        replace_block("# x\n", block, "README.md")


# --- the README itself -------------------------------------------------------------------------

def test_readme_is_short_and_names_no_commit():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    # a commit hash: 7 to 40 hex digits with a letter and a digit (plain numbers and words pass)
    hashes = [w for w in re.findall(r"\b[0-9a-f]{7,40}\b", text)
              if re.search(r"[a-f]", w) and re.search(r"[0-9]", w)]
    assert hashes == []


def test_readme_keeps_the_two_set_up_commands():
    text = (REPO / "README.md").read_text()
    setup = text.split("## Set-up", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in setup.splitlines() if line.startswith("make")] == [
        ["make", "reproduce"], ["make", "test"]]


# --- cross-references ----------------------------------------------------------------------------

def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: its text, lower case, punctuation dropped, spaces as '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def prose_lines(path: Path) -> list[str]:
    """A Markdown file's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    for line in prose_lines(path):
        if re.match(r"#{1,6} ", line):
            slug = github_anchor(line.lstrip("#"))
            seen[slug] = seen.get(slug, -1) + 1  # GitHub numbers repeated headings: x, x-1, x-2
    return {slug if n == 0 else f"{slug}-{n}" for slug, count in seen.items() for n in range(count + 1)}


def headings(path: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in prose_lines(path) if re.match(r"#{1,6} ", line)]


def test_github_anchor_follows_githubs_rules():
    assert github_anchor(" The default experiment (`config.yaml`)") == "the-default-experiment-configyaml"
    assert github_anchor("2026-12-02: default run, 63 min 41 s (ea6b2b9)") == "2026-12-02-default-run-63-min-41-s-ea6b2b9"
    assert github_anchor("Statistics: what a verdict means") == "statistics-what-a-verdict-means"
    assert github_anchor("kd_weights — ΔSI-SDR") == "kd_weights--δsi-sdr"


def broken_target(source: Path, target: str) -> str | None:
    """Why ``target`` (a relative link, optionally with #anchor) does not resolve, or None."""
    path_part, _, anchor = target.partition("#")
    path = (source.parent / path_part).resolve() if path_part else source
    if not path.exists():
        return f"{path_part}: no such file"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"#{anchor}: no such heading in {path.relative_to(REPO)}"
    return None


def markdown_links(path: Path) -> list[str]:
    text = "\n".join(re.sub(r"`[^`]*`", "", line) for line in prose_lines(path))  # code spans are not links
    return [t.split()[0] for t in re.findall(r"!?\[[^\]]*\]\(([^)\s]+(?: \"[^\"]*\")?)\)", text)
            if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(path):
    problems = [f"{target}: {why}" for target in markdown_links(path)
                if (why := broken_target(path, target))]
    assert problems == []


def referring_files() -> list[Path]:
    files = {p for pattern in REFERRING_GLOBS for p in REPO.glob(pattern) if p.is_file()}
    return sorted(files - {Path(__file__).resolve()})


def test_docs_references_in_code_and_config_resolve():
    problems = []
    for path in referring_files():
        text = path.read_text()
        for target in re.findall(r"\bdocs/[\w./-]+\.md(?:#[\w-]+)?", text):
            if why := broken_target(REPO / "README.md", target):  # repository-relative
                problems.append(f"{path.relative_to(REPO)}: {target}: {why}")
        for section in re.findall(r'README "([^"]+)"', text):
            if not any(h.startswith(section) for h in headings(REPO / "README.md")):
                problems.append(f'{path.relative_to(REPO)}: README "{section}": no such heading')
    assert problems == []
    assert any("docs/statistics.md#power" in p.read_text() for p in referring_files())  # the scan sees them


def test_broken_references_are_found(tmp_path):
    page = REPO / "docs" / "statistics.md"
    assert broken_target(page, "metrics.md#secondary-metrics") is None
    assert broken_target(page, "metrics.md#no-such-heading") == "#no-such-heading: no such heading in docs/metrics.md"
    assert broken_target(page, "nowhere.md") == "nowhere.md: no such file"
    sample = tmp_path / "a.md"
    sample.write_text("# A\n\n[x](b.md#c) `[y](z.md)` ![i](p.png)\n```\n[q](r.md)\n```\n[w](https://e.org)\n")
    assert markdown_links(sample) == ["b.md#c", "p.png"]


# --- the command line explains itself --------------------------------------------------------------

def test_docs_cli_md_equals_the_parsers_help():
    assert (REPO / "docs" / "cli.md").read_text() == cli_markdown()


def _commands():
    from kdsd.cli import build_parser

    return build_parser()._subparsers._group_actions[0].choices


def test_every_command_is_grouped_described_and_has_an_example():
    from kdsd.cli import COMMAND_GROUPS, USER_COMMANDS, build_parser

    commands = _commands()
    grouped = [name for _, names in COMMAND_GROUPS for name in names]
    assert sorted(grouped) == sorted(commands) and len(set(grouped)) == len(grouped)
    for name, parser in commands.items():
        assert parser.description.count("\n\n") >= 1 and len(parser.description) > 80, name
        assert parser.epilog.startswith("example"), name
        assert f"kdsd {name} " in parser.epilog or "snakemake -n -p -f " in parser.epilog, name
    top = build_parser().format_help()
    user, pipeline = top.index("Commands for users:"), top.index("Pipeline steps")
    assert all(user < top.index(f"  {name} ") < pipeline for name in USER_COMMANDS)
    assert top.index("  build-corpus ") > pipeline


def test_required_options_say_so_in_the_help():
    marked = []
    for name, parser in _commands().items():
        for action in parser._actions:
            if action.required and action.option_strings:
                assert action.help.endswith("(required)") or action.help == "required", (name, action.dest)
                marked.append((name, action.option_strings[0]))
    assert ("export", "--out") in marked and ("distill", "--students-json") in marked
    help_text = _commands()["enhance"].format_help()
    assert "(--model FILE | --onnx FILE)" in help_text and "one of the two is required" in help_text


def test_version(capsys):
    from kdsd import __version__
    from kdsd.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"kdsd {__version__}\n"
