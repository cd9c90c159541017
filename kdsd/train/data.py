"""Training data: manifest pairs held in memory, cut into seeded random crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kdsd.audio import read_pair
from kdsd.corpus.manifest import read_manifest
from kdsd.distill.base import SHARED_STREAM


class PairSet:
    """All (noisy, clean) pairs of one manifest, as float32 arrays of equal length."""

    def __init__(self, manifest_path: str | Path):
        self.path = Path(manifest_path)
        self.table = read_manifest(self.path)
        root = self.path.parent
        self.noisy, self.clean = [], []
        self._tensors: dict[bool, tuple] = {}
        for row in self.table.itertuples():
            clean, noisy = read_pair(root / row.clean_path, root / row.noisy_path)
            self.noisy.append(noisy)
            self.clean.append(clean)

    @classmethod
    def from_arrays(cls, noisy: list[np.ndarray], clean: list[np.ndarray]) -> "PairSet":
        """Pairs already in memory (benchmarks): float32 1-D arrays, pairwise of equal length."""
        pairs = cls.__new__(cls)
        pairs.path, pairs.table = None, None
        pairs.noisy, pairs.clean = list(noisy), list(clean)
        pairs._tensors = {}
        return pairs

    def first(self, count: int | None) -> "PairSet":
        """The first ``count`` pairs, in manifest order (all of them when None or more)."""
        if count is None or count >= len(self):
            return self
        subset = PairSet.from_arrays(self.noisy[:count], self.clean[:count])
        subset.path, subset.table = self.path, self.table.iloc[:count]
        return subset

    def __len__(self) -> int:
        return len(self.noisy)

    def seconds(self, sample_rate: int = 16_000) -> float:
        return sum(len(x) for x in self.noisy) / sample_rate

    def batches(self, batch_size: int, segment: int, seed: int, epoch: int, pin_memory: bool = False,
                stream: int = SHARED_STREAM):
        """Shuffled batches ``(noisy, clean)``, each ``(B, segment)``, of random crops (zero-padded
        when an utterance is shorter than ``segment``).

        The order depends only on (seed, stream, epoch), so a resumed run sees the same data as an
        uninterrupted one without storing any RNG state. Crops are gathered from the corpus held
        as tensors; ``pin_memory`` puts corpus and batches in page-locked memory, so that a
        ``.to("cuda", non_blocking=True)`` copy overlaps with the GPU's work.
        """
        noisy_all, clean_all = self.tensors(pin_memory)
        rng = np.random.default_rng([seed, epoch] if stream == SHARED_STREAM else [seed, epoch, stream])
        order = rng.permutation(len(self))
        for first in range(0, len(order), batch_size):
            picks = order[first:first + batch_size]
            noisy = torch.zeros((len(picks), segment), pin_memory=pin_memory)
            clean = torch.zeros((len(picks), segment), pin_memory=pin_memory)
            for row, index in enumerate(picks):
                start, length = self._crop(index, segment, rng)
                noisy[row, :length] = noisy_all[index][start:start + length]
                clean[row, :length] = clean_all[index][start:start + length]
            yield noisy, clean

    def tensors(self, pin_memory: bool = False) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The corpus as tensors (sharing memory with the arrays, or pinned copies, made once)."""
        if self._tensors.get(pin_memory) is None:
            as_tensor = (lambda a: torch.from_numpy(a).pin_memory()) if pin_memory else torch.from_numpy
            self._tensors[pin_memory] = ([as_tensor(a) for a in self.noisy],
                                         [as_tensor(a) for a in self.clean])
        return self._tensors[pin_memory]

    def _crop(self, index: int, segment: int, rng: np.random.Generator) -> tuple[int, int]:
        """Start and length of a random ``segment``-sample crop of one utterance."""
        samples = len(self.noisy[index])
        if samples <= segment:
            return 0, samples
        return int(rng.integers(0, samples - segment + 1)), segment
