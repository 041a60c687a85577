"""Output shapes and strides of every network, for both configs; the Pose FCN decoder."""

import dataclasses

import numpy as np
import pytest
import torch

from reference_model.config import PAPER, TINY
from reference_model.detector import CenterNet
from reference_model.fcrf.maps import offset_channel
from reference_model.model import FcnMaps
from reference_model.part_fcn import PartFCN, upsample
from reference_model.pose_fcn import PoseFCN, PoseOutput
from reference_model.refinement import RefinementNet
from reference_model.targets import OffsetStats, cell_centres, grid_to_pixels, pixels_to_grid


def shapes(output):
    return [None if t is None else tuple(t.shape) for t in output]


def test_paper_networks_on_meta():
    size = PAPER.zoom.crop_size
    with torch.device("meta"):
        pose, part = PoseFCN(PAPER.pose), PartFCN(PAPER.part)
        detector, refine = CenterNet(PAPER.detector), RefinementNet(PAPER.refine)
        x = torch.empty(1, 3, size, size)
        g = size // 8
        assert shapes(pose(x)) == [(1, 14, g, g), (1, 28, g, g), (1, 364, g, g)]
        assert tuple(part(x).shape) == (1, 7, g, g)
        assert shapes(detector(torch.empty(1, 3, 384, 512))) == [
            (1, 1, 96, 128), (1, 2, 96, 128), (1, 2, 96, 128)]
        assert tuple(refine(torch.empty(1, 9, g, g)).shape) == (1, 7, g, g)
    # DeeperCut: ResNet-101 body at stride 16, heads = 3x3 stride-2 deconv + 1x1 on res3b3.
    assert pose.backbone.out.stride == 16 and pose.skip_name == "layer2"
    deconv = pose.score_head.deep
    assert isinstance(deconv, torch.nn.ConvTranspose2d)
    assert deconv.kernel_size == (3, 3) and deconv.stride == (2, 2)
    assert pose.score_head.skip.kernel_size == (1, 1)
    assert pose.backbone.taps["layer2"].channels == 512
    assert part.backbone.fc6.dilation == (12, 12) and part.fc8.in_channels == 1024


@pytest.mark.parametrize("height,width", [(128, 128), (100, 76)])
def test_tiny_networks(height, width):
    x = torch.randn(2, 3, height, width)
    gh, gw = -(-height // 8), -(-width // 8)
    pose = PoseFCN(TINY.pose)
    assert shapes(pose(x)) == [(2, 14, gh, gw), (2, 28, gh, gw), (2, 364, gh, gw)]
    assert tuple(PartFCN(TINY.part)(x).shape) == (2, 7, gh, gw)
    for model in (pose, PartFCN(TINY.part), CenterNet(TINY.detector), RefinementNet(TINY.refine)):
        assert sum(p.numel() for p in model.parameters()) < 600_000


def test_pose_fcn_without_locref_and_on_a_stride_8_body():
    config = dataclasses.replace(
        TINY.pose, backbone=dataclasses.replace(TINY.pose.backbone, output_stride=8),
        locref=False)
    pose = PoseFCN(config)
    out = pose(torch.randn(1, 3, 64, 64))
    assert out.locref is None and shapes(out)[0] == (1, 14, 8, 8)
    assert isinstance(pose.score_head.deep, torch.nn.Conv2d)
    maps = pose.decode(out)[0]
    np.testing.assert_array_equal(maps.joints[3], cell_centres(8, 8, 8))


def test_pose_decode_undoes_the_normalisations():
    pose = PoseFCN(TINY.pose)
    rng = np.random.default_rng(0)
    stats = OffsetStats(rng.normal(0, 20, 364).astype(np.float32),
                        rng.uniform(5, 30, 364).astype(np.float32))
    pose.set_offset_stats(stats)
    np.testing.assert_array_equal(pose.offset_stats.std, stats.std)
    raw = torch.randn(1, 364, 4, 5)
    locref = torch.randn(1, 28, 4, 5)
    maps = pose.decode(PoseOutput(torch.zeros(1, 14, 4, 5), locref, raw))[0]
    assert maps.scores.shape == (14, 4, 5) and (maps.scores == 0.5).all()
    # Joint type 2, other type k = 5 (joint 6), dy, at cell (3, 1).
    channel = 2 * (2 * 13 + 5) + 1
    assert maps.offsets[2, 5, 3, 1, 1] == pytest.approx(
        raw[0, channel, 3, 1].item() * stats.std[channel] + stats.mean[channel], rel=1e-5)
    assert maps.joints[6, 3, 1, 0] == pytest.approx(
        grid_to_pixels(1, 8) + locref[0, 12, 3, 1].item() * TINY.pose.locref_scale, rel=1e-5)
    # The FCRF's layout: channels last, its offset_channel order, offsets in crop pixels on
    # the stride-8 grid, the location refinement beside them.
    crop = FcnMaps([maps], torch.zeros(1, 7, 4, 5), np.zeros((1, 32, 40, 14), np.float32),
                   np.full((1, 32, 40, 7), 1 / 7, np.float32)).score_maps(0)
    assert crop.offset_stride == 8 and crop.Pn.shape == (4, 5, 364)
    assert crop.Pn[3, 1, offset_channel(2, 6) + 1] == pytest.approx(maps.offsets[2, 5, 3, 1, 1])
    assert crop.Pn[0, 4, offset_channel(13, 0)] == pytest.approx(maps.offsets[13, 0, 0, 4, 0])
    assert crop.Pr[3, 1, 6, 0] == pytest.approx(maps.joints[6, 3, 1, 0] - grid_to_pixels(1, 8))


def test_part_upsampling_is_aligned_with_the_grid_convention():
    # A linear field over cells stays linear over pixels, with cell i at pixel 8i + 3.5.
    gy, gx = torch.meshgrid(torch.arange(5.0), torch.arange(6.0), indexing="ij")
    logits = torch.stack([gx, gy])[None]
    up = upsample(logits, 37, 45)
    assert up.shape == (1, 2, 37, 45)
    x = torch.arange(4, 44)  # between the first and the last cell centre
    torch.testing.assert_close(up[0, 0, 10, 4:44], pixels_to_grid(x.float(), 8))
    y = torch.arange(4, 36)
    torch.testing.assert_close(up[0, 1, 4:36, 10], pixels_to_grid(y.float(), 8))
