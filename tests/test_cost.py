"""Inference cost: MAC counting against hand formulas, scaling laws, real-time factor."""
import numpy as np
import pytest
import torch
from torch import nn

from kdsd.metrics.cost import (_count_macs_on, count_macs, macs_per_second, model_cost,
                               real_time_factor)
from kdsd.models.unet import UNetDAE, count_parameters


def test_conv2d_macs_match_hand_formula():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    h, w = 5, 7
    # out positions × out channels × (in channels × kernel area); the bias is not counted.
    assert _count_macs_on(conv, torch.randn(1, 2, h, w)) == h * w * 3 * 2 * 9


def test_linear_macs_match_hand_formula():
    assert _count_macs_on(nn.Linear(10, 4), torch.randn(6, 10)) == 6 * 10 * 4


def test_unet_macs_scale_with_width_squared():
    ratio = count_macs(UNetDAE(width=8, depth=2)) / count_macs(UNetDAE(width=4, depth=2))
    assert 3.0 < ratio < 4.5


def test_unet_macs_scale_linearly_with_duration():
    model = UNetDAE(width=4, depth=2)
    assert count_macs(model, 10.0) / count_macs(model, 5.0) == pytest.approx(2.0, rel=0.05)


def test_macs_per_second_is_ten_second_count_over_ten():
    model = UNetDAE(width=4, depth=2)
    mps = macs_per_second(model)
    assert mps > 0
    assert mps == count_macs(model, 10.0) / 10.0


def test_counting_keeps_training_flag():
    model = UNetDAE(width=2, depth=2).train()
    count_macs(model, 0.1)
    assert model.training


def test_rtf_for_module_and_callable_and_threads_restored():
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rtf_model = real_time_factor(UNetDAE(width=2, depth=2), seconds=1.0, repeats=2)
        rtf_fn = real_time_factor(lambda x: np.asarray(x) * 0.5, seconds=1.0, repeats=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)
    for rtf in (rtf_model, rtf_fn):
        assert np.isfinite(rtf) and rtf > 0


def test_model_cost_keys():
    model = UNetDAE(width=2, depth=2)
    cost = model_cost(model, repeats=1)
    assert cost["params"] == count_parameters(model)
    assert cost["macs_per_s"] == macs_per_second(model)
    assert cost["rtf_1thread"] > 0
