"""ConfusionMatrix, its scores, the SCLMeanIoU evaluate wrapper, and the 2-process all-reduce (gloo)."""

from __future__ import annotations

import math
import socket
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import dist_worker
from sclseg.evaluation import ConfusionMatrix, SCLMeanIoU, confusion_matrix, metrics, scores_from_confusion


def test_confusion_matrix_hand_counted():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    expected = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 2]])  # rows ground truth, columns prediction
    assert torch.equal(confusion_matrix(pred, target, 3), expected)


def test_scores_hand_computed():
    # rows ground truth, columns prediction
    matrix = torch.tensor([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    scores = scores_from_confusion(matrix)
    # class 0: TP 3, FN 1, FP 2 → 3/6; class 1: TP 4, FN 2, FP 1 → 4/7; class 2 absent from both → NaN
    assert scores["per_class_iou"][:2] == pytest.approx([3 / 6, 4 / 7])
    assert math.isnan(scores["per_class_iou"][2])
    assert scores["mean_iou"] == pytest.approx((3 / 6 + 4 / 7) / 2)
    assert scores["pixel_accuracy"] == pytest.approx(7 / 10)
    assert scores["per_class_accuracy"][:2] == pytest.approx([3 / 4, 4 / 6])
    assert scores["mean_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)


def test_class_only_predicted_counts_in_the_mean():
    # class 2 never in the ground truth but predicted twice: IoU 0, counted in the mean; accuracy NaN for it
    matrix = torch.tensor([[2, 0, 1], [0, 3, 1], [0, 0, 0]])
    scores = scores_from_confusion(matrix)
    assert scores["per_class_iou"] == pytest.approx([2 / 3, 3 / 4, 0.0])
    assert scores["mean_iou"] == pytest.approx((2 / 3 + 3 / 4 + 0) / 3)
    assert math.isnan(scores["per_class_accuracy"][2])
    assert scores["mean_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)


def test_empty_matrix_gives_nans():
    scores = ConfusionMatrix(4).compute()
    assert math.isnan(scores["mean_iou"]) and math.isnan(scores["pixel_accuracy"])
    assert len(scores["per_class_iou"]) == 4


@pytest.mark.parametrize("ignore_index", [255, 19])
def test_ignored_pixels_are_left_out(ignore_index):
    target = torch.tensor([0, 1, ignore_index, -100, 1])
    pred = torch.tensor([0, 1, 7, 250, 0])  # predictions at ignored pixels may be anything, even out of range
    cm = ConfusionMatrix(3, ignore_index=ignore_index)
    cm.update(pred, target)
    assert torch.equal(cm.matrix, torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0]]))
    assert cm.compute()["pixel_accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "pred, target, match",
    [
        (torch.tensor([0, 3]), torch.tensor([0, 1]), "pred has values outside"),
        (torch.tensor([0, 1]), torch.tensor([0, 5]), "target has values outside"),
        (torch.tensor([0, -1]), torch.tensor([0, 1]), "pred has values outside"),
        (torch.tensor([0, 1]), torch.tensor([0, 1, 2]), "same shape"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), "integer"),
    ],
)
def test_bad_inputs(pred, target, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(pred, target, 3)


def test_accumulates_over_batches_and_resets():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 6, (4, 9, 11), generator=g)
    pred = torch.randint(0, 6, (4, 9, 11), generator=g)
    whole = confusion_matrix(pred, target, 6)
    cm = ConfusionMatrix(6)
    for p, t in zip(pred, target):
        cm.update(p, t)
    assert torch.equal(cm.matrix, whole) and int(whole.sum()) == 4 * 9 * 11
    cm.all_reduce()  # not initialised: a no-op
    assert torch.equal(cm.matrix, whole)
    cm.reset()
    assert cm.matrix is None or int(cm.matrix.sum()) == 0
    assert math.isnan(cm.compute()["mean_iou"])


def test_matches_a_direct_count():
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 5, (3, 16, 16), generator=g)
    target[:, :2] = 255
    pred = torch.randint(0, 5, (3, 16, 16), generator=g)
    scores = scores_from_confusion(confusion_matrix(pred, target, 5))
    kept = target != 255
    for c in range(5):
        inter = ((pred == c) & (target == c) & kept).sum().item()
        union = (((pred == c) | (target == c)) & kept).sum().item()
        assert scores["per_class_iou"][c] == pytest.approx(inter / union)


def test_evaluate_wrapper_gives_the_same_numbers(tmp_path):
    g = torch.Generator().manual_seed(2)
    refs = [torch.randint(0, 4, (7, 9), generator=g), torch.randint(0, 4, (5, 6), generator=g)]
    refs[0][0] = 255
    refs[1][:, 0] = -100
    preds = [torch.randint(0, 4, r.shape, generator=g) for r in refs]
    cm = ConfusionMatrix(4)
    for p, r in zip(preds, refs):
        cm.update(p, r)
    metric = SCLMeanIoU(keep_in_memory=True)
    metric.add_batch(predictions=[preds[0].numpy()], references=[refs[0].numpy()])
    metric.add(prediction=preds[1].numpy(), reference=refs[1].numpy())
    result = metric.compute(num_labels=4, ignore_index=255)
    expected = cm.compute()
    assert result.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(result[key], value, rtol=1e-12)


def test_evaluate_wrapper_needs_num_labels():
    with pytest.raises(ValueError, match="num_labels"):
        SCLMeanIoU(keep_in_memory=True).compute(predictions=[np.zeros((2, 2), int)],
                                                references=[np.zeros((2, 2), int)])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_all_reduce_equals_one_process(tmp_path):
    g = torch.Generator().manual_seed(3)
    target = torch.randint(0, 5, (4, 12, 10), generator=g)
    target[0, 0] = 255
    pred = torch.randint(0, 5, (4, 12, 10), generator=g)
    single = ConfusionMatrix(5)
    single.update(pred, target)
    out = str(tmp_path / "matrix.pt")
    args = (_free_port(), metrics.__file__, pred, target, 5, out)
    context = mp.spawn(dist_worker.reduce_worker, args=args, nprocs=2, join=False)
    deadline = time.monotonic() + 120  # typically ~10 s: two processes importing torch on a shared CPU
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail("2-process all-reduce did not finish in 120 s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    reduced = torch.load(out)
    assert torch.equal(reduced, single.matrix)
