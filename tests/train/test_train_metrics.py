"""ConfusionMatrix against hand-computed cases (the Cryo-Bench / PANGAEA metric)."""

from __future__ import annotations

import pytest
import torch

from cryotune.errors import DataError
from cryotune.train.metrics import ConfusionMatrix


def _metrics(pred, target, num_classes=2, ignore_index=-1):
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(torch.tensor(pred), torch.tensor(target))
    return cm.compute()


def test_two_class_case_by_hand():
    # target 0 0 0 1 1 1 ; pred 0 0 1 1 1 0
    # class 0: TP 2, FP 1, FN 1 -> IoU 2/4; class 1: TP 2, FP 1, FN 1 -> IoU 2/4
    m = _metrics([[0, 0, 1, 1, 1, 0]], [[0, 0, 0, 1, 1, 1]])
    assert m["iou"] == pytest.approx([50.0, 50.0])
    assert m["miou"] == pytest.approx(50.0)
    assert m["precision"] == pytest.approx([200 / 3, 200 / 3])
    assert m["recall"] == pytest.approx([200 / 3, 200 / 3])
    assert m["f1"] == pytest.approx([200 / 3, 200 / 3])
    assert m["accuracy"] == pytest.approx(400 / 6)
    assert m["pixels"] == 6


def test_asymmetric_precision_and_recall():
    # target: 1 1 1 1 0 0 ; pred: 1 1 0 0 0 0
    # class 1: TP 2, FP 0, FN 2 -> precision 100, recall 50, IoU 50, F1 66.7
    # class 0: TP 2, FP 2, FN 0 -> precision 50, recall 100, IoU 50
    m = _metrics([1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0])
    assert m["precision"] == pytest.approx([50.0, 100.0])
    assert m["recall"] == pytest.approx([100.0, 50.0])
    assert m["f1"] == pytest.approx([200 / 3, 200 / 3])
    assert m["iou"] == pytest.approx([50.0, 50.0])


def test_ignored_pixels_are_left_out():
    m = _metrics([[0, 1, 1, 0]], [[0, 1, -1, -1]])
    assert m["iou"] == pytest.approx([100.0, 100.0])
    assert m["accuracy"] == pytest.approx(100.0)
    assert m["pixels"] == 2


def test_ignore_index_255():
    m = _metrics([0, 5, 2], [0, 255, 2], num_classes=3, ignore_index=255)
    assert m["pixels"] == 2
    assert m["iou"] == pytest.approx([100.0, 0.0, 100.0])


def test_class_absent_from_prediction_and_target_scores_zero_and_counts_in_the_mean():
    # three classes, class 2 appears nowhere: PANGAEA gives it IoU 0 and keeps it in the mean
    m = _metrics([0, 1, 1, 0], [0, 1, 1, 0], num_classes=3)
    assert m["iou"] == pytest.approx([100.0, 100.0, 0.0])
    assert m["miou"] == pytest.approx(200 / 3)
    assert m["f1"][2] == 0.0 and m["precision"][2] == 0.0 and m["recall"][2] == 0.0
    assert m["accuracy"] == pytest.approx(100.0)


def test_class_predicted_but_absent_from_target_gets_zero_iou():
    m = _metrics([0, 2, 2, 0], [0, 0, 0, 0], num_classes=3)
    # class 0: TP 2, FN 2 -> 50; class 2: TP 0, FP 2 -> 0; class 1 absent -> 0
    assert m["iou"] == pytest.approx([50.0, 0.0, 0.0])
    assert m["precision"] == pytest.approx([100.0, 0.0, 0.0])
    assert m["recall"] == pytest.approx([50.0, 0.0, 0.0])


def test_accumulating_batches_equals_one_matrix_over_all_pixels():
    gen = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 4, (6, 9, 7), generator=gen)
    target = torch.randint(-1, 4, (6, 9, 7), generator=gen)
    whole = ConfusionMatrix(4, -1)
    whole.update(pred, target)
    parts = ConfusionMatrix(4, -1)
    for i in range(6):
        parts.update(pred[i : i + 1], target[i : i + 1])
    assert torch.equal(parts.matrix, whole.matrix)
    assert parts.compute() == whole.compute()
    # a batch where class 3 is absent changes nothing for it but the counts it adds
    empty_class = ConfusionMatrix(4, -1)
    empty_class.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long))
    assert empty_class.matrix[3].sum() == 0 and empty_class.matrix[:, 3].sum() == 0


def test_matrix_is_indexed_target_then_prediction():
    cm = ConfusionMatrix(3, -1)
    cm.update(torch.tensor([2, 2, 1]), torch.tensor([0, 0, 1]))
    assert cm.matrix.tolist() == [[0, 0, 2], [0, 1, 0], [0, 0, 0]]


def test_update_from_logits_uses_argmax():
    logits = torch.tensor([[[[3.0, -1.0]], [[0.0, 2.0]]]])  # (1, 2, 1, 2) -> pred [[0, 1]]
    cm = ConfusionMatrix(2, -1)
    cm.update_from_logits(logits, torch.tensor([[[0, 1]]]))
    assert cm.compute()["miou"] == pytest.approx(100.0)


def test_empty_matrix_gives_zeros():
    m = ConfusionMatrix(2, -1).compute()
    assert m["miou"] == 0.0 and m["accuracy"] == 0.0 and m["pixels"] == 0


def test_out_of_range_target_is_a_data_error_naming_the_values():
    cm = ConfusionMatrix(2, -1)
    with pytest.raises(DataError, match=r"\[7\].*0\.\.1"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, 7]))


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix(2, -1).update(torch.zeros(2, 3), torch.zeros(3, 2))


def test_merge_adds_counts():
    a, b = ConfusionMatrix(2, -1), ConfusionMatrix(2, -1)
    a.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    b.update(torch.tensor([1]), torch.tensor([0]))
    a.merge(b)
    assert a.matrix.tolist() == [[1, 1], [0, 1]]


def test_the_confusion_counts_are_indexed_target_then_prediction():
    # target 0 0 0 1 1 ; pred 0 1 1 1 1, one ignored pixel
    m = _metrics([[0, 1, 1, 1, 1, 0]], [[0, 0, 0, 1, 1, -1]])
    assert m["confusion"] == [[1, 2], [0, 2]]
    assert sum(map(sum, m["confusion"])) == m["pixels"]
