"""Listening and looking: a few utterances per test set, enhanced by the teacher, the best and
worst student and the external reference denoisers, written as WAVs with their spectrograms
side by side."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever written to files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kdsd import SAMPLE_RATE  # noqa: E402
from kdsd.analysis.stats import HEADLINE, load_scores  # noqa: E402
from kdsd.atomic import atomic_path  # noqa: E402
from kdsd.audio import read_audio, write_audio  # noqa: E402
from kdsd.corpus.manifest import read_manifest  # noqa: E402
from kdsd.enhance import enhance_wave  # noqa: E402
from kdsd.models.io import load_model  # noqa: E402
from kdsd.references import availability, denoise  # noqa: E402

N_FFT, HOP = 512, 128


def pick_utterances(manifest: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` utterances spread over the input SNR range (lowest, …, highest)."""
    ordered = manifest.sort_values(["snr_db", "utt_id"]).reset_index(drop=True)
    picks = np.unique(np.linspace(0, len(ordered) - 1, num=min(n, len(ordered))).round().astype(int))
    return ordered.iloc[picks]


def best_and_worst_students(scores: pd.DataFrame) -> dict[str, str]:
    """Model ids of the students with the highest and lowest mean Δ headline metric."""
    students = scores[scores["kind"] == "student"]
    if students.empty:
        return {}
    means = students.groupby("model")[f"{HEADLINE}_i"].mean().sort_values()
    return {"best_student": means.index[-1], "worst_student": means.index[0]}


def teacher_model(scores: pd.DataFrame) -> str:
    """Model id of the teacher to listen to: the one of the lowest seed (``teacher.per_seed`` trains
    one per student seed; otherwise there is one), or ``teacher`` without teacher scores."""
    teachers = scores[scores["kind"] == "teacher"].sort_values(["seed", "model"])
    return str(teachers["model"].iloc[0]) if len(teachers) else "teacher"


def spectrogram_db(wave: np.ndarray) -> np.ndarray:
    window = np.hanning(N_FFT)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(wave, (0, N_FFT)), N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return 10 * np.log10(power.T + 1e-10)


def draw_spectrogram(ax, wave: np.ndarray) -> None:
    """A dB spectrogram panel on a shared colour scale, so panels compare by eye."""
    ax.imshow(spectrogram_db(wave), origin="lower", aspect="auto", vmin=-100, vmax=0,
              cmap="magma", extent=(0, len(wave) / SAMPLE_RATE, 0, SAMPLE_RATE / 2000))



def write_examples(manifest_path: str | Path, score_paths: list, model_dir: str | Path,
                   out_dir: str | Path, n: int = 3, references: list[str] = ()) -> Path:
    """WAVs ``<utt>_<role>.wav`` and ``spectrograms.png`` under ``out_dir``; returns the figure."""
    manifest_path, model_dir, out_dir = Path(manifest_path), Path(model_dir), Path(out_dir)
    scores = load_scores(score_paths)
    roles = {"teacher": teacher_model(scores), **best_and_worst_students(scores)}
    models = {role: load_model(model_dir / name / "model.pt")[0] for role, name in roles.items()}
    models = {role: (lambda wave, m=model: enhance_wave(m, wave)) for role, model in models.items()}
    for name in references:  # external denoisers that can run here, shown beside ours
        if availability(name)[0]:
            models[name] = lambda wave, name=name: denoise(name, wave)
    picked = pick_utterances(read_manifest(manifest_path), n)
    n_columns = 2 + len(models)  # clean, noisy, then each model's estimate
    fig, axes = plt.subplots(len(picked), n_columns, squeeze=False,
                             figsize=(2.6 * n_columns, 2.2 * len(picked)))
    for i, row in enumerate(picked.itertuples()):
        signals = {"clean": read_audio(manifest_path.parent / row.clean_path),
                   "noisy": read_audio(manifest_path.parent / row.noisy_path)}
        signals.update({role: enhance(signals["noisy"]) for role, enhance in models.items()})
        for j, (role, wave) in enumerate(signals.items()):
            write_audio(out_dir / f"{row.utt_id}_{role}.wav", wave)
            ax = axes[i][j]
            draw_spectrogram(ax, wave)
            name = roles.get(role, "").replace("students/", "")
            title = (f"{role.split('_')[0]}: {name}" if role.endswith("_student")
                     else role if role in ("clean", "noisy", "teacher") else f"{role} (external)")
            ax.set_title(f"{title}\n{row.utt_id} ({row.noise_family}, {row.snr_db:+.1f} dB)"
                         if j == 0 else title, fontsize=7)
            ax.set(xlabel="s" if i == len(picked) - 1 else "", ylabel="kHz" if j == 0 else "")
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    out_png = out_dir / "spectrograms.png"
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    return out_png
