"""The embedded synthetic corpus: TTS speech + procedural noise mixed at set SNRs.

Deterministic from one seed: utterance ``i`` of split ``s`` draws everything (speaker, sentence
order, noise family, noise seed, SNR) from its own generator seeded by (corpus seed, split, i),
so the corpus is bit-identical whatever the number of worker processes.

Hygiene: speech is DC-free and normalised to ``speech_level_dbfs`` RMS; the noise is scaled
to the drawn SNR exactly; a mixture that would clip is scaled down together with its clean
reference, which keeps the recorded SNR exact.
"""
from __future__ import annotations

import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdsd import SAMPLE_RATE
from kdsd.audio import write_audio
from kdsd.corpus.manifest import write_manifest
from kdsd.corpus.noise import make_noise
from kdsd.corpus.speakers import Speaker, speakers_in
from kdsd.corpus.text import sentences, split_sentences
from kdsd.corpus.tts import synthesize
from kdsd.errors import KdsdError

SPLITS = ("train", "valid", "test_matched", "test_noise")
PEAK_LIMIT = 0.99


@dataclass(frozen=True)
class SplitPlan:
    """What one split is made of (derived from the config)."""
    name: str
    n_utterances: int
    speaker_pool: str
    families: tuple[str, ...]
    snr_range: tuple[float, float]


def split_plans(corpus: dict) -> dict[str, SplitPlan]:
    train_fams, test_fams = tuple(corpus["train_noises"]), tuple(corpus["test_only_noises"])
    overlap = set(train_fams) & set(test_fams)
    if overlap:
        raise KdsdError(f"config corpus: noise families both in training and test-only: {sorted(overlap)}")
    snr = tuple(corpus["snr_db"])
    n = corpus["utterances"]
    return {
        "train": SplitPlan("train", n["train"], "train", train_fams, snr),
        "valid": SplitPlan("valid", n["valid"], "train", train_fams, snr),
        "test_matched": SplitPlan("test_matched", n["test_matched"], "test", train_fams, snr),
        "test_noise": SplitPlan("test_noise", n["test_noise"], "test", test_fams, snr),
    }


def _split_seed(corpus_seed: int, split: str) -> int:
    return zlib.crc32(f"{corpus_seed}:{split}".encode())


def _sentence_pools(corpus: dict, plans: dict[str, SplitPlan]) -> dict[str, list[str]]:
    """Disjoint sentence lists per split (plus one for babble talkers)."""
    need = {name: plan.n_utterances for name, plan in plans.items()}
    need["babble"] = corpus["babble_talkers"] * len(plans)
    total = sum(need.values())
    # Draw a margin so rounding of the fractions never leaves a split short.
    pool = sentences(int(total * 1.1) + 2 * len(need), corpus["seed"])
    parts = split_sentences(pool, {k: v / total for k, v in need.items()}, corpus["seed"])
    return {k: parts[k][:n] for k, n in need.items()}


def _normalise_speech(wave: np.ndarray, level_dbfs: float) -> np.ndarray:
    wave = wave - wave.mean()
    rms = np.sqrt(np.mean(wave**2))
    if rms == 0:
        raise KdsdError("TTS produced silence")
    return (wave * (10 ** (level_dbfs / 20) / rms)).astype(np.float32)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) with ``noise`` scaled so the SNR is exactly ``snr_db``; peak ≤ PEAK_LIMIT."""
    gain = np.sqrt(np.mean(speech**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    noisy = speech + gain * noise
    peak = np.max(np.abs(noisy))
    scale = PEAK_LIMIT / peak if peak > PEAK_LIMIT else 1.0
    return (speech * scale).astype(np.float32), (noisy * scale).astype(np.float32)


def _babble_bank(plan: SplitPlan, texts: list[str], corpus: dict) -> list[np.ndarray]:
    talkers = speakers_in(plan.speaker_pool)
    return [_normalise_speech(synthesize(talkers[i % len(talkers)].voice, text), -25.0)
            for i, text in enumerate(texts)]


def _make_utterance(job) -> dict:
    plan, index, text, speaker, corpus, babble, out_dir = job
    rng = np.random.default_rng([_split_seed(corpus["seed"], plan.name), index])
    family = plan.families[int(rng.integers(len(plan.families)))]
    noise_seed = int(rng.integers(2**31))
    snr_db = round(float(rng.uniform(*plan.snr_range)), 2)
    speech = _normalise_speech(synthesize(speaker.voice, text), corpus["speech_level_dbfs"])
    noise = make_noise(family, len(speech), SAMPLE_RATE, noise_seed, babble)
    clean, noisy = mix_at_snr(speech, noise, snr_db)
    utt_id = f"{plan.name}_{index:05d}"
    write_audio(out_dir / "clean" / f"{utt_id}.wav", clean)
    write_audio(out_dir / "noisy" / f"{utt_id}.wav", noisy)
    return {"utt_id": utt_id, "split": plan.name, "clean_path": f"clean/{utt_id}.wav",
            "noisy_path": f"noisy/{utt_id}.wav", "speaker": speaker.speaker_id,
            "engine": speaker.voice.engine, "text": text, "noise_family": family,
            "noise_seed": noise_seed, "snr_db": snr_db, "rir": "", "duration_s": round(len(clean) / SAMPLE_RATE, 4),
            "sample_rate": SAMPLE_RATE}


def synthesize_split(corpus: dict, split: str, out_dir: str | Path, workers: int = 1) -> Path:
    """Write ``<out_dir>/{clean,noisy}/*.wav`` and ``<out_dir>/manifest.csv`` for one split."""
    plans = split_plans(corpus)
    if split not in plans:
        raise KdsdError(f"unknown split {split!r}; valid: {', '.join(plans)}")
    plan, out_dir = plans[split], Path(out_dir)
    texts = _sentence_pools(corpus, plans)
    babble_texts = texts["babble"][SPLITS.index(split) * corpus["babble_talkers"]:][:corpus["babble_talkers"]]
    babble = _babble_bank(plan, babble_texts, corpus) if "babble" in plan.families else []
    talkers: list[Speaker] = speakers_in(plan.speaker_pool)
    jobs = [(plan, i, text, talkers[i % len(talkers)], corpus, babble, out_dir)
            for i, text in enumerate(texts[split])]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(_make_utterance, jobs, chunksize=4))
    else:
        rows = [_make_utterance(job) for job in jobs]
    return write_manifest(rows, out_dir / "manifest.csv")
