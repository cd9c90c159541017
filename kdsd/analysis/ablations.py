"""The ablation table: each named variant of a KD method against the method itself, paired by seed.

A variant (``kd.<name>: {method: <base>, ...}``) changes one ingredient of its base method
(distance, projector, granularity, teacher input, weight). Per scenario and test set, every
variant's improvement over the noisy input is reported as mean ± std over seeds, with the
per-seed difference from the base method's own configuration (the reference row) over the
utterances both score, and its unadjusted 95 % t interval (:func:`kdsd.analysis.seeds.seed_test`).
The training seed is the unit: runs with the same seed share initial weights and data order, so
differences pair by seed. Ablations are exploratory: no verdict, no multiplicity correction.
"""
from __future__ import annotations

import os
from typing import Iterable

import pandas as pd

from kdsd.analysis.seeds import paired_differences, seed_test
from kdsd.analysis.stats import format_mean_std, load_scores, run_means
from kdsd.atomic import write_csv, write_text
from kdsd.models.io import load_payload

METRICS = ("si_sdr_i", "pesq_wb_i", "estoi_i")
KEYS = ["scenario", "method", "seed"]
DIFF_COLUMNS = ("diff_si_sdr_i_mean", "diff_si_sdr_i_ci_low", "diff_si_sdr_i_ci_high", "diff_n_seeds")


def model_identities(model_paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """scenario, method, seed, base_method and KD options of each saved student."""
    rows = []
    for path in model_paths:
        p = load_payload(path)
        rows.append({"scenario": p["scenario"], "method": p["method"], "seed": int(p["seed"]),
                     "base_method": p.get("base_method", p["method"]),
                     "kd_options": p.get("kd_options", {})})
    return pd.DataFrame(rows)


def changed_options(options: dict, reference: dict) -> str:
    """What a variant sets differently from its reference, e.g. ``distance=mse``."""
    keys = sorted(set(options) | set(reference))
    diff = [f"{k}={options.get(k)}" for k in keys if options.get(k) != reference.get(k)]
    return ", ".join(diff) or "(reference)"


def _reference_difference(utterances: pd.DataFrame, method: str, base: str) -> dict:
    """Per-seed ΔSI-SDR difference of ``method`` from ``base`` over their shared utterances."""
    wide = utterances.set_index(["utt_id", "method", "seed"])["si_sdr_i"].unstack(["method", "seed"])
    test = seed_test(paired_differences(wide[method], wide[base])["diffs"])
    return dict(zip(DIFF_COLUMNS, (test["mean_diff"], test["ci95_low"], test["ci95_high"], test["n_seeds"])))


def ablation_table(scores: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """One row per (scenario, test set, method) of every base method that has variants."""
    students = scores[scores["kind"] == "student"]
    runs = run_means(students).merge(models, on=KEYS, how="inner")
    families = models.loc[models.method != models.base_method, "base_method"].unique()
    rows = []
    for (scenario, test_set, base), runs_of in runs[runs.base_method.isin(families)].groupby(
            ["scenario", "test_set", "base_method"]):
        reference = runs_of[runs_of.method == base]
        ref_options = reference.kd_options.iloc[0] if len(reference) else {}
        utterances = students[(students.scenario == scenario) & (students.test_set == test_set)
                              & students.method.isin(runs_of.method.unique())]
        for method, seeds in runs_of.groupby("method"):
            row = {"scenario": scenario, "test_set": test_set, "base_method": base, "method": method,
                   "changed": changed_options(seeds.kd_options.iloc[0], ref_options),
                   "n_seeds": int(seeds["si_sdr_i"].notna().sum())}
            for metric in METRICS:
                row[f"{metric}_mean"], row[f"{metric}_std"] = seeds[metric].mean(), seeds[metric].std()
            row.update(_reference_difference(utterances, method, base) if len(reference) else
                       dict.fromkeys(DIFF_COLUMNS, float("nan")))
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["is_reference"] = table.method == table.base_method
    return (table.sort_values(["scenario", "test_set", "base_method", "is_reference", "method"],
                              ascending=[True, True, True, False, True])
            .drop(columns="is_reference").reset_index(drop=True))


def markdown(table: pd.DataFrame) -> str:
    lines = ["# Ablations: variants of a KD method against the method itself",
             "",
             "ΔSI-SDR, ΔPESQ-WB and ΔESTOI over the noisy input, mean ± std over seeds; "
             "\"vs reference\" is the per-seed difference in ΔSI-SDR from the base method's own "
             "configuration (dB) over the utterances both score, with its unadjusted 95 % t interval over "
             "seeds (exploratory: no verdict).", ""]
    if table.empty:
        return "\n".join(lines + ["No variants (kd.<name>.method) in students.methods."])
    for (scenario, test_set), part in table.groupby(["scenario", "test_set"], sort=False):
        lines += [f"## {scenario} · {test_set}", "",
                  "| variant | changes | seeds | ΔSI-SDR (dB) | ΔPESQ-WB | ΔESTOI | vs reference (dB) |",
                  "|---|---|---|---|---|---|---|"]
        for r in part.itertuples():
            lines.append(f"| {r.method} | {r.changed} | {r.n_seeds} | "
                         f"{format_mean_std(r.si_sdr_i_mean, r.si_sdr_i_std)} | "
                         f"{format_mean_std(r.pesq_wb_i_mean, r.pesq_wb_i_std)} | "
                         f"{format_mean_std(r.estoi_i_mean, r.estoi_i_std, 3)} | {_difference(r)} |")
        lines.append("")
    return "\n".join(lines)


def _difference(row) -> str:
    if row.method == row.base_method or pd.isna(row.diff_si_sdr_i_mean):
        return "–"
    if pd.isna(row.diff_si_sdr_i_ci_low):  # one seed: no interval
        return f"{row.diff_si_sdr_i_mean:+.2f}"
    return f"{row.diff_si_sdr_i_mean:+.2f} [{row.diff_si_sdr_i_ci_low:+.2f}, {row.diff_si_sdr_i_ci_high:+.2f}]"


def write_ablations(score_paths, model_paths, out_csv, out_md) -> None:
    table = ablation_table(load_scores(score_paths), model_identities(model_paths))
    write_csv(table, out_csv)
    write_text(out_md, markdown(table) + "\n")
