"""The corpus at a glance: per-split statistics, SNR and noise-family plots, for each test split a
spectrogram example (clean / noise / mixture) plus a few WAVs to listen to, and the credits of
the recorded sources (Debian package, version, licence, what each gave)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever written to files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from kdsd.analysis.examples import draw_spectrogram, pick_utterances  # noqa: E402
from kdsd.analysis.plots import save_figure  # noqa: E402
from kdsd.atomic import write_csv, write_text  # noqa: E402
from kdsd.audio import read_audio, write_audio  # noqa: E402
from kdsd.corpus.manifest import read_manifest  # noqa: E402
from kdsd.errors import KdsdError  # noqa: E402

STATS_COLUMNS = ("split", "utterances", "hours", "speakers", "engines", "noise_families",
                 "snr_min", "snr_median", "snr_max", "reverberant")
INDEX_COLUMNS = ("split", "utt_id", "kind", "path", "noise_family", "snr_db")
SOURCE_COLUMNS = ("package", "version", "licence", "utterances", "noise_recordings", "splits")
NO_FAMILY = "none"


def _is_test(split: str) -> bool:
    return split.startswith("test_")


def _text(column: pd.Series, missing: str) -> pd.Series:
    """``column`` as strings, ``missing`` where empty (an all-empty column reads as float NaN)."""
    return column.astype(object).where(column.notna(), missing).astype(str)


def load_manifests(manifests: Mapping[str, str | Path]) -> dict[str, pd.DataFrame]:
    """Each split's manifest (in the given order), with ``noise_family`` filled and ``rir`` as str."""
    if not manifests:
        raise KdsdError("corpus report: no manifests given")
    tables = {}
    for split, path in manifests.items():
        table = read_manifest(path)
        table["noise_family"] = _text(table["noise_family"], NO_FAMILY)
        table["rir"] = _text(table["rir"], "").str.strip()
        tables[split] = table
    return tables


def _split_stats(split: str, table: pd.DataFrame) -> dict:
    snr = pd.to_numeric(table["snr_db"], errors="coerce")
    engines = sorted(table["engine"].dropna().astype(str).unique())
    return {"split": split, "utterances": len(table),
            "hours": float(pd.to_numeric(table["duration_s"]).sum()) / 3600.0,
            "speakers": int(table["speaker"].nunique()), "engines": ",".join(engines),
            "noise_families": int(table["noise_family"].nunique()),
            "snr_min": snr.min(), "snr_median": snr.median(), "snr_max": snr.max(),
            "reverberant": float((table["rir"] != "").mean())}


def _stats(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.DataFrame([_split_stats(s, t) for s, t in tables.items()], columns=list(STATS_COLUMNS))


def corpus_stats(manifests: Mapping[str, str | Path]) -> pd.DataFrame:
    """One row per split (in the given order); see :data:`STATS_COLUMNS`."""
    return _stats(load_manifests(manifests))


def family_counts(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Long format: split, noise_family, utterances (families sorted within each split)."""
    parts = [t.groupby("noise_family").size().rename("utterances").reset_index().assign(split=s)
             for s, t in tables.items()]
    return pd.concat(parts, ignore_index=True)[["split", "noise_family", "utterances"]]


def _package_rows(tables: Mapping[str, pd.DataFrame], package: str, licence: str, file: str, kind: str):
    """Long format: one row per (split, utterance) with its ``name=version`` package."""
    parts = [t[[package, licence, file]].set_axis(["pin", "licence", "file"], axis=1).assign(split=s, kind=kind)
             for s, t in tables.items() if package in t.columns]
    return [p[p["pin"].astype(str).str.contains("=")] for p in parts]


def source_credits(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per Debian package that gave audio (recorded corpus manifests): version, licence,
    utterances it gave over all splits and distinct noise recordings; see :data:`SOURCE_COLUMNS`."""
    parts = (_package_rows(tables, "source_package", "licence", "source_file", "speech")
             + _package_rows(tables, "text_package", "licence", "source_file", "speech")
             + _package_rows(tables, "noise_package", "noise_licence", "noise_file", "noise"))
    if not parts:
        return pd.DataFrame(columns=list(SOURCE_COLUMNS))
    rows = []
    for (pin, licence), used in pd.concat(parts, ignore_index=True).groupby(["pin", "licence"]):
        name, version = pin.split("=", 1)
        speech, noise = used[used["kind"] == "speech"], used[used["kind"] == "noise"]
        rows.append({"package": name, "version": version, "licence": licence, "utterances": len(speech),
                     "noise_recordings": noise["file"].nunique(),
                     "splits": ",".join(dict.fromkeys(used["split"]))})
    return pd.DataFrame(rows, columns=list(SOURCE_COLUMNS))


def markdown_credits(credits: pd.DataFrame) -> str:
    """The recorded sources as a Markdown section ('' when no split used any)."""
    if credits.empty:
        return ""
    lines = ["", "Recorded sources (Debian packages; utterances and noise recordings used, all splits):", "",
             "| Package | Version | Licence | Utterances | Noise recordings | Splits |",
             "| --- | --- | --- | ---: | ---: | --- |"]
    lines += [f"| {r.package} | {r.version} | {r.licence} | {r.utterances} | {r.noise_recordings} | {r.splits} |"
              for r in credits.itertuples()]
    return "\n".join(lines) + "\n"


def _fmt(value, digits: int) -> str:
    return "–" if pd.isna(value) else f"{value:.{digits}f}"


def markdown_stats(stats: pd.DataFrame) -> str:
    head = ["Split", "Utterances", "Hours", "Speakers", "Engines", "Noise families",
            "SNR min (dB)", "SNR median (dB)", "SNR max (dB)", "Reverberant"]
    lines = ["| " + " | ".join(head) + " |", "| --- | " + " | ".join(["---:"] * 3 + ["---"]
                                                                       + ["---:"] * 5) + " |"]
    for r in stats.itertuples():
        cells = [r.split, str(r.utterances), _fmt(r.hours, 2), str(r.speakers), r.engines or "–",
                 str(r.noise_families), _fmt(r.snr_min, 1), _fmt(r.snr_median, 1),
                 _fmt(r.snr_max, 1), f"{100 * r.reverberant:.1f} %"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _grid(n: int, width: float = 3.2, height: float = 2.6):
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             sharex=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def plot_snr(tables: Mapping[str, pd.DataFrame], out_png: str | os.PathLike) -> Path:
    """Input-SNR histogram per split, one small panel each."""
    fig, axes = _grid(len(tables))
    palette = sns.color_palette("colorblind", len(tables))
    for ax, color, (split, table) in zip(axes, palette, tables.items()):
        snr = pd.to_numeric(table["snr_db"], errors="coerce").dropna()
        if snr.empty:
            ax.text(0.5, 0.5, "no SNR", ha="center", va="center", transform=ax.transAxes)
        else:
            sns.histplot(x=snr, bins=min(20, max(5, len(snr) // 2)), color=color, ax=ax)
        ax.set(title=f"{split} (n={len(table)})", xlabel="input SNR (dB)", ylabel="utterances")
        ax.tick_params(labelbottom=True)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return save_figure(fig, out_png)


def plot_families(families: pd.DataFrame, out_png: str | os.PathLike) -> Path:
    """Utterances per noise family, bars grouped by family, one colour per split."""
    splits = list(dict.fromkeys(families["split"]))
    order = sorted(families["noise_family"].unique())
    fig, ax = plt.subplots(figsize=(min(16.0, max(5.0, 2 + 0.25 * len(order) * len(splits))), 4))
    sns.barplot(data=families, x="noise_family", y="utterances", hue="split", order=order,
                hue_order=splits, palette=sns.color_palette("colorblind", len(splits)), ax=ax)
    ax.set(xlabel="noise family", ylabel="utterances", title="Noise families per split")
    ax.tick_params(axis="x", rotation=30)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(title="split", fontsize=7, title_fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, out_png)


def _signals(manifest_path: Path, row) -> dict[str, np.ndarray]:
    """clean, noise (= noisy − clean) and noisy samples of one manifest row."""
    clean = read_audio(manifest_path.parent / row.clean_path)
    noisy = read_audio(manifest_path.parent / row.noisy_path)
    if len(clean) != len(noisy):
        raise KdsdError(f"{manifest_path}: {row.utt_id}: clean and noisy lengths differ "
                        f"({len(clean)} vs {len(noisy)} samples)")
    return {"clean": clean, "noise": noisy - clean, "noisy": noisy}


def _median_snr_row(table: pd.DataFrame):
    ordered = table.sort_values(["snr_db", "utt_id"]).reset_index(drop=True)
    return next(ordered.iloc[[len(ordered) // 2]].itertuples())


def plot_spectrograms(tables: Mapping[str, pd.DataFrame], manifests: Mapping[str, str | Path],
                      out_png: str | os.PathLike) -> Path:
    """Per test split, its median-SNR utterance as clean / noise / mixture spectrograms."""
    tests = [s for s in tables if _is_test(s)]
    fig, axes = plt.subplots(max(1, len(tests)), 3, figsize=(9.0, 2.4 * max(1, len(tests))),
                             squeeze=False)
    if not tests:
        axes[0][1].text(0.5, 0.5, "no test splits", ha="center", va="center")
        for ax in axes[0]:
            ax.axis("off")
    for i, split in enumerate(tests):
        row = _median_snr_row(tables[split])
        for j, (kind, wave) in enumerate(_signals(Path(manifests[split]), row).items()):
            ax = axes[i][j]
            draw_spectrogram(ax, wave)
            label = {"noisy": "mixture"}.get(kind, kind)
            ax.set_title(f"{split}: {label}\n{row.utt_id} ({row.noise_family}, "
                         f"{float(row.snr_db):+.1f} dB)", fontsize=7)
            ax.set(xlabel="s" if i == len(tests) - 1 else "", ylabel="kHz" if j == 0 else "")
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    return save_figure(fig, out_png)


def write_audio_examples(tables: Mapping[str, pd.DataFrame], manifests: Mapping[str, str | Path],
                         out_dir: str | os.PathLike, n: int) -> tuple[Path, list[Path]]:
    """``<out_dir>/<split>/<utt>_{clean,noise,noisy}.wav`` for ``n`` utterances per test split
    (spread over the SNR range) and ``<out_dir>/index.csv`` (paths relative to ``out_dir``)."""
    out_dir, rows, wavs = Path(out_dir), [], []
    for split in (s for s in tables if _is_test(s)):
        for row in pick_utterances(tables[split], n).itertuples() if n > 0 else ():
            for kind, wave in _signals(Path(manifests[split]), row).items():
                rel = Path(split) / f"{row.utt_id}_{kind}.wav"
                wavs.append(write_audio(out_dir / rel, wave))
                rows.append({"split": split, "utt_id": row.utt_id, "kind": kind, "path": rel.as_posix(),
                             "noise_family": row.noise_family, "snr_db": row.snr_db})
    index = write_csv(pd.DataFrame(rows, columns=list(INDEX_COLUMNS)), out_dir / "index.csv")
    return index, wavs


def write_corpus_report(manifests: Mapping[str, str | Path], out_dir: str | os.PathLike,
                        n_audio_examples: int = 2) -> dict[str, Path]:
    """Tables, plots and audio examples of the corpus under ``out_dir``; returns what was written
    (the WAVs under keys ``example:<split>/<file name>``)."""
    out_dir, tables = Path(out_dir), load_manifests(manifests)
    stats, families, credits = _stats(tables), family_counts(tables), source_credits(tables)
    written = {"corpus_csv": write_csv(stats, out_dir / "tables" / "corpus.csv"),
               "corpus_md": write_text(out_dir / "tables" / "corpus.md",
                                       markdown_stats(stats) + markdown_credits(credits)),
               "sources_csv": write_csv(credits, out_dir / "tables" / "corpus_sources.csv"),
               "families_csv": write_csv(families, out_dir / "tables" / "corpus_families.csv"),
               "snr_png": plot_snr(tables, out_dir / "plots" / "corpus_snr.png"),
               "families_png": plot_families(families, out_dir / "plots" / "corpus_families.png"),
               "spectrograms_png": plot_spectrograms(tables, manifests,
                                                     out_dir / "plots" / "corpus_spectrograms.png")}
    examples_dir = out_dir / "examples" / "corpus"
    written["examples_index"], wavs = write_audio_examples(tables, manifests, examples_dir,
                                                           n_audio_examples)
    written.update({f"example:{w.relative_to(examples_dir).as_posix()}": w for w in wavs})
    return written
