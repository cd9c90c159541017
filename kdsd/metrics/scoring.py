"""Per-utterance score tables (DESIGN §4): the noisy input once per test set, then each model.

A model's table joins its estimate scores with the input scores on ``utt_id`` and adds the
improvements ``<metric>_i``; metric computation runs in a process pool of ``workers``. Each call
scores a list of test sets (one table each) with one pool; :func:`score_models` scores a group of
models in one process: each test set read once, each model loaded once, and each utterance taken
through every model in turn, so that what depends on the clean signal alone (STOI's front end)
is computed once per utterance. A model's table is the same whether it is scored alone or in a
group.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from pesq import PesqError

from kdsd.atomic import write_csv
from kdsd.audio import read_pair
from kdsd.corpus.manifest import read_manifest
from kdsd.enhance import enhance_wave
from kdsd.errors import KdsdError
from kdsd.metrics import METRIC_GROUPS, METRIC_TIERS, METRICS, group_columns, improvement
from kdsd.metrics.asr import knows_language, word_error_rate
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
               "(the input, a single teacher and the references get the other metrics on every test set)")
TIER_REASONS = {"all": "", "base": BASE_REASON, "core": SKIPPED_REASON, "primary": SKIPPED_CORE_REASON}
# The recogniser's own WER on the clean reference (its floor on this speech), in the input table.
CLEAN_WER = "clean_wer"


@dataclass(frozen=True)
class Transcript:
    """A row's text, and its ``language`` where the manifest has that column (None otherwise)."""
    text: str
    language: str | None = None


def _transcript(text) -> Transcript:
    """An item's text: a :class:`Transcript`, or plain text (no language column)."""
    return text if isinstance(text, Transcript) else Transcript(text)


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
    # no text, or a language the recogniser does not know: ValueError
    "wer": lambda ref, est, text, scored: {"wer": word_error_rate(text.text, est, text.language)},
    "speaker_similarity": lambda ref, est, text, scored: {"spk_sim": speaker_similarity(_audible(ref), est)},
}


def _group_scores(reference, estimate, text: Transcript, groups, scored: dict) -> tuple[dict, list[str]]:
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
    text = _transcript(text)
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
    """``items``: iterable of (utt_id, reference, estimate, text), ``text`` plain or a
    :class:`Transcript`. ``tier`` (``METRIC_TIERS``) ``base`` leaves the switchable groups'
    columns NaN, ``core`` the ``SECONDARY_METRICS``, ``primary`` every column but SI-SDR (their
    reason in ``nan_reason``), as do ``disabled`` metric groups (``METRIC_GROUPS``). ``pool``: an
    open ``worker_pool`` to reuse across calls; without one, ``workers`` > 1 opens its own."""
    if pool is None and workers > 1:
        with worker_pool(workers) as own:
            return score_many(items, workers, tier, own, disabled)
    _check_tiers([tier])
    return _score_table(_score_rows(((*item, tier, tuple(disabled)) for item in items), pool))


SCORE_COLUMNS = ["utt_id", *METRICS, "nan_reason"]


def _check_tiers(tiers) -> None:
    for tier in tiers:
        if tier not in METRIC_TIERS:
            raise ValueError(f"metric tier {tier!r}; valid: {', '.join(METRIC_TIERS)}")


def _score_rows(tasks, pool, chunk: int = 4) -> list[dict]:
    """``_score_one`` of each task, in order: in ``pool`` (``chunk`` consecutive tasks to a
    worker) or in this process."""
    return list(pool.map(_score_one, tasks, chunksize=chunk)) if pool else [_score_one(t) for t in tasks]


def _score_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


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


def per_test_set_tiers(manifests: list, tier: str | list[str]) -> list[str]:
    """``tier`` for each test set: one for all, or one per test set (checked)."""
    return [t for *_, t in tiered_paths(manifests, tier)]


def _load_pairs(manifest_path: Path):
    table = read_manifest(manifest_path)
    root = manifest_path.parent
    for row in table.itertuples():
        yield row, *read_pair(root / row.clean_path, root / row.noisy_path)


def _text(row) -> str:
    """The row's transcript; an empty cell reads as NaN, an all-digit one as a number."""
    return "" if pd.isna(row.text) else str(row.text)


def _row_transcript(row) -> Transcript:
    """The row's text and language: None without a ``language`` column, '' for an empty cell."""
    language = getattr(row, "language", None)
    if language is not None and pd.isna(language):
        language = ""
    return Transcript(_text(row), None if language is None else str(language))


def _clean_wer(clean, transcript: Transcript) -> float:
    """The recogniser's WER on the clean reference: NaN without text or in a language it does not
    know (the input's ``input_wer`` says why)."""
    if not transcript.text or not knows_language(transcript.language):
        return float("nan")
    return word_error_rate(transcript.text, clean, transcript.language)


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
                transcript = _row_transcript(row)
                meta.append({"utt_id": row.utt_id, "test_set": row.split, "noise_family": row.noise_family,
                             "snr_db": row.snr_db,
                             CLEAN_WER: _clean_wer(clean, transcript) if wer_on else float("nan")})
                items.append((row.utt_id, clean, noisy, transcript))
            scores = score_many(items, workers, set_tier, pool, disabled).rename(
                columns={m: f"input_{m}" for m in METRICS} | {"nan_reason": "input_nan_reason"})
            written.append(write_csv(pd.DataFrame(meta).merge(scores, on="utt_id"), out_csv))
    return written


@dataclass(frozen=True)
class Denoiser:
    """One member of a scoring group: ``denoise(noisy) -> estimate``, the id columns of its
    tables, its table and metric tier (``METRIC_TIERS``) per test set."""
    denoise: Callable[[np.ndarray], np.ndarray]
    identity: dict
    out_csvs: list
    tiers: list[str]


def score_denoisers(denoisers: list[Denoiser], manifests: list, input_csvs: list, workers: int = 1,
                    disabled=()) -> list[list[Path]]:
    """Score every denoiser on each test set in one process; the tables each one writes.

    Each test set is read once and its utterances go one by one through every denoiser, so that
    the metrics' clean side (STOI's front end, kdsd.metrics.intelligibility) is computed once per
    utterance; a worker pool gets an utterance's estimates as one chunk for the same reason."""
    for denoiser in denoisers:
        paths_per_test_set(manifests, input_scores=input_csvs, outputs=denoiser.out_csvs)
        paths_per_test_set(manifests, tiers=denoiser.tiers)
        _check_tiers(denoiser.tiers)
    written = [[] for _ in denoisers]
    with worker_pool(workers) as pool:
        for i, (manifest_path, input_csv) in enumerate(paths_per_test_set(manifests, input_scores=input_csvs)):
            inputs = pd.read_csv(input_csv)
            tasks = ((row.utt_id, clean, d.denoise(noisy), _row_transcript(row), d.tiers[i], tuple(disabled))
                     for row, clean, noisy in _load_pairs(manifest_path) for d in denoisers)
            rows = _score_rows(tasks, pool, chunk=len(denoisers))
            for k, denoiser in enumerate(denoisers):
                scores = _joined(inputs, _score_table(rows[k::len(denoisers)]), denoiser.identity,
                                 f"{input_csv}: utterances do not match {manifest_path}")
                written[k].append(write_csv(scores, denoiser.out_csvs[i]))
    return written


def _joined(inputs: pd.DataFrame, scores: pd.DataFrame, identity: dict, mismatch: str) -> pd.DataFrame:
    """The input's scores, the estimate's and the improvements, with the id columns after utt_id."""
    table = inputs.merge(scores, on="utt_id", how="inner")
    if len(table) != len(inputs):
        raise KdsdError(mismatch)
    for m in METRICS:
        table[f"{m}_i"] = improvement(m, table[m], table[f"input_{m}"])
    for key, value in reversed(identity.items()):
        table.insert(1, key, value)
    return table


def score_denoiser(denoise, identity: dict, manifests: list, input_csvs: list, out_csvs: list,
                   workers: int = 1, tier: str | list[str] = "all", disabled=()) -> list[Path]:
    """Score ``denoise(noisy) -> estimate`` on each test set; ``identity`` fills the id columns.
    ``tier``: the metric tier (``METRIC_TIERS``) of every test set, or one per test set."""
    tiers = per_test_set_tiers(manifests, tier)
    return score_denoisers([Denoiser(denoise, identity, out_csvs, tiers)], manifests, input_csvs, workers,
                           disabled)[0]


def model_identity(name: str, payload: dict) -> dict:
    """A model table's id columns, from its saved payload."""
    return {"model": name, "kind": payload.get("role", "unknown"), "method": payload.get("method", "unknown"),
            "scenario": payload.get("scenario", "unknown"), "seed": payload.get("seed", -1),
            "params": payload.get("params", np.nan)}


def score_models(models: list[dict], manifests: list, input_csvs: list, workers: int = 1,
                 disabled=()) -> list[list[Path]]:
    """Score a group of models in one process (:func:`score_denoisers`). ``models``: one dict
    each, ``model`` (model.pt), ``name`` (the id in its tables), ``out`` (a table per test set)
    and ``tier`` (one for every test set, or one per test set; default ``all``)."""
    denoisers = []
    for spec in models:
        model, payload = load_model(spec["model"])
        denoisers.append(Denoiser(partial(enhance_wave, model), model_identity(spec["name"], payload),
                                  list(spec["out"]), per_test_set_tiers(manifests, spec.get("tier", "all"))))
    return score_denoisers(denoisers, manifests, input_csvs, workers, disabled)


def score_model(model_path: str | Path, model_name: str, manifests: list, input_csvs: list,
                out_csvs: list, workers: int = 1, tier: str | list[str] = "all", disabled=()) -> list[Path]:
    """One model: a group of one."""
    return score_models([{"model": model_path, "name": model_name, "out": out_csvs, "tier": tier}],
                        manifests, input_csvs, workers, disabled)[0]


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
