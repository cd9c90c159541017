"""Synthesis throughput benchmark: audio seconds synthesized per wall second, per worker count.

Prints figures (speed targets belong in benchmarks, not in timed tests). Each measurement
builds the same utterances of one split from scratch in a temporary folder, so TTS, noise,
room and file writing are all counted.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from snakemake.utils import validate

from kdsd.corpus.manifest import read_manifest
from kdsd.corpus.synthetic import build_split

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def resolved_corpus(overrides: dict) -> dict:
    """The ``corpus`` section with every unset key filled from the schema's defaults."""
    config = {"corpus": overrides}
    validate(config, str(SCHEMA), set_default=True)
    return config["corpus"]


def bench_synthesis(overrides: dict, split: str, workers: list[int], utterances: int) -> list[dict]:
    corpus = resolved_corpus(overrides)
    corpus["utterances"] = {**corpus["utterances"], split: utterances}
    results = []
    for n in workers:
        with tempfile.TemporaryDirectory(prefix="kdsd-bench-") as tmp:
            started = time.perf_counter()
            manifest = read_manifest(build_split(corpus, split, tmp, workers=n))
            seconds = time.perf_counter() - started
        audio_s = float(manifest["duration_s"].sum())
        results.append({"workers": n, "utterances": len(manifest), "audio_s": audio_s,
                        "seconds": seconds, "audio_s_per_s": audio_s / seconds})
        print(f"workers={n}: {len(manifest)} utterances, {audio_s:.1f} s of audio in {seconds:.1f} s "
              f"= {audio_s / seconds:.2f} audio-s per wall-s", flush=True)
    return results
