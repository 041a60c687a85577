"""Configuration of the reference model: one frozen dataclass per component, two presets.

``paper`` is the paper's setting (ResNet-101 Pose FCN as DeeperCut, VGG-16
DeepLab-LargeFOV Part FCN, 7x7x128 second stage); ``tiny`` keeps every structure (strides,
heads, dilations) with few channels and small crops, so the whole pipeline trains on
synthetic 320x240 scenes on a 2-core CPU in minutes. Sizes the paper does not state are
chosen here and say so in a comment.

A config travels inside every checkpoint as a plain dict (:func:`config_to_dict`), so a
checkpoint always rebuilds the networks it was trained with.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from pascal_person_pose.errors import InputError


@dataclass(frozen=True)
class ResNetConfig:
    """A torchvision-layout ResNet; output stride 8/16 replaces late strides by dilation."""

    kind: Literal["resnet"] = "resnet"
    block: Literal["bottleneck", "basic"] = "bottleneck"
    layers: tuple[int, ...] = (3, 4, 23, 3)  # ResNet-101
    widths: tuple[int, ...] = (64, 128, 256, 512)  # planes of layer1..layer4
    stem: int = 64
    output_stride: int = 32


@dataclass(frozen=True)
class VGGConfig:
    """A DeepLab-LargeFOV VGG: pools 1-3 stride 2, pools 4-5 stride 1, conv5 dilation 2,
    fc6 3x3 with a large dilation, fc7 1x1; always output stride 8."""

    kind: Literal["vgg"] = "vgg"
    stages: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256),
                                           (512, 512, 512), (512, 512, 512))  # VGG-16
    fc_channels: int = 1024
    fc6_dilation: int = 12
    dropout: float = 0.5
    batch_norm: bool = False  # DeepLab has none; from scratch on a CPU it trains far faster


BackboneConfig = Union[ResNetConfig, VGGConfig]


@dataclass(frozen=True)
class ZoomConfig:
    """Auto-zoom: a square window around each box, resized to ``crop_size`` pixels."""

    crop_size: int = 512
    margin: float = 0.1  # context added on every side, as a fraction of the box's longer side


@dataclass(frozen=True)
class DetectorConfig:
    """CenterNet-style person detector (stride-4 centre heatmap, offsets, sizes)."""

    backbone: BackboneConfig = field(default_factory=ResNetConfig)
    neck_channels: int = 128
    head_channels: int = 64
    input_size: int = 512  # longer image side fed to the detector
    max_detections: int = 100  # top-k peaks decoded
    score_threshold: float = 0.6  # paper Sec. 4.1
    nms_iou: float = 0.6  # paper Sec. 4.1
    min_overlap: float = 0.7  # CenterNet's Gaussian radius parameter
    offset_weight: float = 1.0
    size_weight: float = 1.0  # on log sizes (CenterNet's 0.1 is on sizes in cells)


@dataclass(frozen=True)
class PoseConfig:
    """DeeperCut Pose FCN: score maps, location refinement and pairwise offsets (stride 8)."""

    backbone: BackboneConfig = field(default_factory=lambda: ResNetConfig(output_stride=16))
    radius: float = 17.0  # a cell is positive within this many crop pixels of the joint
    locref: bool = True
    locref_scale: float = 7.2801  # sqrt(53), DeeperCut's location-refinement normaliser
    locref_weight: float = 0.05
    offset_weight: float = 0.05


@dataclass(frozen=True)
class PartConfig:
    """DeepLab-LargeFOV Part FCN (7 classes, stride 8, bilinear upsampling)."""

    backbone: BackboneConfig = field(default_factory=VGGConfig)


@dataclass(frozen=True)
class RefineConfig:
    """Second-stage Part FCN: part probabilities + two pose label maps, at stride 8."""

    channels: int = 128
    kernel: int = 7
    layers: int = 3
    joint_radius: float = 3.0  # in cells of the stride-8 map
    stick_width: float = 7.0  # in cells of the stride-8 map
    use_pose: bool = True  # False: the "w/o pose input" ablation


@dataclass(frozen=True)
class FcrfConfig:
    """The FCRF's proposals and pairwise training, distances in crop pixels.

    The paper's values (Sec. 4.1: 6 proposals per type, probability > 0.2, 16 px apart;
    DeeperCut's 17 px for a pair's endpoint to count as on its joint) hold at its 512-pixel
    crop; a smaller crop scales the distances with it, so they stay the same share of a
    person. ``boundary_radius`` is the segment features' "near the part boundary" window.
    ``time_limit`` bounds the exact solver per box, ``full_image_time_limit`` per whole
    image (``--full-image``); past it the best labelling found so far (GAEC +
    Kernighan-Lin, then the branch and bound's incumbent) is used, with its gap.
    """

    proposals_per_type: int = 6
    proposal_threshold: float = 0.2
    proposal_distance: float = 16.0
    pair_distance: float = 17.0
    boundary_radius: int = 4
    time_limit: float = 1.0  # seconds per box ("within 1 sec", paper Sec. 3.1)
    full_image_time_limit: float = 60.0  # seconds per image without boxes


@dataclass(frozen=True)
class ModelConfig:
    name: str
    zoom: ZoomConfig = field(default_factory=ZoomConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    part: PartConfig = field(default_factory=PartConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    fcrf: FcrfConfig = field(default_factory=FcrfConfig)


PAPER = ModelConfig(name="paper")

_TINY_RESNET = ResNetConfig(block="basic", layers=(1, 1, 1, 1), widths=(16, 24, 32, 48),
                            stem=16)
# The detector's cost is at stride 4 (the stem, layer1, the neck and heads on an 80x80 grid),
# so its deep layers can be wide and two blocks deep at little cost: with 16-channel heads
# one step costs what _TINY_RESNET's with 32-channel heads did, and on the demo's val split
# recall at precision >= 0.5 rose from 32% to 50% (1000 steps; benchmark/README.md).
_TINY_DETECTOR_RESNET = ResNetConfig(block="basic", layers=(1, 1, 2, 2),
                                     widths=(16, 48, 64, 96), stem=16)
TINY = ModelConfig(
    name="tiny",
    zoom=ZoomConfig(crop_size=128, margin=0.1),
    # The paper's 0.6 is a Faster R-CNN class probability; the heatmap peaks of a CenterNet
    # trained for CPU minutes stay far lower (demo, synthetic val: 0.6 keeps one box on 80
    # images). 0.15 finds 68-71% of the people (IoU >= 0.5; two seeds) at precision 0.36
    # with ~5.5 boxes per image (benchmark/perf/detector_accuracy.py).
    detector=DetectorConfig(backbone=_TINY_DETECTOR_RESNET, neck_channels=32, head_channels=16,
                            input_size=320, score_threshold=0.15),
    # The radius scales with the crop (17 px at 512 would leave no positive cell at 128);
    # 8 px still covers the cell nearest to every joint (half the cell diagonal is 5.7 px).
    pose=PoseConfig(backbone=dataclasses.replace(_TINY_RESNET, output_stride=16), radius=8.0),
    # Batch normalisation: without it this from-scratch VGG barely leaves "all background"
    # in the test's budget (GT-box part mIOU 22 against 12.8 for background alone).
    part=PartConfig(backbone=VGGConfig(stages=((16,), (24,), (32,), (48,), (48,)),
                                       fc_channels=64, fc6_dilation=4, batch_norm=True)),
    # A 128-pixel crop gives a 16x16 map, so the pose maps shrink with it.
    refine=RefineConfig(channels=32, joint_radius=1.0, stick_width=3.0),
    # The paper's distances at a 512-pixel crop, times 128 / 512. With pixel-level NMS most
    # tiny boxes are not proven optimal within 1 s, and the second is spent on the bound: on
    # 96 training crops of the demo's model the labelling at 0.1 s scored within 2.9% (mean
    # 0.02%) of the one at 1 s (at 0.2 s: 3.3%, 0.02%), in 83 ms a crop against 139 ms at
    # 0.2 s and 565 ms at 1 s (12, 13 and 18 of them proven optimal). The time saved
    # shortens the second stage's training cache and every prediction.
    # A whole 320x240 image holds programs of ~400 nodes that 10 s do not prove either
    # (benchmark/perf/fcrf_speed.py); 2 s keeps the demo's --full-image run in minutes.
    fcrf=FcrfConfig(proposal_distance=4.0, pair_distance=4.25, boundary_radius=1,
                    time_limit=0.1, full_image_time_limit=2.0),
)

CONFIGS: dict[str, ModelConfig] = {"paper": PAPER, "tiny": TINY}


def get_config(name: str) -> ModelConfig:
    """A preset by name (``paper`` or ``tiny``)."""
    if name not in CONFIGS:
        raise InputError(None, f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name]


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """Plain nested dict (str, int, float, bool, list), safe to store in a checkpoint."""
    return _plain(dataclasses.asdict(config))


def config_from_dict(data: dict[str, Any], source: str | None = None) -> ModelConfig:
    """Inverse of :func:`config_to_dict`; names the bad field of a malformed dict."""
    return _build(ModelConfig, data, source, "config")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


_BACKBONES = {"resnet": ResNetConfig, "vgg": VGGConfig}
_NESTED = {"zoom": ZoomConfig, "detector": DetectorConfig, "pose": PoseConfig,
           "part": PartConfig, "refine": RefineConfig, "fcrf": FcrfConfig}


def _build(cls: type, data: Any, source: str | None, where: str):
    """``cls`` from a plain dict, every field present and of its annotated type."""
    if not isinstance(data, dict):
        raise InputError(source, "expected a mapping", field=where)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names), key=str)
    if unknown:
        raise InputError(source, f"unknown key {unknown[0]!r}", field=where)
    missing = [name for name in names if name not in data]
    if missing:
        raise InputError(source, f"missing key {missing[0]!r}", field=where)
    kwargs = {}
    for name in names:
        value, path = data[name], f"{where}.{name}"
        if name == "backbone":
            kind = value.get("kind") if isinstance(value, dict) else None
            if kind not in _BACKBONES:
                raise InputError(source, f"backbone kind must be one of {sorted(_BACKBONES)}",
                                 field=f"{path}.kind")
            kwargs[name] = _build(_BACKBONES[kind], value, source, path)
        elif name in _NESTED and cls is ModelConfig:
            kwargs[name] = _build(_NESTED[name], value, source, path)
        else:
            kwargs[name] = _checked(value, hints[name], name, source, path)
    return cls(**kwargs)


def _checked(value: Any, kind: Any, name: str, source: str | None, path: str) -> Any:
    """``value`` as a field of type ``kind`` (str, bool, int, float, Literal, tuples of
    ints); a wrong type or an impossible number raises :class:`InputError`."""
    def fail(expected: str) -> InputError:
        shown = repr(value) if len(repr(value)) <= 40 else type(value).__name__
        return InputError(source, f"expected {expected}, got {shown}", field=path)

    if typing.get_origin(kind) is Literal:
        if value not in typing.get_args(kind):
            raise fail(f"one of {list(typing.get_args(kind))}")
        return value
    if typing.get_origin(kind) is tuple:
        inner = typing.get_args(kind)[0]
        if not isinstance(value, (list, tuple)) or not value:
            raise fail("a non-empty list")
        return tuple(_checked(v, inner, name, source, f"{path}[{i}]")
                     for i, v in enumerate(value))
    if kind is bool or kind is str:
        if not isinstance(value, kind):
            raise fail(kind.__name__)
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        if value < (0 if name in _MAY_BE_ZERO else 1):
            raise fail(f"an integer >= {0 if name in _MAY_BE_ZERO else 1}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        if not math.isfinite(value) or value < 0 or (name in _FRACTIONS and value >= 1):
            raise fail("a finite number >= 0" + (" and < 1" if name in _FRACTIONS else ""))
        return float(value)
    raise TypeError(f"config field {path} has an unsupported type {kind!r}")


_MAY_BE_ZERO = {"boundary_radius"}
_FRACTIONS = {"dropout", "score_threshold", "nms_iou", "min_overlap", "proposal_threshold"}
