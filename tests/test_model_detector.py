"""Detection: box NMS with the paper's thresholds, the oracle, CenterNet decoding end to end."""

import numpy as np
import torch

from reference_model.config import TINY
from reference_model.detector import (CenterNet, CenterNetDetector, Detector, DetectorOutput,
                                      OracleDetector, box_iou, box_nms, size_to_head)
from reference_model.targets import detector_targets


def test_box_iou_continuous_edges():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [10, 10, 20, 20], [0, 0, 10, 10], [3, 3, 3, 8]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0, 1, 0]])
    assert box_iou(np.zeros((0, 4)), a).shape == (0, 1)


def test_box_nms_uses_score_and_iou_thresholds():
    boxes = np.array([[0, 0, 10, 10],  # best
                      [0, 0, 10, 8],  # IoU 0.8 with the best: suppressed
                      [0, 0, 10, 6],  # IoU 0.6 exactly: kept (suppression needs > 0.6)
                      [50, 50, 60, 60],  # score 0.6 exactly: dropped (needs > 0.6)
                      [30, 30, 40, 40]], np.float32)
    scores = np.array([0.95, 0.9, 0.7, 0.6, 0.61])
    assert box_nms(boxes, scores).tolist() == [0, 2, 4]
    assert box_nms(boxes, scores, iou_threshold=0.9, score_threshold=0.0).tolist() == [
        0, 1, 2, 4, 3]
    assert box_nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []


def test_oracle_returns_ground_truth_boxes():
    oracle = OracleDetector.from_coco(np.array([[10, 20, 30, 40], [5, 5, 0, 10]]))
    assert isinstance(oracle, Detector)
    boxes, scores = oracle.detect(np.zeros((100, 100, 3), np.uint8))
    np.testing.assert_array_equal(boxes, [[10, 20, 40, 60]])
    np.testing.assert_array_equal(scores, [1])
    boxes[0, 0] = -1  # callers get a copy
    assert oracle.detect(None)[0][0, 0] == 10


def test_centernet_shapes_and_prior():
    model = CenterNet(TINY.detector)
    out = model(torch.randn(2, 3, 256, 320))
    assert [tuple(t.shape) for t in out] == [(2, 1, 64, 80), (2, 2, 64, 80), (2, 2, 64, 80)]
    assert torch.sigmoid(out.heatmap).mean() < 0.2  # starts near CenterNet's prior
    assert sum(p.numel() for p in model.parameters()) < 600_000  # its cost is at stride 4


class TargetsAsOutput(CenterNet):
    """A CenterNet that 'predicts' the targets of known boxes in its input's pixels."""

    def __init__(self, boxes_in_input):
        super().__init__(TINY.detector)
        self.boxes = boxes_in_input

    def forward(self, images):
        h, w = images.shape[-2] // 4, images.shape[-1] // 4
        t = detector_targets(self.boxes, h, w, 4, 0.7)
        heat = torch.logit(torch.from_numpy(t.heatmap).clamp(1e-4, 1 - 1e-4))
        return DetectorOutput(heat[None], torch.from_numpy(t.offset)[None],
                              size_to_head(torch.from_numpy(t.size))[None])


def test_centernet_detector_maps_boxes_back_to_the_image():
    image = np.zeros((375, 500, 3), np.uint8)
    gt = np.array([[50, 40, 150, 300], [300, 100, 420, 360], [430, 20, 445, 50]], np.float32)
    scale = TINY.detector.input_size / 500  # the detector sees the image at 320 x 240
    detector = CenterNetDetector(TargetsAsOutput(gt * scale), TINY.detector)
    boxes, scores = detector.detect(image)
    assert len(boxes) == 3 and (scores > 0.99).all()
    np.testing.assert_allclose(boxes[np.argsort(boxes[:, 0])], gt, atol=0.05)


def test_detector_output_is_clipped_to_the_image():
    image = np.zeros((240, 320, 3), np.uint8)
    detector = CenterNetDetector(TargetsAsOutput(np.array([[-20, 10, 40, 250]], np.float32)),
                                 TINY.detector)
    boxes, _ = detector.detect(image)
    np.testing.assert_allclose(boxes, [[0, 10, 40, 240]], atol=1e-4)  # log size, float32


def test_untrained_detector_runs_on_any_image_size():
    torch.manual_seed(0)
    detector = CenterNetDetector(CenterNet(TINY.detector), TINY.detector)
    boxes, scores = detector.detect(np.random.default_rng(0).integers(0, 255, (101, 77, 3),
                                                                      dtype=np.uint8))
    assert boxes.shape == (len(scores), 4) and boxes.dtype == np.float32
    assert (np.diff(scores) <= 0).all() and (scores > TINY.detector.score_threshold).all()
