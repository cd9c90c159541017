"""The tuning sweep's table: which KD weight (and sp2step step-1 fraction, and learning rate for
`none`) each method gets, chosen on `valid` only.

Beside each candidate: its per-seed difference in best valid SI-SDR from the method's own
configuration (the candidate named like the method), mean and unadjusted 95 % t interval over the
seeds both have (:func:`kdsd.analysis.seeds.seed_test`). The choice is the highest mean; the
interval says how far the sweep can tell candidates apart.

Candidates are a method and its named variants that differ in ``kd_weight``, ``step1_fraction``
or ``train.lr`` (``workflow/presets/kd_sweep.yaml``). Each student's score is its best valid
SI-SDR (the epoch its checkpoint was chosen at), read from its ``model.pt`` history; no test set
takes part. Per scenario and base method, the candidate with the highest mean over seeds is
chosen.
"""
from __future__ import annotations

import json
import os
from typing import Iterable

import pandas as pd

from kdsd.analysis.seeds import seed_test
from kdsd.atomic import write_csv
from kdsd.errors import KdsdError
from kdsd.models.io import load_payload


def student_valid_scores(model_paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per student: identity, KD options and its best valid SI-SDR."""
    rows = []
    for path in model_paths:
        p = load_payload(path)
        history = p.get("history") or []
        if p.get("role") != "student" or not history:
            raise KdsdError(f"{path}: not a trained student (no role 'student' or no history)")
        options = p.get("kd_options", {})
        lr = p.get("train_options", {}).get("lr", p.get("config", {}).get("students", {}).get("train", {}).get("lr"))
        rows.append({"scenario": p["scenario"], "base_method": p.get("base_method", p["method"]),
                     "candidate": p["method"], "seed": int(p["seed"]),
                     "kd_weight": options.get("kd_weight"), "step1_fraction": options.get("step1_fraction"),
                     "lr": lr, "options": json.dumps({**options, "train": p.get("train_options", {})},
                                                     sort_keys=True),
                     "valid_si_sdr": max(h["valid_si_sdr"] for h in history),
                     "selected_epoch": p.get("selected_epoch", 0)})
    return pd.DataFrame(rows)


def kd_weight_table(students: pd.DataFrame) -> pd.DataFrame:
    """Per (scenario, base method, candidate): mean/std of best valid SI-SDR over seeds, and the choice."""
    keys = ["scenario", "base_method", "candidate"]
    grouped = students.groupby(keys, sort=True)
    table = grouped[["kd_weight", "step1_fraction", "lr", "options"]].first()
    table["n_seeds"] = grouped.size()
    table["valid_si_sdr_mean"] = grouped["valid_si_sdr"].mean()
    table["valid_si_sdr_std"] = grouped["valid_si_sdr"].std()
    table["selected_epoch_median"] = grouped["selected_epoch"].median()
    table = table.reset_index()
    best = table.groupby(["scenario", "base_method"])["valid_si_sdr_mean"].idxmax()
    table["chosen"] = table.index.isin(best)
    table = table.join(pd.DataFrame([_difference_from_base(students, row) for _, row in table.iterrows()],
                                    index=table.index))
    return table.sort_values(["scenario", "base_method", "kd_weight", "step1_fraction", "lr", "candidate"],
                             na_position="first").reset_index(drop=True)


def _difference_from_base(students: pd.DataFrame, row: pd.Series) -> dict:
    """Per-seed valid SI-SDR difference of a candidate from its base method's own configuration."""
    of = students[(students["scenario"] == row["scenario"]) & (students["base_method"] == row["base_method"])]
    scores = of.pivot_table(index="seed", columns="candidate", values="valid_si_sdr")
    if row["base_method"] not in scores.columns:
        return dict.fromkeys(("diff_vs_base_mean", "diff_vs_base_ci95_low", "diff_vs_base_ci95_high"), float("nan"))
    test = seed_test(scores[row["candidate"]] - scores[row["base_method"]])
    return {"diff_vs_base_mean": test["mean_diff"], "diff_vs_base_ci95_low": test["ci95_low"],
            "diff_vs_base_ci95_high": test["ci95_high"]}


def write_kd_weights(model_paths, out_csv) -> None:
    write_csv(kd_weight_table(student_valid_scores(model_paths)), out_csv)
