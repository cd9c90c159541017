"""The device path of the training loop, checked on CPU: the same code runs on CUDA."""
import numpy as np
import pytest
import torch

from kdsd.distill import get_method
from kdsd.models.unet import UNetDAE
from kdsd.train.data import PairSet
from kdsd.train.jobs import student_args
from kdsd.train.loop import prepare_device, validate
from kdsd.losses import SupervisedLoss

SR = 16_000


def _pairs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    t = [np.arange(n) / SR for n in lengths]
    clean = [(0.3 * np.sin(2 * np.pi * 220 * x)).astype(np.float32) for x in t]
    noisy = [c + 0.1 * rng.standard_normal(len(c)).astype(np.float32) for c in clean]
    return PairSet.from_arrays(noisy, clean)


def test_batched_validation_matches_one_utterance_at_a_time():
    """Padding only changes the last STFT frames of the shorter members of a batch."""
    torch.manual_seed(0)
    model = UNetDAE(width=4, depth=2)
    valid = _pairs([8000, 16000, 12345, 20000, 9000], seed=1)
    one_by_one = validate(model, valid, torch.device("cpu"), batch_size=1)
    batched = validate(model, valid, torch.device("cpu"), batch_size=3)
    assert batched == pytest.approx(one_by_one, abs=0.05)
    assert batched != one_by_one or len({len(x) for x in valid.noisy}) == 1


def test_batches_are_crops_of_the_corpus_zero_padded_when_short():
    pairs = _pairs([5000, 20000, 30000, 16000, 7000], seed=2)
    batches = list(pairs.batches(batch_size=2, segment=16000, seed=4, epoch=1))
    assert [tuple(n.shape) for n, _ in batches] == [(2, 16000), (2, 16000), (1, 16000)]
    again = list(pairs.batches(batch_size=2, segment=16000, seed=4, epoch=1))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    whole = [np.concatenate([n, np.zeros(16000, np.float32)]) for n in pairs.noisy]
    for noisy, _ in batches:
        for row in noisy.numpy():
            # every row is a contiguous slice of one utterance (followed by zeros if short)
            assert any(_is_slice(row, w) for w in whole)
    other_epoch = next(pairs.batches(batch_size=2, segment=16000, seed=4, epoch=2))[0]
    assert not torch.equal(other_epoch, batches[0][0])


def _is_slice(row, whole):
    starts = np.flatnonzero(whole[: len(whole) - len(row) + 1] == row[0])
    return any(np.array_equal(whole[s:s + len(row)], row) for s in starts)


def test_compile_switch_keeps_checkpoint_keys():
    torch.manual_seed(0)
    teacher = UNetDAE(width=4, depth=2)
    student = UNetDAE(**student_args(teacher.args, {"width_ratio": 0.5}))
    method = get_method("cosine")(student, teacher, SupervisedLoss())
    keys = set(method.trainable_state())
    prepare_device(method, torch.device("cpu"), compile_models=True)
    assert set(method.trainable_state()) == keys  # compiled in place: checkpoints stay loadable
    assert set(method.student.state_dict()) == set(UNetDAE(**student.args).state_dict())
