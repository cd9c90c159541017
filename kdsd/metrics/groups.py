"""Which students are scored already (the DAG's side of scoring a group of students in one job).

The students that train together (``students.train_together``, :func:`kdsd.train.groups.group_key`)
are scored together: one process reads each test set once, runs every model on it and shares
the clean side of each utterance (:func:`kdsd.metrics.scoring.score_models`). A group holds only
the students whose scores are not current, so a method or seed added to a finished run scores
only the new students, and a changed metric tier or a retrained model rescores exactly the
students concerned. As with training (:mod:`kdsd.train.groups`), a ``job.json`` beside a student's
score tables, written after them, records with what they were scored.
"""
from __future__ import annotations

import os
from pathlib import Path

from kdsd.train.groups import JOB_FILE, record_matches


def score_tables(scores_dir: str | os.PathLike, test_sets) -> list[Path]:
    return [Path(scores_dir) / f"{test_set}.csv" for test_set in test_sets]


def scores_are_current(scores_dir: str | os.PathLike, job: dict, test_sets, upstream) -> bool:
    """Whether ``scores_dir`` holds a table per test set and a ``job.json`` equal to ``job``
    that is no older than any ``upstream`` file (the model, the input's score tables); an
    upstream file that does not exist yet will be made anew, so nothing built on it is current."""
    record = Path(scores_dir) / JOB_FILE
    if not (all(t.is_file() for t in score_tables(scores_dir, test_sets)) and record_matches(scores_dir, job)):
        return False
    written = record.stat().st_mtime
    return all(Path(p).is_file() and Path(p).stat().st_mtime <= written for p in upstream)
