"""Summary table → machine-readable CSV and one compact Markdown table per test set."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from kdsd.analysis.stats import ALPHA, HEADLINE, format_mean_std
from kdsd.atomic import write_csv, write_text

METRIC_LABELS = {"pesq_wb": "PESQ-WB", "pesq_nb": "PESQ-NB", "stoi": "STOI", "estoi": "ESTOI",
                 "si_sdr": "SI-SDR", "dnsmos_sig": "DNSMOS-SIG", "dnsmos_bak": "DNSMOS-BAK",
                 "dnsmos_ovrl": "DNSMOS-OVRL"}
# The Markdown tables show these (the CSV has every metric); SIG/BAK stay in the CSV.
TABLE_METRICS = ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "dnsmos_ovrl")
METRIC_DIGITS = {"pesq_wb": 2, "stoi": 3, "si_sdr": 2}


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.upper())


def metric_digits(metric: str) -> int:
    return METRIC_DIGITS.get(metric, 2)


def model_label(row: pd.Series) -> str:
    """'input', 'teacher', 'name (external)' for reference denoisers, 'scenario · method' for students."""
    if row["kind"] in ("input", "teacher"):
        return str(row["kind"])
    if row["kind"] == "reference":
        return f"{row['method']} (external)"
    return f"{row['scenario']} · {row['method']}"


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
    """'0.012*' below ALPHA, '0.31' above, '–' when no test applies."""
    if p is None or pd.isna(p):
        return "–"
    text = f"{p:.2g}" if p < 0.001 else f"{p:.3f}"
    return text + ("*" if p < ALPHA else "")


def _format_cost(value, scale: float, digits: int) -> str:
    return "–" if value is None or pd.isna(value) else f"{value * scale:.{digits}f}"


def _format_percent(fraction: float) -> str:
    return "–" if pd.isna(fraction) else f"{100 * fraction:.1f} %"


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(rows: pd.DataFrame) -> str:
    """One compact Markdown table for the rows of a single test set."""
    head = ["Model", *(metric_label(m) for m in TABLE_METRICS), f"Δ{metric_label(HEADLINE)}",
            "Params", "MMAC/s", "RTF", f"Retained Δ{metric_label(HEADLINE)}",
            f"p vs none ({metric_label(HEADLINE)})"]
    lines = [_markdown_row(head), _markdown_row(["---"] + ["---:"] * (len(head) - 1))]
    for _, row in rows.iterrows():
        cells = [model_label(row)]
        cells += [format_mean_std(row[f"{m}_mean"], row[f"{m}_std"], metric_digits(m)) for m in TABLE_METRICS]
        cells.append(format_mean_std(row[f"{HEADLINE}_i_mean"], row[f"{HEADLINE}_i_std"],
                                     metric_digits(HEADLINE)))
        cells += [format_params(row["params"]), _format_cost(row.get("macs_per_s"), 1e-6, 1),
                  _format_cost(row.get("rtf_1thread"), 1.0, 4), _format_percent(row[f"retained_{HEADLINE}"]),
                  format_pvalue(row[f"p_vs_none_{HEADLINE}"])]
        lines.append(_markdown_row(cells))
    return "\n".join(lines)


def markdown_tables(table: pd.DataFrame, heading_level: int = 3) -> str:
    """A heading and a compact table per test set, in the table's order, plus a legend."""
    hashes = "#" * heading_level
    blocks = [f"{hashes} {test_set}\n\n{markdown_table(rows)}"
              for test_set, rows in table.groupby("test_set", sort=False)]
    legend = (f"Mean ± std over seeds of per-run utterance means. MMAC/s: million multiply-"
              f"accumulates per second of 16 kHz audio (PyTorch FLOP counter; convolutions only). "
              f"RTF: real-time factor on one CPU thread. Retained = student Δ / teacher Δ. "
              f"p: paired Wilcoxon signed-rank over utterances (seed-averaged) against the `none` "
              f"student of the same scenario; * p < {ALPHA}.")
    return "\n\n".join(blocks + [legend]) + "\n"


def write_tables(table: pd.DataFrame, csv_path: str | os.PathLike,
                 md_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write the full summary table as CSV and the compact per-test-set Markdown tables."""
    return write_csv(table, csv_path), write_text(md_path, markdown_tables(table))
