"""The embedded synthetic corpus: TTS speech + procedural noise mixed at set SNRs.

Deterministic from one seed: utterance ``i`` of split ``s`` draws everything (speaker, sentence
order, noise family, noise seed, SNR) from its own generator seeded by (corpus seed, split, i),
so the corpus is bit-identical whatever the number of worker processes.

Splits and what makes each one differ from training (DESIGN §2.1):

=============  ================  ======================  ==============  ==========
split          speakers          noise families          SNR (dB)        room
=============  ================  ======================  ==============  ==========
train, valid   ``train`` pool    ``train_noises``        ``snr_db``      dry
test_matched   ``test`` pool     ``train_noises``        ``snr_db``      dry
test_noise     ``test`` pool     ``test_only_noises``    ``snr_db``      dry
test_snr       ``test`` pool     ``train_noises``        ``test_snr_db`` dry
test_reverb    ``test`` pool     ``train_noises``        ``snr_db``      synthetic RIR
test_speaker   ``test_speaker``  ``train_noises``        ``snr_db``      dry
=============  ================  ======================  ==============  ==========

Sentences are disjoint between splits. In ``test_reverb`` speech and noise are convolved with
two RIRs of one room (two source positions), and the clean reference is the *reverberant*
speech: the task stays denoising, the mismatch is the room.

Hygiene: speech is DC-free and normalised to ``speech_level_dbfs`` RMS (after the room, in
test_reverb); the noise is scaled to the drawn SNR exactly; a mixture that would clip is scaled
down together with its clean reference, which keeps the recorded SNR exact.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdsd import SAMPLE_RATE
from kdsd.audio import write_audio
from kdsd.corpus.build import map_jobs, staged_dir
from kdsd.corpus.manifest import write_manifest
from kdsd.corpus.mixing import mix_at_snr, normalise_speech
from kdsd.corpus.noise import make_noise
from kdsd.corpus.rir import describe, draw_room, make_rir, measure_drr, reverberate
from kdsd.corpus.sources import check_ranges
from kdsd.corpus.speakers import Speaker, speakers_in
from kdsd.corpus.text import sentences, split_sentences
from kdsd.corpus.tts import synthesize
from kdsd.errors import KdsdError

SPLITS = ("train", "valid", "test_matched", "test_noise", "test_snr", "test_reverb", "test_speaker")
TEST_SPLITS = tuple(s for s in SPLITS if s.startswith("test_"))


@dataclass(frozen=True)
class SplitPlan:
    """What one split is made of (derived from the config)."""
    name: str
    n_utterances: int
    speaker_pool: str
    families: tuple[str, ...]
    snr_range: tuple[float, float]
    reverb: bool = False

    @property
    def babble_pool(self) -> str:
        """Babble talkers come from train speakers for training, test speakers for every test
        set (test_speaker too: there only the target voice is out of distribution)."""
        return "train" if self.speaker_pool == "train" else "test"


def split_plans(corpus: dict) -> dict[str, SplitPlan]:
    train_fams, test_fams = tuple(corpus["train_noises"]), tuple(corpus["test_only_noises"])
    overlap = set(train_fams) & set(test_fams)
    if overlap:
        raise KdsdError(f"config corpus: noise families both in training and test-only: {sorted(overlap)}")
    check_ranges(corpus)
    snr, low_snr = tuple(corpus["snr_db"]), tuple(corpus["test_snr_db"])
    if low_snr[1] > snr[0]:
        raise KdsdError(f"config corpus.test_snr_db {list(low_snr)} must lie below the training "
                        f"range snr_db {list(snr)}")
    n = corpus["utterances"]
    return {
        "train": SplitPlan("train", n["train"], "train", train_fams, snr),
        "valid": SplitPlan("valid", n["valid"], "train", train_fams, snr),
        "test_matched": SplitPlan("test_matched", n["test_matched"], "test", train_fams, snr),
        "test_noise": SplitPlan("test_noise", n["test_noise"], "test", test_fams, snr),
        "test_snr": SplitPlan("test_snr", n["test_snr"], "test", train_fams, low_snr),
        "test_reverb": SplitPlan("test_reverb", n["test_reverb"], "test", train_fams, snr, reverb=True),
        "test_speaker": SplitPlan("test_speaker", n["test_speaker"], "test_speaker", train_fams, snr),
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


def _babble_bank(plan: SplitPlan, texts: list[str], corpus: dict) -> list[np.ndarray]:
    talkers = speakers_in(plan.babble_pool)
    return [normalise_speech(synthesize(talkers[i % len(talkers)].voice, text), -25.0)
            for i, text in enumerate(texts)]


def _make_utterance(job) -> dict:
    plan, index, text, speaker, corpus, babble, out_dir = job
    rng = np.random.default_rng([_split_seed(corpus["seed"], plan.name), index])
    family = plan.families[int(rng.integers(len(plan.families)))]
    noise_seed = int(rng.integers(2**31))
    snr_db = round(float(rng.uniform(*plan.snr_range)), 2)
    speech = synthesize(speaker.voice, text)
    noise = make_noise(family, len(speech), SAMPLE_RATE, noise_seed, babble)
    room = ""
    if plan.reverb:
        drawn = draw_room(rng, tuple(corpus["rt60_s"]))
        rir_seed = int(rng.integers(2**31))
        speech_rir = make_rir(drawn, rir_seed, SAMPLE_RATE, "speech")
        speech = reverberate(speech, speech_rir)
        noise = reverberate(noise, make_rir(drawn, rir_seed, SAMPLE_RATE, "noise"))
        room = describe(drawn, measure_drr(speech_rir))
    speech = normalise_speech(speech, corpus["speech_level_dbfs"])
    clean, noisy = mix_at_snr(speech, noise, snr_db)
    utt_id = f"{plan.name}_{index:05d}"
    write_audio(out_dir / "clean" / f"{utt_id}.wav", clean)
    write_audio(out_dir / "noisy" / f"{utt_id}.wav", noisy)
    return {"utt_id": utt_id, "split": plan.name, "clean_path": f"clean/{utt_id}.wav",
            "noisy_path": f"noisy/{utt_id}.wav", "speaker": speaker.speaker_id,
            "engine": speaker.voice.engine, "text": text, "noise_family": family,
            "noise_seed": noise_seed, "snr_db": snr_db, "rir": room, "duration_s": round(len(clean) / SAMPLE_RATE, 4),
            "sample_rate": SAMPLE_RATE}


def splits(corpus: dict) -> tuple[str, ...]:
    """Every split this source provides (the same for any config)."""
    return SPLITS


def check_layout(corpus: dict) -> None:
    """Nothing on disk to check; the plans validate the config's ranges and families."""
    split_plans(corpus)


def build_split(corpus: dict, split: str, out_dir: str | Path, workers: int = 1) -> Path:
    """Write ``<out_dir>/{clean,noisy}/*.wav`` and ``<out_dir>/manifest.csv`` for one split."""
    plans = split_plans(corpus)
    if split not in plans:
        raise KdsdError(f"unknown split {split!r}; valid: {', '.join(plans)}")
    plan, out_dir = plans[split], Path(out_dir)
    texts = _sentence_pools(corpus, plans)
    babble_texts = texts["babble"][SPLITS.index(split) * corpus["babble_talkers"]:][:corpus["babble_talkers"]]
    babble = _babble_bank(plan, babble_texts, corpus) if "babble" in plan.families else []
    talkers: list[Speaker] = speakers_in(plan.speaker_pool)
    with staged_dir(out_dir) as tmp:  # a failed build leaves no partial split behind
        jobs = [(plan, i, text, talkers[i % len(talkers)], corpus, babble, tmp)
                for i, text in enumerate(texts[split])]
        write_manifest(map_jobs(_make_utterance, jobs, workers), tmp / "manifest.csv")
    return out_dir / "manifest.csv"
