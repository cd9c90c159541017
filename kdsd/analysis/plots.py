"""Figures: improvement bars with seed spread, quality-vs-cost Pareto fronts, training curves."""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever written to files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from kdsd.analysis.stats import (  # noqa: E402
    HEADLINE, KIND_ORDER, method_rank, run_means)
from kdsd.analysis.tables import SECONDARY_TABLE_METRICS, metric_label, model_label  # noqa: E402
from kdsd.atomic import atomic_path  # noqa: E402
from kdsd.errors import KdsdError  # noqa: E402

PLOT_METRICS = ("si_sdr", "pesq_wb", "estoi", "dnsmos_ovrl")
# the second grid: every other metric the registry scores on fewer seeds (kdsd.metrics)
SECONDARY_PLOT_METRICS = tuple(m for m in SECONDARY_TABLE_METRICS if m not in PLOT_METRICS)
PARETO_METRICS = ("si_sdr", "pesq_wb")

HISTORY_COLUMNS = ("epoch", "train_sup", "valid_si_sdr", "best")


def save_figure(fig, out_png: str | os.PathLike) -> Path:
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(out_png)


def improvement_order(metrics=PLOT_METRICS, headline_first: bool = True) -> list[str]:
    """The improvement columns to plot: the headline first (if asked), then the others."""
    first = (HEADLINE,) if headline_first else ()
    return [f"{m}_i" for m in (*first, *(m for m in metrics if m not in first))]


def _model_order(runs: pd.DataFrame) -> list[str]:
    """Teacher first, then references, then students by scenario and method (baselines first)."""
    key = pd.DataFrame({"kind": runs["kind"].map(KIND_ORDER), "scenario": runs["scenario"],
                        "rank": runs["method"].map(method_rank), "method": runs["method"]})
    return list(dict.fromkeys(runs.loc[key.sort_values(list(key.columns)).index, "model"]))


def method_colors(methods) -> dict[str, tuple]:
    """One colour per method name (teacher and references included), stable across figures."""
    methods = sorted(set(methods), key=lambda m: (m != "teacher", method_rank(m), m))
    return dict(zip(methods, sns.color_palette("colorblind", len(methods))))


def plot_improvements(scores: pd.DataFrame, out_png: str | os.PathLike, metrics=PLOT_METRICS,
                      headline_first: bool = True) -> Path:
    """A grid: one row per test set, one column per metric improvement; horizontal bars per model
    (mean over seeds of run means), whiskers ± SD over seeds (none with one seed). A metric no run
    scored shows an empty panel."""
    runs = run_means(scores[scores["kind"].isin(("teacher", "reference", "student"))])
    if runs.empty:
        raise KdsdError(f"{out_png}: no teacher or student scores to plot")
    runs["model"] = runs.apply(model_label, axis=1)
    models = _model_order(runs)
    colors = method_colors(runs["method"])
    method_of = dict(zip(runs["model"], runs["method"]))
    test_sets, columns = sorted(runs["test_set"].unique()), improvement_order(metrics, headline_first)
    fig, axes = plt.subplots(len(test_sets), len(columns), squeeze=False, sharey=True,
                             figsize=(3.2 * len(columns) + 2.0, (0.22 * len(models) + 0.9) * len(test_sets)))
    stats = runs.groupby(["test_set", "model"])
    for i, test_set in enumerate(test_sets):
        for j, col in enumerate(columns):
            ax = axes[i][j]
            mean = stats[col].mean().get(test_set, pd.Series(dtype=float)).reindex(models)
            spread = stats[col].std(ddof=1).get(test_set, pd.Series(dtype=float)).reindex(models)
            y = np.arange(len(models))
            ax.barh(y, mean.to_numpy(), xerr=spread.fillna(0).to_numpy(), capsize=2,
                    color=[colors[method_of[m]] for m in models], error_kw={"linewidth": 0.8})
            ax.axvline(0, color="0.3", linewidth=0.8)
            ax.set_yticks(y, models, fontsize=8)
            ax.tick_params(axis="x", labelsize=8)
            ax.set_title(f"{test_set}: Δ{metric_label(col[:-2])}", fontsize=9)
    axes[0][0].invert_yaxis()  # shared by every panel: first model on top
    fig.suptitle("Improvement over the noisy input: bars = mean over seeds, whiskers = ± SD over seeds",
                 fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_png)


def plot_pareto(table: pd.DataFrame, out_png: str | os.PathLike) -> Path:
    """Quality improvement (mean ± SD over seeds) against MACs per second, one panel per metric × test
    set; colour = method, marker = scenario, named in one legend (no labels on the points)."""
    rows = table[table["macs_per_s"].notna() & (table["kind"] != "input")].copy()
    if rows.empty:
        raise KdsdError(f"{out_png}: no model has a measured cost to plot")
    rows["model"] = rows.apply(model_label, axis=1)
    test_sets = list(dict.fromkeys(rows["test_set"]))
    ncols = min(3, len(test_sets))
    nrows = len(PARETO_METRICS) * math.ceil(len(test_sets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, figsize=(4.6 * ncols + 2.5, 3.6 * nrows))
    style = _point_styles(rows)
    panels = [(metric, test_set) for metric in PARETO_METRICS for test_set in test_sets]
    for ax, (metric, test_set) in zip(axes.flat, panels):
        _pareto_panel(ax, rows[rows["test_set"] == test_set], metric, style)
        ax.set_title(f"{test_set}: Δ{metric_label(metric)} vs cost", fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], linestyle="", marker=marker, color=color, label=model)
               for model, (color, marker) in style.items()]
    fig.legend(handles=handles, title="model (± SD over seeds)", loc="center left",
               bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_png)


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def _point_styles(rows: pd.DataFrame) -> dict[str, tuple]:
    """model label → (colour by method, marker by scenario; teacher and references get their own)."""
    colors = method_colors(rows["method"])
    scenarios = sorted(rows.loc[rows["kind"] == "student", "scenario"].unique())
    marker = {scen: MARKERS[k % len(MARKERS)] for k, scen in enumerate(scenarios)}
    ordered = rows.drop_duplicates("model")
    ordered = ordered.loc[ordered.apply(lambda r: (KIND_ORDER[r["kind"]], r["scenario"], method_rank(r["method"])),
                                        axis=1).sort_values().index]
    return {r["model"]: (colors[r["method"]], marker.get(r["scenario"], "*") if r["kind"] == "student" else "*")
            for _, r in ordered.iterrows()}


def _pareto_panel(ax, rows: pd.DataFrame, metric: str, style: dict) -> None:
    y, err = rows[f"{metric}_i_mean"], rows[f"{metric}_i_std"].fillna(0.0)
    x = rows["macs_per_s"] / 1e6
    methods = list(dict.fromkeys(rows["method"]))
    for model, method, xi, yi, ei in zip(rows["model"], rows["method"], x, y, err):
        color, marker = style[model]
        ax.errorbar(xi * _dodge(methods.index(method), len(methods)), yi, yerr=ei, fmt=marker,
                    color=color, capsize=3, markersize=6)
    front = _pareto_front(x.to_numpy(), y.to_numpy())
    ax.plot(x.to_numpy()[front], y.to_numpy()[front], "--", color="0.5", linewidth=0.8)
    ax.set(xscale="log", xlabel="MMAC per second of audio (log)", ylabel=f"Δ{metric_label(metric)}")
    _plain_log_ticks(ax)


def _dodge(index: int, count: int, step: float = 0.04) -> float:
    """Factor that spreads points of equal x side by side on a log axis (±step/2 octaves each)."""
    return 2 ** (step * (index - (count - 1) / 2))


def _plain_log_ticks(ax) -> None:
    """Log x axis labelled '2', '10', '50' on major ticks only: no crowded minor 'a×10^b' labels."""
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_claim(runs: pd.DataFrame, retained: pd.DataFrame, out_png: str | os.PathLike) -> Path:
    """Retained fraction against compression (log), one line per method (mean, 95 % t interval over
    seeds), seed points overlaid, one panel per test set, a reference line at 1 (the teacher)."""
    if retained.empty:  # a run without students still gets its report
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no student runs: no retained fraction", ha="center", va="center")
        ax.set_axis_off()
        return save_figure(fig, out_png)
    test_sets = sorted(retained["test_set"].unique())
    ncols = min(3, len(test_sets))
    nrows = math.ceil(len(test_sets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, figsize=(4.6 * ncols + 1.8, 3.6 * nrows))
    colors = method_colors(["teacher", *retained["method"]])  # the same colours as the other figures
    colors.pop("teacher")
    for ax, test_set in zip(axes.flat, test_sets):
        _claim_panel(ax, runs[runs["test_set"] == test_set], retained[retained["test_set"] == test_set], colors)
    for ax in list(axes.flat)[len(test_sets):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], marker="o", color=c, label=m) for m, c in colors.items()]
    fig.legend(handles=handles, title="KD method", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle("Retained fraction of the teacher's ΔSI-SDR: mean and 95 % t interval over seeds "
                 "(points: seeds)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_png)


def _claim_panel(ax, runs: pd.DataFrame, retained: pd.DataFrame, colors: dict) -> None:
    test_set = retained["test_set"].iloc[0]
    ok = retained[retained["status"] == "ok"].sort_values("compression")
    ax.set_title(f"{test_set} (teacher Δ{metric_label(HEADLINE)} "
                 f"{retained['teacher_gain'].mean():+.2f} dB)", fontsize=9)
    ax.axhline(1.0, color="0.3", linewidth=0.8, linestyle=":")
    ax.set(xscale="log", xlabel="compression: teacher / student params (log)", ylabel="retained fraction")
    compressions = sorted(retained["compression"].unique())
    ax.set_xlim(compressions[0] / 1.5, compressions[-1] * 1.5)
    ax.set_xticks(compressions, [f"{c:.3g}×" for c in compressions])
    ax.minorticks_off()
    if ok.empty:
        ax.text(0.5, 0.5, "\n".join(sorted(set(retained["status"]))), transform=ax.transAxes,
                ha="center", va="center", fontsize=9, color="0.3")
        return
    methods = list(colors)
    for method, rows in ok.groupby("method", sort=False):
        shift = _dodge(methods.index(method), len(methods), step=0.06)
        low = (rows["retained_mean"] - rows["retained_ci95_low"]).fillna(0).to_numpy()
        high = (rows["retained_ci95_high"] - rows["retained_mean"]).fillna(0).to_numpy()
        ax.errorbar(rows["compression"] * shift, rows["retained_mean"], yerr=[low, high], marker="o",
                    color=colors[method], capsize=3, linewidth=1.2)
        seeds = runs[(runs["method"] == method) & runs["retained"].notna()]
        ax.scatter(seeds["compression"] * shift, seeds["retained"], s=10, color=colors[method], alpha=0.5,
                   linewidths=0)


def _pareto_front(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats on both lower cost and higher quality, by cost."""
    order = np.lexsort((-quality, cost))  # at equal cost the better point comes first
    front, best = [], -np.inf
    for k in order:
        if np.isfinite(quality[k]) and quality[k] > best:
            front.append(k)
            best = quality[k]
    return np.array(front, dtype=int)


def _read_history(name: str, path: str | os.PathLike) -> pd.DataFrame:
    if not os.path.isfile(path):
        raise KdsdError(f"{path}: history file not found (model {name!r})")
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise KdsdError(f"{path}: unreadable history CSV ({err})") from None
    missing = [c for c in HISTORY_COLUMNS if c not in df.columns]
    if missing:
        raise KdsdError(f"{path}: missing required columns: {', '.join(missing)}")
    return df


def _best_epoch(history: pd.DataFrame) -> pd.Series | None:
    """The last epoch flagged best, i.e. the checkpoint that was finally kept."""
    flagged = history[history["best"].fillna(0).astype(bool)]
    return None if flagged.empty else flagged.iloc[-1]


def plot_learning_curves(history_paths: Mapping[str, str | os.PathLike],
                         out_png: str | os.PathLike) -> Path:
    """Supervised train loss and validation SI-SDR per epoch, one line per model, best epoch starred."""
    if not history_paths:
        raise KdsdError(f"{out_png}: no history files to plot")
    histories = {name: _read_history(name, path) for name, path in history_paths.items()}
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4.2))
    palette = sns.color_palette("colorblind", len(histories))
    for color, (name, hist) in zip(palette, histories.items()):
        ax_loss.plot(hist["epoch"], hist["train_sup"], color=color, label=name)
        ax_val.plot(hist["epoch"], hist["valid_si_sdr"], color=color, label=name)
        best = _best_epoch(hist)
        if best is not None:
            ax_loss.plot(best["epoch"], best["train_sup"], "*", color=color, markersize=12)
            ax_val.plot(best["epoch"], best["valid_si_sdr"], "*", color=color, markersize=12)
    ax_loss.set(xlabel="epoch", ylabel="supervised loss (−SI-SDR + mag. term)",
               title="Training: supervised loss (comparable across methods)")
    ax_val.set(xlabel="epoch", ylabel="valid SI-SDR (dB)", title="Validation SI-SDR (★ = best)")
    for ax in (ax_loss, ax_val):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    sns.despine(fig)
    fig.tight_layout()
    # Outside the panels, in columns of at most 20: one line per run would not fit inside them.
    fig.legend(*ax_val.get_legend_handles_labels(), fontsize="small", frameon=False, loc="upper left",
               bbox_to_anchor=(1.0, 1.0), ncols=math.ceil(len(histories) / 20))
    return save_figure(fig, out_png)
