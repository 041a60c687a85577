"""Part mIOU and mIOU by person size: hand cases, torchmetrics, brute force, properties."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.functional.classification import (multiclass_confusion_matrix,
                                                    multiclass_jaccard_index)

import brute_force_metrics as bf
from pascal_person_pose.metrics.parts import (PartIoU, PartIoUBySize, confusion_matrix,
                                              iou_from_confusion)
from pascal_person_pose.schema import PART_NAMES, SIZE_THRESHOLDS


def random_maps(rng, h=24, w=32, persons=4):
    """GT part map (with ignore pixels), prediction and an instance map of overlapping blobs."""
    gt = rng.integers(0, 7, (h, w)).astype(np.uint8)
    gt[rng.uniform(size=(h, w)) < 0.1] = 255
    pred = np.where(rng.uniform(size=(h, w)) < 0.6, gt, rng.integers(0, 7, (h, w)))
    pred = np.where(pred == 255, 0, pred).astype(np.uint8)
    instances = np.zeros((h, w), np.uint8)
    for person in range(1, persons + 1):  # later persons paint over earlier ones
        r, c = rng.integers(0, h), rng.integers(0, w)
        dr, dc = rng.integers(1, h // 2), rng.integers(1, w // 2)
        blob = rng.uniform(size=(min(dr, h - r), min(dc, w - c))) < 0.8
        instances[r:r + blob.shape[0], c:c + blob.shape[1]][blob] = person
    return gt, pred, instances


# --- confusion matrix and mIOU ------------------------------------------------------------

def test_confusion_and_iou_by_hand():
    gt = np.array([[0, 1], [255, 2]], np.uint8)
    pred = np.array([[0, 2], [5, 2]], np.uint8)  # the 5 lies on an ignored pixel
    cm = confusion_matrix(gt, pred)
    expected = np.zeros((7, 7), np.int64)
    expected[0, 0] = expected[1, 2] = expected[2, 2] = 1
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    iou = iou_from_confusion(cm)
    np.testing.assert_array_equal(iou[:3], [1.0, 0.0, 0.5])
    assert np.isnan(iou[3:]).all()  # TP + FP + FN = 0: undefined

    metric = PartIoU()
    metric.update(gt, pred)
    result = metric.result()
    assert result["per_class"] == {"background": 100.0, "head": 0.0, "torso": 50.0,
                                   "upper_arm": None, "lower_arm": None, "upper_leg": None,
                                   "lower_leg": None}
    assert result["miou"] == pytest.approx(50.0)
    assert result["params"] == {"ignore": 255}


def test_accumulates_pixels_not_per_image_means():
    metric = PartIoU()
    metric.update(np.ones((1, 9), np.uint8), np.ones((1, 9), np.uint8))  # 9 correct head px
    metric.update(np.ones((1, 1), np.uint8), np.zeros((1, 1), np.uint8))  # 1 missed
    # Head: 9 / 10 over the split (a mean of image IoUs would give 1/2); background: 0 / 1.
    assert metric.result()["per_class"]["head"] == pytest.approx(90.0)
    assert metric.result()["miou"] == pytest.approx(45.0)


def test_all_ignored_gives_null():
    metric = PartIoU()
    metric.update(np.full((3, 3), 255, np.uint8), np.zeros((3, 3), np.uint8))
    assert metric.result()["miou"] is None


@pytest.mark.parametrize("gt, pred, message", [
    (np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), "differ in shape"),
    (np.zeros((2, 2), np.uint8), np.full((2, 2), 7, np.uint8), "outside 0-6"),
    (np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8), "outside 0-6"),
    (np.full((2, 2), 9, np.uint8), np.zeros((2, 2), np.uint8), "GT map holds"),
    (np.zeros((2, 2), np.int16), np.full((2, 2), -1, np.int16), "prediction holds values"),
    (np.zeros((2, 2), np.int64), np.full((2, 2), 3, np.int64), None),
    (np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8), "integer label ids"),
])
def test_bad_maps_are_refused(gt, pred, message):
    if message is None:  # any integer type holding label ids is fine
        assert confusion_matrix(gt, pred)[0, 3] == 4
        return
    with pytest.raises(ValueError, match=message):
        confusion_matrix(gt, pred)


def test_ignore_may_be_a_class_id():
    gt = np.array([[0, 0, 1]], np.uint8)
    pred = np.array([[1, 0, 1]], np.uint8)
    cm = confusion_matrix(gt, pred, ignore=0)
    assert cm.sum() == 1 and cm[1, 1] == 1
    with pytest.raises(ValueError, match="8-bit"):
        confusion_matrix(gt, pred, ignore=300)


@pytest.mark.parametrize("seed", range(10))
def test_agrees_with_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    metric = PartIoU()
    gts, preds = [], []
    for _ in range(3):
        gt, pred, _ = random_maps(rng, h=int(rng.integers(5, 40)), w=int(rng.integers(5, 40)))
        if seed % 2:  # leave some classes out entirely
            gt[gt == 4] = 0
            pred[pred == 4] = 0
        metric.update(gt, pred)
        gts.append(torch.from_numpy(gt.ravel().astype(np.int64)))
        preds.append(torch.from_numpy(pred.ravel().astype(np.int64)))
    target, prediction = torch.cat(gts), torch.cat(preds)
    cm = multiclass_confusion_matrix(prediction, target, num_classes=7, ignore_index=255)
    np.testing.assert_array_equal(metric.confusion, cm.numpy())
    expected = multiclass_jaccard_index(prediction, target, num_classes=7, average=None,
                                        ignore_index=255).numpy()
    ours = iou_from_confusion(metric.confusion)
    defined = ~np.isnan(ours)
    assert defined.sum() >= 6
    np.testing.assert_allclose(ours[defined], expected[defined], rtol=1e-6)
    assert metric.result()["miou"] == pytest.approx(100 * expected[defined].mean(), rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_perfect_prediction_scores_100(seed):
    gt, _, instances = random_maps(np.random.default_rng(seed))
    perfect = np.where(gt == 255, 3, gt)
    overall, by_size = PartIoU(), PartIoUBySize()
    overall.update(gt, perfect)
    by_size.update(gt, perfect, instances)
    assert overall.result()["miou"] == pytest.approx(100.0)
    result = by_size.result()
    for name, count in result["counts"].items():
        if count:  # None only when every pixel of the bucket's regions is ignored
            assert result[name] is None or result[name] == pytest.approx(100.0)
        else:
            assert result[name] is None


# --- by person size -----------------------------------------------------------------------

def hand_scene():
    """10x10 image: person 1 one pixel, person 2 four pixels, person 3 thirty-one pixels."""
    instances = np.zeros((10, 10), np.uint8)
    instances[0, 0] = 1
    instances[2, 2:5] = 2
    instances[3, 2] = 2
    instances[5:, :6] = 3
    instances[3, 4] = 3  # inside person 2's box, and stretches person 3's box to row 3
    gt = np.where(instances > 0, 1, 0).astype(np.uint8)
    return gt, instances


def test_by_size_by_hand():
    gt, instances = hand_scene()
    gt[4, 0] = 255
    pred = gt.copy()
    pred[4, 0] = 0
    pred[3, 3] = 2  # a background pixel inside both person 2's and person 3's boxes
    metric = PartIoUBySize(thresholds=(0.02, 0.1, 0.3))  # XS < 2 px <= S < 10 <= M < 30 <= L
    metric.update(gt, pred, instances)
    # XS: person 1's 1-pixel box. S: person 2's 2x3 box minus person 3's pixel (3, 4).
    # L: person 3's 7x6 box (rows 3-9, columns 0-5) minus person 2's pixel (3, 2) and the
    # ignored pixel (4, 0): 31 person pixels and 9 background pixels.
    assert metric.confusion[0].sum() == 1
    assert metric.confusion[1].sum() == 5 and metric.confusion[1][1, 1] == 4
    assert metric.confusion[2].sum() == 0
    assert metric.confusion[3].sum() == 40 and metric.confusion[3][1, 1] == 31
    result = metric.result()
    assert result["XS"] == 100.0
    assert result["S"] == pytest.approx(100 / 3)  # background 0, head 1, torso 0
    assert result["M"] is None
    assert result["L"] == pytest.approx(100 * (8 / 9 + 1 + 0) / 3)
    assert result["counts"] == {"XS": 1, "S": 1, "M": 0, "L": 1}
    assert result["thresholds"] == [0.02, 0.1, 0.3]
    assert result["params"] == {"thresholds": [0.02, 0.1, 0.3], "ignore": 255}


def test_default_thresholds_and_bucket_edges():
    gt, instances = hand_scene()
    metric = PartIoUBySize()
    metric.update(gt, gt, instances)
    # 1 px = 1% (S), 4 px = 4% (M), 31 px (L) with XS < 0.5% <= S < 2% <= M < 8% <= L.
    assert metric.result()["counts"] == {"XS": 0, "S": 1, "M": 1, "L": 1}
    assert metric.result()["thresholds"] == list(SIZE_THRESHOLDS)
    edge = PartIoUBySize(thresholds=(0.01, 0.04, 0.5))  # a size equal to a threshold is above it
    edge.update(gt, gt, instances)
    assert edge.result()["counts"] == {"XS": 0, "S": 1, "M": 2, "L": 0}


def test_image_without_persons_adds_nothing():
    metric = PartIoUBySize()
    nobody = np.zeros((4, 4), np.uint8)
    metric.update(nobody, np.ones((4, 4), np.uint8), nobody)
    result = metric.result()
    assert result["counts"] == {"XS": 0, "S": 0, "M": 0, "L": 0}
    assert [result[b] for b in ("XS", "S", "M", "L")] == [None] * 4


def test_by_size_refuses_bad_input():
    with pytest.raises(ValueError, match="3 increasing fractions"):
        PartIoUBySize(thresholds=(0.1, 0.05, 0.2))
    with pytest.raises(ValueError, match="3 increasing fractions"):
        PartIoUBySize(thresholds=(0.1, 0.2))
    metric = PartIoUBySize()
    maps = np.zeros((3, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        metric.update(maps, maps, np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match="non-negative integer"):
        metric.update(maps, maps, np.zeros((3, 3), np.float32))
    persons = np.ones((3, 3), np.uint8)
    with pytest.raises(ValueError, match="outside 0-6"):
        metric.update(maps, np.full((3, 3), 9, np.uint8), persons)
    assert metric.counts.sum() == 0 and metric.confusion.sum() == 0  # nothing half-added


@pytest.mark.parametrize("seed", range(15))
def test_by_size_agrees_with_the_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    thresholds = [(0.005, 0.02, 0.08), (0.01, 0.03, 0.1), (0.02, 0.05, 0.2)][seed % 3]
    images = [random_maps(rng, h=int(rng.integers(6, 20)), w=int(rng.integers(6, 20)),
                          persons=int(rng.integers(0, 5))) for _ in range(3)]
    metric = PartIoUBySize(thresholds=thresholds)
    for gt, pred, instances in images:
        metric.update(gt, pred, instances)
    expected, counts = bf.miou_by_size(images, thresholds)
    result = metric.result()
    assert result["counts"] == counts
    bf.table_equal({k: result[k] for k in expected}, expected)
    overall = PartIoU()
    for gt, pred, _ in images:
        overall.update(gt, pred)
    expected_iou = bf.ious(bf.confusion([(gt, pred) for gt, pred, _ in images]))
    bf.table_equal(overall.result()["per_class"], dict(zip(PART_NAMES, expected_iou)))


@pytest.mark.parametrize("seed", range(3))
def test_huge_images_are_counted_the_same_by_numpy(seed, monkeypatch):
    """OpenCV's histograms count in float32; images of 2**24 pixels and more go through
    numpy: both paths give the same counts (and the same refusals)."""
    from pascal_person_pose.metrics import parts as parts_module

    gt, pred, instances = random_maps(np.random.default_rng(seed))
    counter = parts_module.PartCounter()
    expected = counter.count(gt, pred, instances)
    monkeypatch.setattr(parts_module, "_EXACT_COUNTS", 1)
    got = counter.count(gt, pred, instances)
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(counter.count(gt, pred).confusion, expected.confusion)
    with pytest.raises(ValueError, match="outside 0-6"):
        counter.count(gt, np.full_like(pred, 9), instances)
