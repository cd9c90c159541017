"""Analysis settings from the resolved config (its `analysis:` section) and the expected runs."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from kdsd.errors import KdsdError
from kdsd.train.groups import run_students

SETTING_KEYS = ("equivalence_margin_db", "min_teacher_gain_db")
TREND_TESTS = ("contrast", "per_seed_slope")


@dataclass(frozen=True)
class PrimarySettings:
    """The pre-registered primary family (`analysis.primary`); defaults equal the schema's."""

    method: str = "cosine"
    baselines: tuple[str, ...] = ("none", "sp2step")
    alpha: float = 0.05  # family-wise, Holm over 2 tests (level, trend) per baseline
    power: float = 0.8  # for the minimum detectable effect and the seeds needed
    target_effect_db: float = 0.3  # the effect the "seeds needed" column is sized for
    # the trend's equivalence margin, in the target's unit (dB the lead changes over the study's
    # compression range) and converted the same way; at most half the target, so "equivalent"
    # can never be printed with the target inside the interval
    trend_equivalence_margin_db: float = 0.15
    trend_test: str = "contrast"

    @classmethod
    def from_config(cls, primary: Mapping) -> PrimarySettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(primary) - known)
        if unknown:
            raise KdsdError(f"config analysis.primary: unknown key {unknown[0]!r}; expected one of {sorted(known)}")
        values = dict(primary)
        for key in ("alpha", "power"):
            if key in values and not _number_in(values[key], 0.0, 1.0):
                raise KdsdError(f"config analysis.primary.{key}: expected a number in (0, 1), got {values[key]!r}")
        for key in ("target_effect_db", "trend_equivalence_margin_db"):
            if key in values and not _number_in(values[key], 0.0, float("inf"), low_open=False):
                raise KdsdError(f"config analysis.primary.{key}: expected a number ≥ 0, got {values[key]!r}")
        target = values.get("target_effect_db", cls.target_effect_db)
        margin = values.get("trend_equivalence_margin_db", cls.trend_equivalence_margin_db)
        if margin > target / 2:
            raise KdsdError(f"config analysis.primary.trend_equivalence_margin_db: expected at most half of "
                            f"analysis.primary.target_effect_db ({target / 2:g}), got {margin!r}")
        if values.get("trend_test", "contrast") not in TREND_TESTS:
            raise KdsdError(f"config analysis.primary.trend_test: expected one of {list(TREND_TESTS)}, "
                            f"got {values['trend_test']!r}")
        if "baselines" in values:
            values["baselines"] = tuple(values["baselines"])
            if not values["baselines"] or values.get("method", cls.method) in values["baselines"]:
                raise KdsdError("config analysis.primary.baselines: expected one or more methods other "
                                f"than analysis.primary.method, got {list(values['baselines'])}")
        return cls(**values)


def _number_in(value, low: float, high: float, low_open: bool = True) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (low < value if low_open else low <= value) and value < high


@dataclass(frozen=True)
class AnalysisSettings:
    """Defaults equal the schema's (tests/test_stats.py checks that they agree)."""

    equivalence_margin_db: float = 0.2
    min_teacher_gain_db: float = 1.0
    primary: PrimarySettings = field(default_factory=PrimarySettings)
    # test sets that answer the transfer question (recorded speech), kept out of the primary family
    transfer_test_sets: tuple[str, ...] = ("test_recorded",)
    expected_runs: tuple[tuple[str, str, int], ...] = ()  # (scenario, method, seed) from the config
    budget_controls: tuple[tuple[str, str], ...] = ()  # (control, method whose budget it matches)

    @classmethod
    def from_config(cls, config: Mapping | None) -> AnalysisSettings:
        """Read `analysis:` (schema defaults where a key is absent) and `students:` of a config."""
        config = config or {}
        analysis = config.get("analysis") or {}
        changes = {}
        for key in SETTING_KEYS:
            if key in analysis:
                value = analysis[key]
                if not _number_in(value, 0.0, float("inf"), low_open=False):
                    raise KdsdError(f"config analysis.{key}: expected a number ≥ 0, got {value!r}")
                changes[key] = float(value)
        if "transfer_test_sets" in analysis:
            changes["transfer_test_sets"] = _names(analysis["transfer_test_sets"], "analysis.transfer_test_sets")
        changes["primary"] = PrimarySettings.from_config(analysis.get("primary") or {})
        controls = budget_controls(config)
        for control, of in controls:
            if control in changes["primary"].baselines:
                raise KdsdError(f"config analysis.primary.baselines: {control!r} is the budget control of {of!r} "
                                f"(kd.{control}.train.epochs_of), not a baseline of the primary family")
        return replace(cls(expected_runs=expected_runs(config), budget_controls=controls), **changes)


def _names(value, key: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise KdsdError(f"config {key}: expected a list of test set names, got {value!r}")
    return tuple(value)


def budget_controls(config: Mapping) -> tuple[tuple[str, str], ...]:
    """(control, method) for every `kd` entry with `train.epochs_of: method`: a variant trained
    for as many optimiser steps as that method, which separates "KD helps" from "more steps help"."""
    kd = config.get("kd") or {}
    return tuple((name, str(entry["train"]["epochs_of"])) for name, entry in kd.items()
                 if isinstance(entry, Mapping) and isinstance(entry.get("train"), Mapping)
                 and entry["train"].get("epochs_of"))


def expected_runs(config: Mapping) -> tuple[tuple[str, str, int], ...]:
    """Every student the config trains (:func:`kdsd.train.groups.run_students`: run scenarios ×
    methods × seeds, restricted by students.method_scenarios); empty when the config names none."""
    students = config.get("students") or {}
    if not all(students.get(k) for k in ("scenarios", "methods", "seeds")):
        return ()
    return tuple(sorted(run_students(students), key=lambda run: run[0]))  # scenarios by name
