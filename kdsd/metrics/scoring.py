"""Per-utterance score tables (DESIGN §4): the noisy input once per test set, then each model.

A model's table joins its estimate scores with the input scores on ``utt_id`` and adds the
improvements ``<metric>_i``; metric computation runs in a process pool of ``workers``.
"""
from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from kdsd.atomic import write_csv
from kdsd.audio import read_pair
from kdsd.corpus.manifest import read_manifest
from kdsd.enhance import enhance_wave
from kdsd.errors import KdsdError
from kdsd.metrics import CORE_METRICS, METRICS, SECONDARY_METRICS
from kdsd.metrics.dnsmos import dnsmos
from kdsd.metrics.intrusive import INTRUSIVE_METRICS, score_utterance
from kdsd.models.io import load_model
from kdsd.references import availability, denoise, describe

META_COLUMNS = ("utt_id", "test_set", "noise_family", "snr_db")


SKIPPED_REASON = "secondary metrics not computed for this seed (evaluation.secondary_metric_seeds)"


def _score_one(args):
    utt_id, reference, estimate, secondary = args
    values, reason = score_utterance(reference, estimate, metrics=INTRUSIVE_METRICS if secondary else CORE_METRICS)
    if secondary:
        values.update(dnsmos(estimate))  # non-intrusive: the estimate alone
    else:
        values.update(dict.fromkeys(SECONDARY_METRICS, float("nan")))
        reason = "; ".join(filter(None, [reason, SKIPPED_REASON]))
    return {"utt_id": utt_id, **values, "nan_reason": reason}


def score_many(items, workers: int, secondary: bool = True) -> pd.DataFrame:
    """``items``: iterable of (utt_id, reference, estimate); ``secondary=False`` leaves the
    ``SECONDARY_METRICS`` columns NaN (their reason in ``nan_reason``)."""
    items = [(*item, secondary) for item in items]
    if workers <= 1:
        rows = [_score_one(item) for item in items]
    else:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(_score_one, items, chunksize=4))
    return pd.DataFrame(rows, columns=["utt_id", *METRICS, "nan_reason"])


def _load_pairs(manifest_path: Path):
    table = read_manifest(manifest_path)
    root = manifest_path.parent
    for row in table.itertuples():
        yield row, *read_pair(root / row.clean_path, root / row.noisy_path)


def score_input(manifest_path: str | Path, out_csv: str | Path, workers: int = 1) -> Path:
    """Scores of the unprocessed noisy input, columns ``input_<metric>``."""
    manifest_path = Path(manifest_path)
    meta, items = [], []
    for row, clean, noisy in _load_pairs(manifest_path):
        meta.append({"utt_id": row.utt_id, "test_set": row.split, "noise_family": row.noise_family,
                     "snr_db": row.snr_db})
        items.append((row.utt_id, clean, noisy))
    scores = score_many(items, workers).rename(columns={m: f"input_{m}" for m in METRICS}
                                               | {"nan_reason": "input_nan_reason"})
    return write_csv(pd.DataFrame(meta).merge(scores, on="utt_id"), out_csv)


def score_denoiser(denoise, identity: dict, manifest_path: str | Path, input_csv: str | Path,
                   out_csv: str | Path, workers: int = 1, secondary: bool = True) -> Path:
    """Score ``denoise(noisy) -> estimate`` on a test set; ``identity`` fills the id columns."""
    inputs = pd.read_csv(input_csv)
    items = [(row.utt_id, clean, denoise(noisy)) for row, clean, noisy in _load_pairs(Path(manifest_path))]
    scores = inputs.merge(score_many(items, workers, secondary), on="utt_id", how="inner")
    if len(scores) != len(inputs):
        raise KdsdError(f"{input_csv}: utterances do not match {manifest_path}")
    for m in METRICS:
        scores[f"{m}_i"] = scores[m] - scores[f"input_{m}"]
    for key, value in reversed(identity.items()):
        scores.insert(1, key, value)
    return write_csv(scores, out_csv)


def score_model(model_path: str | Path, model_name: str, manifest_path: str | Path,
                input_csv: str | Path, out_csv: str | Path, workers: int = 1,
                secondary: bool = True) -> Path:
    model, payload = load_model(model_path)
    identity = {"model": model_name, "kind": payload.get("role", "unknown"),
                "method": payload.get("method", "unknown"), "scenario": payload.get("scenario", "unknown"),
                "seed": payload.get("seed", -1), "params": payload.get("params", np.nan)}
    return score_denoiser(lambda noisy: enhance_wave(model, noisy), identity, manifest_path,
                          input_csv, out_csv, workers, secondary)


def reference_identity(name: str) -> dict:
    return {"model": f"references/{name}", "kind": "reference", "method": name,
            "scenario": "reference", "seed": 0, "params": describe(name)["params"]}


def score_reference(name: str, manifest_path: str | Path, input_csv: str | Path,
                    out_csv: str | Path, workers: int = 1) -> Path:
    """Score an external reference denoiser; one that cannot run here leaves a header-only table
    (its reason is in the reference's cost record), so the rest of the DAG goes on."""
    ok, reason = availability(name)
    if not ok:
        print(f"kdsd: note: reference denoiser {name!r} cannot run here: {reason}", file=sys.stderr)
        columns = ["utt_id", *reference_identity(name), *pd.read_csv(input_csv, nrows=0).columns[1:],
                   *METRICS, "nan_reason", *(f"{m}_i" for m in METRICS)]
        return write_csv(pd.DataFrame(columns=list(dict.fromkeys(columns))), out_csv)
    return score_denoiser(lambda noisy: denoise(name, noisy), reference_identity(name),
                          manifest_path, input_csv, out_csv, workers)
