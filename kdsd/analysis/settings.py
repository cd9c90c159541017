"""Analysis settings from the resolved config (its `analysis:` section) and the expected runs."""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, replace

from kdsd.errors import KdsdError

SETTING_KEYS = ("equivalence_margin_db", "min_teacher_gain_db")


@dataclass(frozen=True)
class AnalysisSettings:
    """Defaults equal the schema's (tests/test_stats.py checks that they agree)."""

    equivalence_margin_db: float = 0.2
    min_teacher_gain_db: float = 1.0
    expected_runs: tuple[tuple[str, str, int], ...] = ()  # (scenario, method, seed) from the config

    @classmethod
    def from_config(cls, config: Mapping | None) -> AnalysisSettings:
        """Read `analysis:` (schema defaults where a key is absent) and `students:` of a config."""
        config = config or {}
        analysis = config.get("analysis") or {}
        changes = {}
        for key in SETTING_KEYS:
            if key in analysis:
                value = analysis[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise KdsdError(f"config analysis.{key}: expected a number ≥ 0, got {value!r}")
                changes[key] = float(value)
        return replace(cls(expected_runs=expected_runs(config)), **changes)


def expected_runs(config: Mapping) -> tuple[tuple[str, str, int], ...]:
    """students.scenarios × students.methods × students.seeds; empty when the config names none."""
    students = config.get("students") or {}
    scenarios, methods, seeds = (students.get(k) or () for k in ("scenarios", "methods", "seeds"))
    return tuple(itertools.product(sorted(scenarios), methods, (int(s) for s in seeds)))
