"""Training data: manifest pairs held in memory, cut into seeded random crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kdsd.audio import read_pair
from kdsd.corpus.manifest import read_manifest


class PairSet:
    """All (noisy, clean) pairs of one manifest, as float32 arrays of equal length."""

    def __init__(self, manifest_path: str | Path):
        self.path = Path(manifest_path)
        self.table = read_manifest(self.path)
        root = self.path.parent
        self.noisy, self.clean = [], []
        for row in self.table.itertuples():
            clean, noisy = read_pair(root / row.clean_path, root / row.noisy_path)
            self.noisy.append(noisy)
            self.clean.append(clean)

    def __len__(self) -> int:
        return len(self.noisy)

    def seconds(self, sample_rate: int = 16_000) -> float:
        return sum(len(x) for x in self.noisy) / sample_rate

    def batches(self, batch_size: int, segment: int, seed: int, epoch: int):
        """Shuffled batches of random ``segment``-sample crops (zero-padded when shorter).

        The order depends only on (seed, epoch), so a resumed run sees the same data as an
        uninterrupted one without storing any RNG state.
        """
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(self))
        for start in range(0, len(order), batch_size):
            noisy, clean = zip(*(self._crop(i, segment, rng) for i in order[start:start + batch_size]))
            yield torch.from_numpy(np.stack(noisy)), torch.from_numpy(np.stack(clean))

    def _crop(self, index: int, segment: int, rng: np.random.Generator):
        noisy, clean = self.noisy[index], self.clean[index]
        if len(noisy) <= segment:
            pad = segment - len(noisy)
            return np.pad(noisy, (0, pad)), np.pad(clean, (0, pad))
        start = int(rng.integers(0, len(noisy) - segment + 1))
        return noisy[start:start + segment], clean[start:start + segment]
