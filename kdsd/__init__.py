"""kdsd: a reproducible benchmark for knowledge distillation in speech denoising."""
from __future__ import annotations

__version__ = "0.1.0"
SAMPLE_RATE = 16_000
