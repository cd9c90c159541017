"""The corpus manifest (DESIGN §4): one row per (clean, noisy) pair, paths relative to the file."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from kdsd.atomic import write_csv
from kdsd.errors import KdsdError

COLUMNS = ("utt_id", "split", "clean_path", "noisy_path", "speaker", "engine", "text",
           "noise_family", "noise_seed", "snr_db", "rir", "duration_s", "sample_rate")


def read_manifest(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise KdsdError(f"{path}: manifest not found")
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise KdsdError(f"{path}: not a readable manifest CSV ({exc})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise KdsdError(f"{path}: manifest lacks columns {', '.join(missing)}")
    if table.empty:
        raise KdsdError(f"{path}: manifest has no rows")
    if table["utt_id"].duplicated().any():
        dup = table.loc[table["utt_id"].duplicated(), "utt_id"].iloc[0]
        raise KdsdError(f"{path}: duplicate utt_id {dup!r}")
    return table


def write_manifest(rows: list[dict], path: str | Path, extra: tuple[str, ...] = ()) -> Path:
    """The standard columns, then ``extra`` ones a source adds (e.g. the recorded corpus's
    language and source package); any other key of the rows is left out."""
    table = pd.DataFrame(rows)
    missing = [c for c in (*COLUMNS, *extra) if c not in table.columns]
    if missing:
        raise ValueError(f"manifest rows lack columns {missing}")
    return write_csv(table[[*COLUMNS, *extra]], path)
