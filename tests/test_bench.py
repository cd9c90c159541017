"""`kdsd bench`: the real loop, its ceiling and inference, measured on this machine (CPU here)."""
import math

import pytest

from kdsd.bench import bench, preset_config, smallest_student
from kdsd.cli import main
from kdsd.errors import KdsdError
from kdsd.models.unet import UNetDAE, count_parameters


def test_smoke_preset_table(capsys):
    rows = bench("smoke", method="cosine", steps=1)
    out = capsys.readouterr().out
    smoke = preset_config("smoke")["students"]
    assert [r["model"] for r in rows] == ["teacher", "student width_1_4 (cosine)", "side by side",
                                          *(f"student {s}" for s in smoke["run_scenarios"])]
    *rows, side, efficiency = rows
    assert side["students"] == len(smoke["methods"]) * len(smoke["run_scenarios"])
    assert side["alone"] > 0 and side["together"] > 0
    assert side["ratio"] == pytest.approx(side["together"] / side["alone"])
    assert "together / alone" in out
    for r in rows:
        for key in ("loop", "ceiling", "inference", "rtf_1thread"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["model"], key)
        assert r["ratio"] == pytest.approx(r["loop"] / r["ceiling"])
        assert r["s_per_10h"] == pytest.approx(36_000 / r["loop"])
    assert rows[0]["params"] > rows[1]["params"]
    # efficiency against the GEMM peak measured on the spot: MACs per CPU second of the student's step
    assert efficiency["params"] == rows[1]["params"] and efficiency["macs_per_step"] > 0
    assert efficiency["macs_per_s"] == pytest.approx(efficiency["macs_per_step"] / (efficiency["cpu_ms_per_step"] / 1000))
    assert efficiency["share_of_peak"] == pytest.approx(efficiency["macs_per_s"] / efficiency["peak_macs_per_s"])
    assert 0 < efficiency["share_of_peak"] < 1.5 and efficiency["peak_macs_per_s"] > 1e9
    assert "preset smoke, CPU" in out and out.count("\n| ") == 5 + 2  # + the efficiency header and scenario


def test_step_macs_count_forward_and_backward_convolutions():
    """A step's multiply-adds: the backward pass of a convolution costs twice its forward (input and
    weight gradients), the first layer's input gradient aside."""
    from kdsd.bench import step_macs
    from kdsd.distill import get_method
    from kdsd.losses import SupervisedLoss
    from kdsd.metrics.cost import count_macs

    method = get_method("none")(UNetDAE(width=2, depth=2), None, SupervisedLoss())
    forward = 2 * count_macs(method.student, seconds=0.5)  # a batch of two half-second crops
    assert 2.5 * forward < step_macs(method, 2, 8000) < 3.0 * forward


def test_smallest_student_has_the_fewest_parameters():
    config = preset_config("paper")
    name, args = smallest_student(config)
    teacher = UNetDAE(**config["teacher"]["model"])
    from kdsd.train.jobs import student_args
    sizes = {n: count_parameters(UNetDAE(**student_args(teacher.args, s)))
             for n, s in config["students"]["scenarios"].items()}
    assert sizes[name] == min(sizes.values()) and name == "width_1_8"


def test_voicebank_paper_preset_has_the_paper_grid_and_seeds():
    voicebank, paper = preset_config("paper_voicebank"), preset_config("paper")
    assert voicebank["corpus"]["source"] == "voicebank"
    assert voicebank["teacher"] == paper["teacher"]
    assert voicebank["students"] == paper["students"]


def test_unknown_preset_is_one_line_naming_it(capsys):
    with pytest.raises(KdsdError, match="nope.yaml: no such preset"):
        preset_config("nope")
    assert main(["bench", "--preset", "nope"]) == 2
    assert capsys.readouterr().err.startswith("kdsd: error: ")


def test_presets_have_the_seeds_the_power_table_asks_for():
    """docs/statistics.md#power: 6 seeds resolve 0.3 dB against `none` at the default run's seed SD,
    10-11 against `sp2step`; the paper presets, with more to hold, take 10."""
    assert len(preset_config("default")["students"]["seeds"]) >= 6
    for preset in ("paper", "paper_voicebank"):
        config = preset_config(preset)
        assert len(config["students"]["seeds"]) >= 10, preset
        assert config["students"]["train_together"] == "scenario_seed", preset
