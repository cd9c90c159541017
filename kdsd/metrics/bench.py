"""Scoring throughput benchmark: utterances scored per second with 1..N worker processes.

Prints figures (speed targets belong in benchmarks, not in timed tests). Every metric is
computed, as in the DAG; the estimate is the noisy input itself so no model is needed.
"""
from __future__ import annotations

import time
from pathlib import Path

from kdsd.metrics.scoring import _load_pairs, _text, score_many


def bench_scoring(manifest: str | Path, workers: list[int], limit: int = 32) -> list[dict]:
    pairs = [(row.utt_id, clean, noisy, _text(row)) for row, clean, noisy in _load_pairs(Path(manifest))][:limit]
    results = []
    for n in workers:
        started = time.perf_counter()
        score_many(pairs, n)
        seconds = time.perf_counter() - started
        results.append({"workers": n, "utterances": len(pairs), "seconds": seconds,
                        "utt_per_s": len(pairs) / seconds})
    return results
