"""Figures: improvement bars with seed spread, quality-vs-cost Pareto fronts, training curves."""
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

from kdsd.analysis.stats import (  # noqa: E402
    HEADLINE, KIND_ORDER, method_rank, run_means)
from kdsd.analysis.tables import metric_label, model_label  # noqa: E402
from kdsd.atomic import atomic_path  # noqa: E402
from kdsd.errors import KdsdError  # noqa: E402

PLOT_METRICS = ("si_sdr", "pesq_wb", "estoi", "dnsmos_ovrl")
PARETO_METRICS = ("si_sdr", "pesq_wb")

HISTORY_COLUMNS = ("epoch", "train_sup", "valid_si_sdr", "best")


def save_figure(fig, out_png: str | os.PathLike) -> Path:
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(out_png)


def _mean_pm_std(values) -> tuple[float, float]:
    """Error interval over seeds: mean ± sample std (no bootstrap; NaN for one seed)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return np.nan, np.nan
    mean, std = values.mean(), values.std(ddof=1)
    return mean - std, mean + std


def improvement_order() -> list[str]:
    """Headline improvement first, then the others of PLOT_METRICS."""
    return [f"{m}_i" for m in (HEADLINE, *(m for m in PLOT_METRICS if m != HEADLINE))]


def _model_order(runs: pd.DataFrame) -> list[str]:
    """Teacher first, then students by scenario and method (baselines first)."""
    key = pd.DataFrame({"kind": runs["kind"].map(KIND_ORDER), "scenario": runs["scenario"],
                        "rank": runs["method"].map(method_rank), "method": runs["method"]})
    return list(dict.fromkeys(runs.loc[key.sort_values(list(key.columns)).index, "model"]))


def plot_improvements(scores: pd.DataFrame, out_png: str | os.PathLike) -> Path:
    """One panel per metric improvement; bars = mean over seeds of run means, whiskers = seed std."""
    runs = run_means(scores[scores["kind"].isin(("teacher", "reference", "student"))])
    if runs.empty:
        raise KdsdError(f"{out_png}: no teacher or student scores to plot")
    runs["model"] = runs.apply(model_label, axis=1)
    models = _model_order(runs)
    test_sets = sorted(runs["test_set"].unique())
    columns = improvement_order()
    panel_width = max(4.0, 1.0 + 0.3 * len(models) * len(test_sets))
    fig, axes = plt.subplots(1, len(columns), figsize=(panel_width * len(columns), 4.5),
                             squeeze=False)
    palette = sns.color_palette("colorblind", len(test_sets))
    handles, labels = [], []
    for ax, col in zip(axes[0], columns):
        # Each row is one seed's run mean, so the error callable sees exactly the seed values.
        sns.barplot(data=runs.dropna(subset=[col]), x="model", y=col, hue="test_set",
                    order=models, hue_order=test_sets, palette=palette, estimator="mean",
                    errorbar=_mean_pm_std, capsize=0.15, err_kws={"linewidth": 1}, ax=ax)
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set(xlabel="", ylabel="improvement over input", title=f"Δ{metric_label(col[:-2])}")
        ax.tick_params(axis="x", rotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        if ax.get_legend() is not None:
            if not handles:
                handles, labels = ax.get_legend_handles_labels()
            ax.get_legend().remove()
    fig.tight_layout()
    # Outside the panels, to the right: bbox_inches="tight" in save_figure keeps it in the image.
    fig.legend(handles, labels, title="test set", loc="center left", bbox_to_anchor=(1.0, 0.5),
               frameon=False)
    return save_figure(fig, out_png)


def plot_pareto(table: pd.DataFrame, out_png: str | os.PathLike) -> Path:
    """Quality improvement (mean ± seed std) against MACs per second, one panel per metric × test set."""
    rows = table[table["macs_per_s"].notna() & (table["kind"] != "input")]
    if rows.empty:
        raise KdsdError(f"{out_png}: no model has a measured cost to plot")
    test_sets = list(dict.fromkeys(rows["test_set"]))
    fig, axes = plt.subplots(len(PARETO_METRICS), len(test_sets), squeeze=False,
                             figsize=(5.5 * len(test_sets), 4.2 * len(PARETO_METRICS)))
    for i, metric in enumerate(PARETO_METRICS):
        for j, test_set in enumerate(test_sets):
            _pareto_panel(axes[i][j], rows[rows["test_set"] == test_set], metric)
            axes[i][j].set_title(f"{test_set}: Δ{metric_label(metric)} vs cost")
    fig.tight_layout()
    return save_figure(fig, out_png)


def _pareto_panel(ax, rows: pd.DataFrame, metric: str) -> None:
    y, err = rows[f"{metric}_i_mean"], rows[f"{metric}_i_std"].fillna(0.0)
    x = rows["macs_per_s"] / 1e6
    palette = dict(zip(rows["method"].unique(), sns.color_palette("colorblind", rows["method"].nunique())))
    for (_, row), xi, yi, ei in zip(rows.iterrows(), x, y, err):
        ax.errorbar(xi, yi, yerr=ei, fmt="o", color=palette[row["method"]], capsize=3)
        ax.annotate(model_label(row), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    front = _pareto_front(x.to_numpy(), y.to_numpy())
    ax.plot(x.to_numpy()[front], y.to_numpy()[front], "--", color="0.5", linewidth=0.8)
    ax.set(xscale="log", xlabel="MMAC per second of audio (log)", ylabel=f"Δ{metric_label(metric)}")


def _pareto_front(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats on both lower cost and higher quality, by cost."""
    order = np.argsort(cost)
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
    ax_val.legend(fontsize="small", frameon=False)
    sns.despine(fig)
    fig.tight_layout()
    return save_figure(fig, out_png)
