"""Where a corpus comes from: ``corpus.source`` in the config picks one of these.

Every source builds the same thing per split (``clean/``, ``noisy/``, ``manifest.csv``), so the
rest of the DAG does not know or care which one ran:

* ``synthetic`` — the embedded TTS + procedural-noise corpus (:mod:`kdsd.corpus.synthetic`);
* ``voicebank`` — VoiceBank+DEMAND folders on disk (:mod:`kdsd.corpus.voicebank`);
* ``folders``  — a clean-speech folder mixed with a noise folder (:mod:`kdsd.corpus.folders`);
* ``recorded`` — recorded speech in recorded noise from Debian packages (:mod:`kdsd.corpus.recorded`).

Every source also provides ``test_recorded`` (recorded voices in recorded noise) while
``corpus.recorded.test_set`` is on; it is built by :mod:`kdsd.corpus.recorded` whatever the source.
"""
from __future__ import annotations

from importlib import import_module
from pathlib import Path

from kdsd.errors import KdsdError

SOURCES = {"synthetic": "kdsd.corpus.synthetic", "voicebank": "kdsd.corpus.voicebank",
           "folders": "kdsd.corpus.folders", "recorded": "kdsd.corpus.recorded"}
RECORDED_TEST = "test_recorded"


def _module(corpus: dict):
    source = corpus.get("source", "synthetic")
    if source not in SOURCES:
        raise KdsdError(f"config corpus.source: unknown source {source!r}; valid: {', '.join(SOURCES)}")
    return import_module(SOURCES[source])


def _recorded():
    return import_module(SOURCES["recorded"])


def splits(corpus: dict) -> tuple[str, ...]:
    """Every split this corpus provides (train, valid and its test sets, test_recorded included
    while corpus.recorded.test_set is on)."""
    own = tuple(_module(corpus).splits(corpus))
    if RECORDED_TEST not in own and _recorded().test_set_on(corpus):
        own += (RECORDED_TEST,)
    return own


def test_splits(corpus: dict) -> list[str]:
    return [s for s in splits(corpus) if s.startswith("test_")]


# [low, high] config pairs (the schema checks each end, not their order)
RANGE_KEYS = ("snr_db", "test_snr_db", "rt60_s")


def check_ranges(corpus: dict) -> None:
    for key in RANGE_KEYS:
        if key in corpus and corpus[key][0] > corpus[key][1]:
            low, high = corpus[key]
            raise KdsdError(f"config corpus.{key}: low end {low} is above high end {high}")


def check(corpus: dict, test_sets: list[str] | None = None) -> None:
    """Refuse a corpus that cannot be built, before any job starts: inverted ranges, folders
    missing on disk, recorded packages neither cached nor obtainable, or test sets asked for that
    this source does not provide."""
    check_ranges(corpus)
    module = _module(corpus)
    module.check_layout(corpus)
    if RECORDED_TEST in (test_sets or test_splits(corpus)):
        _recorded().check_test_set(corpus)
    unknown = [t for t in test_sets or [] if t not in test_splits(corpus)]
    if unknown:
        raise KdsdError(f"config evaluation.test_sets: {', '.join(unknown)} not provided by corpus "
                        f"source {corpus.get('source', 'synthetic')!r}; it provides: "
                        f"{', '.join(test_splits(corpus))}")


def build_split(corpus: dict, split: str, out_dir: str | Path, workers: int = 1) -> Path:
    if split not in splits(corpus):
        raise KdsdError(f"unknown split {split!r} for corpus source "
                        f"{corpus.get('source', 'synthetic')!r}; valid: {', '.join(splits(corpus))}")
    builder = _recorded() if split == RECORDED_TEST else _module(corpus)
    return builder.build_split(corpus, split, out_dir, workers)
