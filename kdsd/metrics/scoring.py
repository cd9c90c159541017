"""Per-utterance score tables (DESIGN §4): the noisy input once per test set, then each model.

A model's table joins its estimate scores with the input scores on ``utt_id`` and adds the
improvements ``<metric>_i``; metric computation runs in a process pool of ``workers``. Each call
scores a list of test sets (one table each) with one model load and one pool.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from pesq import PesqError

from kdsd.atomic import write_csv
from kdsd.audio import read_pair
from kdsd.corpus.manifest import read_manifest
from kdsd.enhance import enhance_wave
from kdsd.errors import KdsdError
from kdsd.metrics import METRIC_GROUPS, METRIC_TIERS, METRICS, group_columns, improvement
from kdsd.metrics.asr import word_error_rate
from kdsd.metrics.composite import composite, log_spectral_distance
from kdsd.metrics.dnsmos import dnsmos
from kdsd.metrics.intrusive import INTRUSIVE_METRICS, is_silent, score_utterance
from kdsd.metrics.speaker import speaker_similarity
from kdsd.models.io import load_model
from kdsd.references import availability, denoise, describe

META_COLUMNS = ("utt_id", "test_set", "noise_family", "snr_db")


SKIPPED_REASON = ("secondary metrics not computed for this seed or test set "
                  "(evaluation.secondary_metric_seeds, evaluation.secondary_metric_test_sets)")
SKIPPED_CORE_REASON = ("only SI-SDR computed for this seed, the primary test's metric "
                       "(evaluation.core_metric_seeds)")
BASE_REASON = (f"{', '.join(METRIC_GROUPS)}: scored on evaluation.secondary_metric_test_sets only "
               "(the input, teacher and references get the other metrics on every test set)")
TIER_REASONS = {"all": "", "base": BASE_REASON, "core": SKIPPED_REASON, "primary": SKIPPED_CORE_REASON}
# The recogniser's own WER on the clean reference (its floor on this speech), in the input table.
CLEAN_WER = "clean_wer"


def _audible(reference: np.ndarray) -> np.ndarray:
    if is_silent(reference):
        raise ValueError("silent reference: nothing to score against")
    return reference


def _composite(reference, estimate, scored: dict) -> dict:
    """The composite measures, reusing the PESQ-WB this score already computed (the same call);
    without a finite one, composite() runs PESQ itself and raises its error."""
    pesq_mos = scored.get("pesq_wb", float("nan"))
    return composite(_audible(reference), estimate, pesq_mos=pesq_mos if np.isfinite(pesq_mos) else None)


# Secondary metric groups beyond PESQ-NB and DNSMOS P.835:
# group -> scorer(reference, estimate, text, the metrics scored so far).
GROUP_SCORERS = {
    "composite": lambda ref, est, text, scored: _composite(ref, est, scored),
    "lsd": lambda ref, est, text, scored: {"lsd": log_spectral_distance(_audible(ref), est)},
    "wer": lambda ref, est, text, scored: {"wer": word_error_rate(text, est)},  # no text: ValueError
    "speaker_similarity": lambda ref, est, text, scored: {"spk_sim": speaker_similarity(_audible(ref), est)},
}


def _group_scores(reference, estimate, text: str, groups, scored: dict) -> tuple[dict, list[str]]:
    """Every group's columns; a group that cannot score this pair gives NaNs and its reason."""
    values, reasons = {}, []
    for group in groups:
        try:
            values.update(GROUP_SCORERS[group](reference, estimate, text, scored))
        except (PesqError, ValueError) as exc:
            values.update(dict.fromkeys(group_columns(group), float("nan")))
            reasons.append(f"{group}: {exc}".splitlines()[0])
    return values, reasons


def _score_one(args):
    utt_id, reference, estimate, text, tier, disabled = args
    wanted = METRIC_TIERS[tier]  # the tier's metric list decides what runs
    values, reason = score_utterance(reference, estimate, metrics=[m for m in INTRUSIVE_METRICS if m in wanted])
    reasons = [reason, TIER_REASONS[tier]]
    if "dnsmos_ovrl" in wanted:  # DNSMOS scores the estimate alone
        values.update(dnsmos(estimate, p808="dnsmos_p808" in wanted and "dnsmos_p808" not in disabled))
    groups = [g for g in GROUP_SCORERS if g not in disabled and set(group_columns(g)) <= set(wanted)]
    extra, group_reasons = _group_scores(reference, estimate, text, groups, values)
    values.update(extra)
    reasons += group_reasons
    if disabled and tier == "all":
        reasons.append(f"{', '.join(disabled)}: turned off (evaluation.metrics)")
    values = {m: values.get(m, float("nan")) for m in METRICS}
    return {"utt_id": utt_id, **values, "nan_reason": "; ".join(filter(None, reasons))}


def score_many(items, workers: int, tier: str = "all", pool=None, disabled=()) -> pd.DataFrame:
    """``items``: iterable of (utt_id, reference, estimate, text); ``tier`` (``METRIC_TIERS``)
    ``base`` leaves the switchable groups' columns NaN, ``core`` the ``SECONDARY_METRICS``,
    ``primary`` every column but SI-SDR (their reason in ``nan_reason``), as do ``disabled``
    metric groups (``METRIC_GROUPS``). ``pool``: an open ``worker_pool`` to reuse across calls;
    without one, ``workers`` > 1 opens its own."""
    if pool is None and workers > 1:
        with worker_pool(workers) as own:
            return score_many(items, workers, tier, own, disabled)
    if tier not in METRIC_TIERS:
        raise ValueError(f"metric tier {tier!r}; valid: {', '.join(METRIC_TIERS)}")
    items = [(*item, tier, tuple(disabled)) for item in items]
    rows = list(pool.map(_score_one, items, chunksize=4)) if pool else [_score_one(i) for i in items]
    return pd.DataFrame(rows, columns=["utt_id", *METRICS, "nan_reason"])


@contextmanager
def worker_pool(workers: int):
    """One process pool for every test set of a job (None with one worker: score in-process)."""
    if workers <= 1:
        yield None
    else:
        with ProcessPoolExecutor(workers) as pool:
            yield pool


def paths_per_test_set(manifests: list, **per_set: list) -> list[tuple]:
    """Zip each test set's manifest with its other paths; the lists must be equally long."""
    counts = {"manifests": len(manifests)} | {name: len(paths) for name, paths in per_set.items()}
    if len(set(counts.values())) != 1:
        raise KdsdError("the per-test-set lists differ in length: "
                        + ", ".join(f"{n} {name}" for name, n in counts.items()))
    return [(Path(m), *rest) for m, *rest in zip(manifests, *per_set.values())]


def tiered_paths(manifests: list, tier: str | list[str], **per_set: list) -> list[tuple]:
    """``paths_per_test_set`` with each test set's metric tier last: ``tier`` is one for every
    test set, or one per test set."""
    if isinstance(tier, str):
        return [(*paths, tier) for paths in paths_per_test_set(manifests, **per_set)]
    return paths_per_test_set(manifests, **per_set, tiers=list(tier))


def _load_pairs(manifest_path: Path):
    table = read_manifest(manifest_path)
    root = manifest_path.parent
    for row in table.itertuples():
        yield row, *read_pair(root / row.clean_path, root / row.noisy_path)


def _text(row) -> str:
    """The row's transcript; an empty cell reads as NaN, an all-digit one as a number."""
    return "" if pd.isna(row.text) else str(row.text)


def _clean_wer(clean, text: str) -> float:
    return word_error_rate(text, clean) if text else float("nan")


def score_input(manifests: list, out_csvs: list, workers: int = 1, tier: str | list[str] = "all",
                disabled=()) -> list[Path]:
    """Scores of the unprocessed noisy input of each test set, columns ``input_<metric>``, and
    ``clean_wer``: the recogniser's WER on the clean reference (NaN without text, with WER off or
    outside the ``all`` tier). ``tier`` as in ``score_denoiser``."""
    written = []
    with worker_pool(workers) as pool:
        for manifest_path, out_csv, set_tier in tiered_paths(manifests, tier, outputs=out_csvs):
            meta, items = [], []
            wer_on = set_tier == "all" and "wer" not in disabled
            for row, clean, noisy in _load_pairs(manifest_path):
                meta.append({"utt_id": row.utt_id, "test_set": row.split, "noise_family": row.noise_family,
                             "snr_db": row.snr_db,
                             CLEAN_WER: _clean_wer(clean, _text(row)) if wer_on else float("nan")})
                items.append((row.utt_id, clean, noisy, _text(row)))
            scores = score_many(items, workers, set_tier, pool, disabled).rename(
                columns={m: f"input_{m}" for m in METRICS} | {"nan_reason": "input_nan_reason"})
            written.append(write_csv(pd.DataFrame(meta).merge(scores, on="utt_id"), out_csv))
    return written


def score_denoiser(denoise, identity: dict, manifests: list, input_csvs: list, out_csvs: list,
                   workers: int = 1, tier: str | list[str] = "all", disabled=()) -> list[Path]:
    """Score ``denoise(noisy) -> estimate`` on each test set; ``identity`` fills the id columns.
    ``tier``: the metric tier (``METRIC_TIERS``) of every test set, or one per test set."""
    written = []
    with worker_pool(workers) as pool:
        for manifest_path, input_csv, out_csv, set_tier in tiered_paths(manifests, tier, input_scores=input_csvs,
                                                                        outputs=out_csvs):
            inputs = pd.read_csv(input_csv)
            items = [(row.utt_id, clean, denoise(noisy), _text(row))
                     for row, clean, noisy in _load_pairs(manifest_path)]
            scores = inputs.merge(score_many(items, workers, set_tier, pool, disabled), on="utt_id", how="inner")
            if len(scores) != len(inputs):
                raise KdsdError(f"{input_csv}: utterances do not match {manifest_path}")
            for m in METRICS:
                scores[f"{m}_i"] = improvement(m, scores[m], scores[f"input_{m}"])
            for key, value in reversed(identity.items()):
                scores.insert(1, key, value)
            written.append(write_csv(scores, out_csv))
    return written


def score_model(model_path: str | Path, model_name: str, manifests: list, input_csvs: list,
                out_csvs: list, workers: int = 1, tier: str | list[str] = "all", disabled=()) -> list[Path]:
    model, payload = load_model(model_path)
    identity = {"model": model_name, "kind": payload.get("role", "unknown"),
                "method": payload.get("method", "unknown"), "scenario": payload.get("scenario", "unknown"),
                "seed": payload.get("seed", -1), "params": payload.get("params", np.nan)}
    return score_denoiser(lambda noisy: enhance_wave(model, noisy), identity, manifests,
                          input_csvs, out_csvs, workers, tier, disabled)


def reference_identity(name: str) -> dict:
    return {"model": f"references/{name}", "kind": "reference", "method": name,
            "scenario": "reference", "seed": 0, "params": describe(name)["params"]}


def score_reference(name: str, manifests: list, input_csvs: list, out_csvs: list,
                    workers: int = 1, tier: str | list[str] = "all", disabled=()) -> list[Path]:
    """Score an external reference denoiser; one that cannot run here leaves header-only tables
    (its reason is in the reference's cost record), so the rest of the DAG goes on."""
    ok, reason = availability(name)
    if not ok:
        print(f"kdsd: note: reference denoiser {name!r} cannot run here: {reason}", file=sys.stderr)
        written = []
        for _, input_csv, out_csv in paths_per_test_set(manifests, input_scores=input_csvs, outputs=out_csvs):
            columns = ["utt_id", *reference_identity(name), *pd.read_csv(input_csv, nrows=0).columns[1:],
                       *METRICS, "nan_reason", *(f"{m}_i" for m in METRICS)]
            written.append(write_csv(pd.DataFrame(columns=list(dict.fromkeys(columns))), out_csv))
        return written
    return score_denoiser(lambda noisy: denoise(name, noisy), reference_identity(name),
                          manifests, input_csvs, out_csvs, workers, tier, disabled)
