"""Backbones of the reference model, with torchvision's parameter names.

Both families keep torchvision's ``state_dict`` keys (``conv1.weight``, ``bn1.*``,
``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight`` ... for ResNet;
``features.0.weight`` ... ``features.28.weight`` for VGG-16), so a user's ImageNet
``resnet101`` / ``vgg16`` ``.pth`` loads with :func:`load_torchvision_weights` without
torchvision being installed.

- :class:`ResNet`: output stride 8 or 16 replaces the stride of layer3/layer4 by dilation
  (torchvision's ``replace_stride_with_dilation``: a dilated layer's first block keeps the
  previous dilation). ``ResNetConfig(block="basic", layers=(1, 1, 1, 1), ...)`` is a small
  network with the same stride structure.
- :class:`VGGLargeFOV`: DeepLab-LargeFOV's VGG-16 (pools 1-3 3x3 stride 2 pad 1, pools 4-5
  3x3 stride 1 pad 1, conv5 dilation 2, fc6 3x3 dilation 12 with 1024 channels, fc7 1x1,
  ReLU and dropout 0.5 after each); output stride 8. Its fc6/fc7 are initialised, as in
  DeepLab, by decimating torchvision's ``classifier.0`` / ``classifier.3``.

Every backbone returns a dict of named stage outputs ("taps", shallow to deep) and
describes them in ``.taps`` (channels, stride), so heads pick the features they need by
stride: the Pose FCN its stride-8 skip, the detector its stride-4 neck input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pascal_person_pose.errors import InputError

from .config import BackboneConfig, ResNetConfig, VGGConfig

# torchvision's ImageNet normalisation, which its pretrained weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The mean colour as uint8 RGB: padding with it normalises to zero.
MEAN_RGB = tuple(round(255 * m) for m in IMAGENET_MEAN)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 RGB ``(B, H, W, 3)`` or ``(H, W, 3)`` -> normalised float ``(B, 3, H, W)``."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 3:
        x = x[None]
    x = x.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass(frozen=True)
class Tap:
    """A named backbone output: its channel count and its stride in input pixels."""

    channels: int
    stride: int


class Backbone(nn.Module):
    """A feature extractor: ``forward(x) -> {tap name: (B, C, H/stride, W/stride)}``."""

    taps: dict[str, Tap]

    @property
    def out_name(self) -> str:
        """The deepest tap, the one a head sits on."""
        return list(self.taps)[-1]

    @property
    def out(self) -> Tap:
        return self.taps[self.out_name]

    def first_tap(self, stride: int) -> str:
        """The shallowest tap at ``stride`` (DeeperCut's skip: res3b3 for stride 8)."""
        for name, tap in self.taps.items():
            if tap.stride == stride:
                return name
        raise ValueError(f"backbone has no output at stride {stride}")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34 block, torchvision names)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, dilation: int,
                 first_dilation: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=first_dilation,
                               dilation=first_dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 x4 (ResNet-50/101 v1.5 block, torchvision names).

    Its only 3x3 convolution is its first one, so it takes ``first_dilation`` and ignores
    ``dilation`` (which :class:`BasicBlock` gives its second 3x3).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, dilation: int,
                 first_dilation: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=first_dilation,
                               dilation=first_dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(Backbone):
    """torchvision's ResNet body (no avgpool/fc); taps ``layer1`` .. ``layer4``."""

    def __init__(self, config: ResNetConfig):
        super().__init__()
        if config.output_stride not in (8, 16, 32):
            raise ValueError(f"ResNet output stride must be 8, 16 or 32, "
                             f"not {config.output_stride}")
        if len(config.layers) != 4 or len(config.widths) != 4:
            raise ValueError("a ResNet has four layers: give four block counts and widths")
        block = Bottleneck if config.block == "bottleneck" else BasicBlock
        self.conv1 = nn.Conv2d(3, config.stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(config.stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes, stride_so_far, dilation = config.stem, 4, 1
        self.taps = {}
        for i, (blocks, planes) in enumerate(zip(config.layers, config.widths)):
            stride = 1 if i == 0 else 2
            previous_dilation = dilation
            if stride_so_far * stride > config.output_stride:
                dilation, stride = dilation * stride, 1
            stride_so_far *= stride
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion))
            layer = [block(inplanes, planes, stride, dilation, previous_dilation, downsample)]
            inplanes = planes * block.expansion
            layer += [block(inplanes, planes, 1, dilation, dilation, None)
                      for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
            self.taps[f"layer{i + 1}"] = Tap(inplanes, stride_so_far)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = {}
        for name in self.taps:
            x = getattr(self, name)(x)
            out[name] = x
        return out


class VGGLargeFOV(Backbone):
    """DeepLab-LargeFOV body; taps ``stage1`` .. ``stage5`` (after each pool) and ``fc7``.

    ``features`` keeps torchvision's indices (conv, ReLU pairs, then a pool per stage), so
    conv ``k`` of VGG-16 is ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}``; with
    ``batch_norm`` each conv is followed by a BatchNorm2d, as in torchvision's ``vgg16_bn``.
    """

    def __init__(self, config: VGGConfig):
        super().__init__()
        if len(config.stages) != 5:
            raise ValueError("a DeepLab-LargeFOV VGG has five stages")
        layers: list[nn.Module] = []
        self._stage_ends: list[int] = []
        self.taps = {}
        in_ch, stride = 3, 1
        for s, widths in enumerate(config.stages):
            dilation = 2 if s == 4 else 1
            for width in widths:
                layers.append(nn.Conv2d(in_ch, width, 3, padding=dilation, dilation=dilation))
                if config.batch_norm:  # torchvision's vgg16_bn order: conv, BN, ReLU
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                in_ch = width
            pool_stride = 2 if s < 3 else 1
            layers.append(nn.MaxPool2d(3, pool_stride, 1))
            stride *= pool_stride
            self._stage_ends.append(len(layers))
            self.taps[f"stage{s + 1}"] = Tap(in_ch, stride)
        self.features = nn.Sequential(*layers)
        d = config.fc6_dilation
        self.fc6 = nn.Conv2d(in_ch, config.fc_channels, 3, padding=d, dilation=d)
        self.fc7 = nn.Conv2d(config.fc_channels, config.fc_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(config.dropout)
        self.taps["fc7"] = Tap(config.fc_channels, stride)
        # torchvision's VGG initialisation: PyTorch's default shrinks the activations
        # ~0.6x per layer, which starves from-scratch training (ImageNet weights replace it).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        start = 0
        for name, end in zip(self.taps, self._stage_ends):
            for layer in self.features[start:end]:
                x = layer(x)
            out[name], start = x, end
        x = self.dropout(self.relu(self.fc6(x)))
        out["fc7"] = self.dropout(self.relu(self.fc7(x)))
        return out

    def convert_torchvision(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """torchvision VGG keys -> ours: ``classifier.0``/``classifier.3`` become fc6/fc7.

        DeepLab-LargeFOV decimates VGG's fully connected layers: fc6 (4096 x 512x7x7) keeps
        every 4th filter and every 3rd spatial tap (7x7 -> 3x3), fc7 (4096 x 4096) every
        4th filter and input. Layers that do not decimate to our shapes stay unexpected.
        """
        out = dict(state)
        for source, conv, inputs in (("classifier.0", self.fc6, False),
                                     ("classifier.3", self.fc7, True)):
            weight, bias = state.get(f"{source}.weight"), state.get(f"{source}.bias")
            if weight is None or bias is None:
                continue
            decimated = _decimate(weight, bias, conv.weight.shape, inputs)
            if decimated is not None:
                del out[f"{source}.weight"], out[f"{source}.bias"]
                name = "fc6" if conv is self.fc6 else "fc7"
                out[f"{name}.weight"], out[f"{name}.bias"] = decimated
        return out


def _decimate(weight: torch.Tensor, bias: torch.Tensor, target: torch.Size,
              decimate_inputs: bool) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A fully connected layer subsampled to a conv of shape ``target``; None if it cannot be."""
    out_ch, in_ch, k, _ = target
    if weight.ndim != 2 or weight.shape[0] % out_ch or bias.shape != weight.shape[:1]:
        return None
    step = weight.shape[0] // out_ch
    if decimate_inputs:  # a 1x1 layer fed by a decimated layer: drop the same inputs
        if k != 1 or weight.shape[1] % in_ch:
            return None
        w = weight[::step, ::weight.shape[1] // in_ch, None, None]
    else:  # side x side taps over all input channels, subsampled to k x k
        side = round((weight.shape[1] / in_ch) ** 0.5)
        if side * side * in_ch != weight.shape[1] or k < 2 or (side - 1) % (k - 1):
            return None
        tap = (side - 1) // (k - 1)
        w = weight.reshape(weight.shape[0], in_ch, side, side)[::step, :, ::tap, ::tap]
    return w.contiguous(), bias[::step].contiguous()


def build_backbone(config: BackboneConfig) -> Backbone:
    """The backbone a config describes."""
    return ResNet(config) if isinstance(config, ResNetConfig) else VGGLargeFOV(config)


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_torchvision_weights` did: every key of both sides is accounted for."""

    loaded: list[str]
    missing: list[str]  # model keys the file lacks (left at their initialisation)
    unexpected: list[str]  # file keys the model lacks (e.g. torchvision's ``fc.*``)

    def __str__(self) -> str:
        def listed(keys: list[str]) -> str:
            return f"{len(keys)}" + (f" ({', '.join(keys)})" if keys else "")

        return (f"loaded {len(self.loaded)} tensors; missing {listed(self.missing)}; "
                f"unexpected {listed(self.unexpected)}")


def load_torchvision_weights(backbone: Backbone, path: str | os.PathLike) -> LoadReport:
    """Load a torchvision ImageNet state dict (``resnet101-*.pth``, ``vgg16-*.pth``) into
    ``backbone``, e.g. ``net.backbone`` of a Pose or Part FCN.

    The file is read with ``torch.load(weights_only=True)``, which refuses pickled code, so
    a downloaded file cannot run anything. Keys present on both sides must agree in shape
    (else :class:`InputError`, nothing loaded); the rest are reported, not fatal, because
    the classifier of an ImageNet model never fits a dense head.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "no such weights file") from None
    except Exception as error:  # torch raises several types for unsafe or corrupt files
        raise InputError(path, f"not a safe torch state dict ({type(error).__name__}: "
                               f"{str(error).splitlines()[0] if str(error) else ''})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, "expected a state dict mapping parameter names to tensors")
    if isinstance(backbone, VGGLargeFOV):
        state = backbone.convert_torchvision(state)
    own = backbone.state_dict()
    for key in sorted(set(own) & set(state)):
        if own[key].shape != state[key].shape:
            raise InputError(path, f"shape {tuple(state[key].shape)} does not fit the model's "
                                   f"{tuple(own[key].shape)}", record=key)
    common = {k: v for k, v in state.items() if k in own}
    backbone.load_state_dict(common, strict=False)
    return LoadReport(loaded=sorted(common), missing=sorted(set(own) - set(state)),
                      unexpected=sorted(set(state) - set(own)))
