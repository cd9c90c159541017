"""Tables → machine-readable CSVs and compact Markdown: models per test set, seed-level method
comparisons, and the retained fraction against compression."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from kdsd.analysis.stats import HEADLINE, format_mean_std, method_sort_key
from kdsd.metrics import METRIC_INFO, SECONDARY_METRICS, metric_label
from kdsd.atomic import write_csv, write_text

# The main Markdown table shows these; the other metrics of the registry that runs score on fewer
# seeds go to a second table per test set (DNSMOS SIG/BAK stay in the CSV).
TABLE_METRICS = ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "dnsmos_ovrl")
CSV_ONLY_METRICS = ("dnsmos_sig", "dnsmos_bak")
SECONDARY_TABLE_METRICS = tuple(m for m in SECONDARY_METRICS if m not in TABLE_METRICS + CSV_ONLY_METRICS)


def metric_digits(metric: str) -> int:
    return METRIC_INFO[metric].digits if metric in METRIC_INFO else 2


def model_label(row: pd.Series) -> str:
    """'input', 'teacher', 'name (external)' for reference denoisers, 'scenario · method' for students."""
    if row["kind"] in ("input", "teacher"):
        return str(row["kind"])
    if row["kind"] == "reference":
        return f"{row['method']} (external)"
    flag = row.get("causal")
    causal = " (causal)" if pd.notna(flag) and bool(flag) and "causal" not in str(row["scenario"]) else ""
    return f"{row['scenario']}{causal} · {row['method']}"


def format_params(params) -> str:
    if params is None or pd.isna(params):
        return "–"
    params = int(params)
    if params >= 1_000_000:
        return f"{params / 1e6:.2f} M"
    if params >= 1_000:
        return f"{params / 1e3:.1f} k"
    return str(params)


def format_pvalue(p: float) -> str:
    """'0.012', '4.2e-05', or '–' when no test applies (no stars: a verdict says what a p decides)."""
    if p is None or pd.isna(p):
        return "–"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _format_cost(value, scale: float, digits: int) -> str:
    return "–" if value is None or pd.isna(value) else f"{value * scale:.{digits}f}"


def _format_percent(fraction: float) -> str:
    return "–" if pd.isna(fraction) else f"{100 * fraction:.1f} %"


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def format_interval(low: float, high: float, digits: int = 2, scale: float = 1.0) -> str:
    """'[-0.12, +0.40]', or '–' without an interval."""
    if pd.isna(low) or pd.isna(high):
        return "–"
    return f"[{scale * low:+.{digits}f}, {scale * high:+.{digits}f}]"


def format_retained(mean: float, low: float, high: float, status: str) -> str:
    """'62.0 % [51.2, 72.8]', or the reason there is no number ('n/a: teacher gain < 1 dB')."""
    if status != "ok":
        return str(status)
    if pd.isna(low) or pd.isna(high):
        return _format_percent(mean)
    return f"{_format_percent(mean)} [{100 * low:.1f}, {100 * high:.1f}]"


def markdown_table(rows: pd.DataFrame) -> str:
    """One compact Markdown table for the rows of a single test set (model summaries)."""
    gain = f"Δ{metric_label(HEADLINE)}"
    head = ["Model", *(metric_label(m) for m in TABLE_METRICS), gain, f"{gain} 95 % CI",
            "Params", "MMAC/s", "RTF", "RTF ONNX", "Latency (ms)", "Epochs", f"Retained {gain} [95 % CI]"]
    lines = [_markdown_row(head), _markdown_row(["---"] + ["---:"] * (len(head) - 1))]
    for _, row in rows.iterrows():
        cells = [model_label(row)]
        cells += [_metric_cell(row, m) for m in TABLE_METRICS]
        mean, half = row[f"{HEADLINE}_i_mean"], row[f"{HEADLINE}_i_ci95"]
        cells += [format_mean_std(mean, row[f"{HEADLINE}_i_std"], metric_digits(HEADLINE)),
                  format_interval(mean - half, mean + half)]
        cells += [format_params(row["params"]), _format_cost(row.get("macs_per_s"), 1e-6, 1),
                  _format_cost(row.get("rtf_1thread"), 1.0, 4), _format_cost(row.get("rtf_onnx_1thread"), 1.0, 4),
                  _format_cost(row.get("latency_ms"), 1.0, 0), _format_cost(row.get("epochs"), 1.0, 0),
                  _retained_cell(row)]
        lines.append(_markdown_row(cells))
    return "\n".join(lines)


def _metric_cell(row: pd.Series, metric: str) -> str:
    """mean ± SD, marked when it covers fewer seeds than the run (secondary metrics, see schema)."""
    cell = format_mean_std(row[f"{metric}_mean"], row[f"{metric}_std"], metric_digits(metric))
    n = row.get(f"{metric}_n_seeds")
    return cell + (f" ({int(n)} seed{'s' if n != 1 else ''})" if pd.notna(n) and 0 < n < row["n_seeds"] else "")


def _retained_cell(row: pd.Series) -> str:
    status = row.get(f"retained_{HEADLINE}_status")
    if row["kind"] != "student" or status is None or pd.isna(status):
        return "–"
    prefix = f"retained_{HEADLINE}"
    return format_retained(row[prefix], row[f"{prefix}_ci95_low"], row[f"{prefix}_ci95_high"], status)


LOWER_IS_BETTER = " and ".join(metric_label(m) for m, info in METRIC_INFO.items() if not info.higher_is_better)
MODEL_LEGEND = (f"Metric columns: mean ± SD (standard deviation, not an interval) over seeds of per-run "
                f"utterance means; '(k seeds)' marks a mean over fewer seeds than the run has (secondary "
                f"metrics, evaluation.secondary_metric_seeds; core metrics past evaluation.core_metric_seeds; "
                f"{LOWER_IS_BETTER}: lower is better, their Δ "
                f"is signed so that positive is better); 95 % CI: Student-t interval over "
                f"seeds (– with one seed). MMAC/s: "
                f"million multiply-accumulates per second of 16 kHz audio (PyTorch FLOP counter; "
                f"convolutions only). RTF: real-time factor on one CPU thread (PyTorch; RTF ONNX: onnxruntime, "
                f"students' exported model.onnx). Latency: algorithmic latency (window + look-ahead; "
                f"cost.csv's latency_source for the references). Epochs: the student's training "
                f"budget (median over seeds; tables/budgets.csv). Retained = student "
                f"Δ{metric_label(HEADLINE)} / teacher Δ{metric_label(HEADLINE)} on the same utterances, "
                f"mean and 95 % t interval over seeds, only where the teacher gains enough.")


def secondary_table(rows: pd.DataFrame) -> str:
    """The secondary metrics of one test set (scored for the input, teacher, references and the
    first seeds of students), with WER above the recogniser's floor; "" where none was scored."""
    metrics = [m for m in SECONDARY_TABLE_METRICS if f"{m}_mean" in rows and rows[f"{m}_mean"].notna().any()]
    if not metrics:
        return ""
    floor = rows["clean_wer_floor"].iloc[0] if "clean_wer_floor" in rows else float("nan")
    with_floor = "wer" in metrics and pd.notna(floor)
    head = ["Model", *(metric_label(m) for m in metrics), *(["WER − floor"] if with_floor else [])]
    lines = [_markdown_row(head), _markdown_row(["---"] + ["---:"] * (len(head) - 1))]
    for _, row in rows.iterrows():
        cells = [model_label(row), *(_metric_cell(row, m) for m in metrics)]
        if with_floor:
            cells.append(_format_cost(row["wer_mean"] - floor, 1.0, metric_digits("wer")))
        lines.append(_markdown_row(cells))
    return "\n".join(lines) + (wer_floor_note(floor) if with_floor else "")


# A recogniser that gets half the words of clean speech wrong measures its own limits more than
# what a denoiser did to the words.
UNINFORMATIVE_WER_FLOOR = 0.5


def wer_floor_note(floor: float) -> str:
    note = (f"\n\nClean-reference WER on this test set (the recogniser's floor on this speech): "
            f"{floor:.{metric_digits('wer')}f}.")
    if floor >= UNINFORMATIVE_WER_FLOOR:
        note += (f" At a floor of {UNINFORMATIVE_WER_FLOOR:g} or more the recogniser errs on about every "
                 f"other word or worse even on clean speech, so WER differences between models here "
                 f"say little about intelligibility.")
    return note


def markdown_tables(table: pd.DataFrame, heading_level: int = 3) -> str:
    """A heading and compact tables per test set (main, then secondary metrics), plus a legend."""
    hashes = "#" * heading_level
    blocks = []
    for test_set, rows in table.groupby("test_set", sort=False):
        secondary = secondary_table(rows)
        blocks.append(f"{hashes} {test_set}\n\n{markdown_table(rows)}"
                      + (f"\n\nSecondary metrics:\n\n{secondary}" if secondary else ""))
    return "\n\n".join(blocks + [MODEL_LEGEND]) + "\n"


def comparison_table(comparisons: pd.DataFrame) -> str:
    """Markdown: one row per exploratory comparison, its per-seed mean, unadjusted interval and what
    the interval shows; no p-values (they are in comparisons.csv, and decide nothing here)."""
    head = ["Test set", "Scenario", "Comparison", "Seeds", "Utterances (dropped)", "Mean Δ",
            "Unadjusted 95 % CI", "Interval"]
    lines = [_markdown_row(head), _markdown_row(["---"] * 3 + ["---:"] * 4 + ["---"])]
    for _, row in comparisons.iterrows():
        unit = " dB" if row["metric"] == HEADLINE else ""
        mean = "–" if pd.isna(row["mean_diff"]) else f"{row['mean_diff']:+.2f}{unit}"
        lines.append(_markdown_row([
            row["test_set"], row["scenario"], f"{row['method']} − {row['baseline']}", str(row["n_seeds"]),
            f"{row['n_utts']} ({row['n_dropped_utts']})", mean,
            format_interval(row["ci95_low"], row["ci95_high"]), row["reading"]]))
    return "\n".join(lines)


COMPARISON_LEGEND = (
    f"Exploratory comparisons: per-seed paired differences of Δ{metric_label(HEADLINE)} (method − baseline, "
    f"same seed), each the mean over the utterances scored in every run of the comparison (dropped: NaN in "
    f"some run); Mean Δ and its unadjusted 95 % t interval over seeds (df = seeds − 1); Interval: whether "
    f"that interval lies above 0, below 0, inside the equivalence margin or spans 0. No multiplicity "
    f"correction and no verdict: only the primary tests decide. comparisons.csv adds the uncorrected "
    f"t-test and exact sign-flip p-values (≥ 3 and ≥ 6 seeds) and every other metric.")


def retained_markdown(retained: pd.DataFrame, controls: Mapping[str, str] | None = None) -> str:
    """Markdown: per test set × scenario, compression, teacher gain, headroom, retained per method
    (a budget control, ``controls``: {control: method}, beside the method it controls)."""
    if retained.empty:
        return "No student runs."
    methods = sorted(retained["method"].unique(), key=lambda m: method_sort_key(m, controls))
    gain = f"Δ{metric_label(HEADLINE)}"
    head = ["Test set", "Scenario", "Compression", f"Teacher {gain}", "Headroom over none",
            *(f"{m} retained [95 % CI]" for m in methods)]
    lines = [_markdown_row(head), _markdown_row(["---"] * 2 + ["---:"] * (len(head) - 2))]
    for (test_set, scenario), rows in retained.groupby(["test_set", "scenario"], sort=True):
        by_method = rows.set_index("method")
        first = rows.iloc[0]
        cells = [test_set, scenario, f"{first['compression']:.1f}×", f"{first['teacher_gain']:+.2f} dB",
                 "–" if pd.isna(first["headroom"]) else f"{first['headroom']:+.2f} dB"]
        cells += [_method_retained(by_method, m) for m in methods]
        lines.append(_markdown_row(cells))
    return "\n".join(lines)


def _method_retained(by_method: pd.DataFrame, method: str) -> str:
    if method not in by_method.index:
        return "not run"
    row = by_method.loc[method]
    return format_retained(row["retained_mean"], row["retained_ci95_low"], row["retained_ci95_high"],
                           row["status"])


def slope_markdown(slopes: pd.DataFrame) -> str:
    """Markdown: the per-test-set slopes of the retained gap (exploratory, unadjusted)."""
    head = ["Test set", "Comparison", "Scenarios", "Seeds", "Slope (pp / doubling)", "Unadjusted 95 % CI",
            "Interval"]
    lines = [_markdown_row(head), _markdown_row(["---"] * 3 + ["---:"] * 3 + ["---"])]
    for _, row in slopes.iterrows():
        slope = "–" if pd.isna(row["mean_diff"]) else f"{100 * row['mean_diff']:+.1f}"
        lines.append(_markdown_row([
            row["test_set"], f"{row['method']} − {row['baseline']}", str(row["n_scenarios"]),
            str(row["n_seeds"]), slope, format_interval(row["ci95_low"], row["ci95_high"], 1, 100),
            row["reading"]]))
    return "\n".join(lines)


def write_tables(table: pd.DataFrame, csv_path: str | os.PathLike,
                 md_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write the full summary table as CSV and the compact per-test-set Markdown tables."""
    return write_csv(table, csv_path), write_text(md_path, markdown_tables(table))
