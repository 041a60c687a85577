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
    size_weight: float = 0.1


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
class ModelConfig:
    name: str
    zoom: ZoomConfig = field(default_factory=ZoomConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    part: PartConfig = field(default_factory=PartConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)


PAPER = ModelConfig(name="paper")

_TINY_RESNET = ResNetConfig(block="basic", layers=(1, 1, 1, 1), widths=(16, 24, 32, 48),
                            stem=16)
TINY = ModelConfig(
    name="tiny",
    zoom=ZoomConfig(crop_size=128, margin=0.1),
    # The paper's 0.6 is a Faster R-CNN class probability; the heatmap peaks of a CenterNet
    # trained for CPU minutes stay far lower (demo budget, synthetic val: median best peak
    # 0.41; 0.6 keeps 9 boxes on 80 images). 0.15 finds 61% of the people (IoU > 0.5) with
    # ~7 boxes per image.
    detector=DetectorConfig(backbone=_TINY_RESNET, neck_channels=32, head_channels=32,
                            input_size=320, score_threshold=0.15),
    # The radius scales with the crop (17 px at 512 would leave no positive cell at 128);
    # 8 px still covers the cell nearest to every joint (half the cell diagonal is 5.7 px).
    pose=PoseConfig(backbone=dataclasses.replace(_TINY_RESNET, output_stride=16), radius=8.0),
    part=PartConfig(backbone=VGGConfig(stages=((16,), (24,), (32,), (48,), (48,)),
                                       fc_channels=64, fc6_dilation=4)),
    # A 128-pixel crop gives a 16x16 map, so the pose maps shrink with it.
    refine=RefineConfig(channels=32, joint_radius=1.0, stick_width=3.0),
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
           "part": PartConfig, "refine": RefineConfig}


def _build(cls: type, data: Any, source: str | None, where: str):
    if not isinstance(data, dict):
        raise InputError(source, "expected a mapping", field=where)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(source, f"unknown key {unknown[0]!r}", field=where)
    kwargs = {}
    for name, value in data.items():
        path = f"{where}.{name}"
        if name == "backbone":
            kind = value.get("kind") if isinstance(value, dict) else None
            if kind not in _BACKBONES:
                raise InputError(source, f"backbone kind must be one of {sorted(_BACKBONES)}",
                                 field=f"{path}.kind")
            kwargs[name] = _build(_BACKBONES[kind], value, source, path)
        elif name in _NESTED and cls is ModelConfig:
            kwargs[name] = _build(_NESTED[name], value, source, path)
        elif isinstance(value, list):
            kwargs[name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            kwargs[name] = value
    return cls(**kwargs)
