"""Backbones: torchvision-compatible names and shapes, strides, dilation, weight loading."""

import pickle

import pytest
import torch

from pascal_person_pose.errors import InputError
from reference_model.backbones import (ResNet, VGGLargeFOV, build_backbone,
                                       load_torchvision_weights)
from reference_model.config import TINY, ResNetConfig, VGGConfig

# Keys and shapes of torchvision's resnet101().state_dict() (v1.5: stride in conv2).
RESNET101 = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.weight": (64,), "bn1.running_var": (64,), "bn1.num_batches_tracked": (),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.0.downsample.1.running_mean": (256,),
    "layer2.0.conv1.weight": (128, 256, 1, 1),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer2.0.downsample.0.weight": (512, 256, 1, 1),
    "layer2.3.bn3.bias": (512,),
    "layer3.0.downsample.0.weight": (1024, 512, 1, 1),
    "layer3.22.conv3.weight": (1024, 256, 1, 1),
    "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
    "layer4.2.conv2.weight": (512, 512, 3, 3),
    "layer4.2.bn3.weight": (2048,),
}
# torchvision's resnet101 has 626 tensors and 44,549,160 parameters; we drop fc (2048x1000+1000).
RESNET101_TENSORS = 626 - 2
RESNET101_PARAMS = 44_549_160 - 2_049_000
# torchvision's vgg16().features: conv layers at these indices, 14,714,688 parameters.
VGG16_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128),
               12: (256, 256), 14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512),
               24: (512, 512), 26: (512, 512), 28: (512, 512)}
VGG16_FEATURE_PARAMS = 14_714_688


def meta(module_cls, config):
    with torch.device("meta"):
        return module_cls(config)


def test_resnet101_state_dict_is_torchvisions():
    net = meta(ResNet, ResNetConfig(output_stride=8))
    state = net.state_dict()
    for key, shape in RESNET101.items():
        assert tuple(state[key].shape) == shape, key
    assert len(state) == RESNET101_TENSORS
    assert sum(p.numel() for p in net.parameters()) == RESNET101_PARAMS
    assert not any(k.startswith("fc.") for k in state)


def test_vgg16_features_are_torchvisions_and_largefov_head_is_deeplabs():
    net = meta(VGGLargeFOV, VGGConfig())
    state = net.state_dict()
    convs = {int(k.split(".")[1]) for k in state if k.startswith("features.")}
    assert convs == set(VGG16_CONVS)
    for index, (out_ch, in_ch) in VGG16_CONVS.items():
        assert tuple(state[f"features.{index}.weight"].shape) == (out_ch, in_ch, 3, 3)
        assert tuple(state[f"features.{index}.bias"].shape) == (out_ch,)
    assert sum(p.numel() for n, p in net.named_parameters()
               if n.startswith("features.")) == VGG16_FEATURE_PARAMS
    assert net.fc6.weight.shape == (1024, 512, 3, 3) and net.fc6.dilation == (12, 12)
    assert net.fc7.weight.shape == (1024, 1024, 1, 1)
    pools = [m for m in net.features if isinstance(m, torch.nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride, p.padding) for p in pools] == (
        [(3, 2, 1)] * 3 + [(3, 1, 1)] * 2)
    conv5 = [net.features[i] for i in (24, 26, 28)]
    assert all(c.dilation == (2, 2) and c.padding == (2, 2) for c in conv5)
    assert net.dropout.p == 0.5


@pytest.mark.parametrize("output_stride,dilations", [
    (8, ((1, 1, 1), (1, 2, 2), (2, 4, 4))),
    (16, ((1, 1, 1), (1, 1, 1), (1, 2, 2))),
    (32, ((1, 1, 1), (1, 1, 1), (1, 1, 1))),
])
def test_resnet101_output_stride_by_dilation(output_stride, dilations):
    net = meta(ResNet, ResNetConfig(output_stride=output_stride))
    out = net(torch.empty(1, 3, 512, 384, device="meta"))
    strides = {"layer1": 4, "layer2": 8, "layer3": min(16, output_stride),
               "layer4": output_stride}
    for name, stride in strides.items():
        assert net.taps[name].stride == stride
        assert out[name].shape[-2:] == (512 // stride, 384 // stride)
    # torchvision's rule: a dilated layer's first block keeps the previous dilation.
    got = tuple(tuple(b.conv2.dilation[0] for b in getattr(net, f"layer{i}")[:3])
                for i in (2, 3, 4))
    assert got == dilations


def test_tiny_backbones_keep_the_stride_structure_and_run_on_odd_sizes():
    resnet = build_backbone(TINY.pose.backbone)
    vgg = build_backbone(TINY.part.backbone)
    x = torch.randn(1, 3, 100, 76)
    out = resnet(x)
    assert {n: t.stride for n, t in resnet.taps.items()} == {
        "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 16}
    assert out["layer2"].shape == (1, resnet.taps["layer2"].channels, 13, 10)
    assert out["layer4"].shape[-2:] == (7, 5)
    out = vgg(x)
    assert vgg.out_name == "fc7" and vgg.out.stride == 8
    assert out["fc7"].shape == (1, TINY.part.backbone.fc_channels, 13, 10)
    assert sum(p.numel() for p in resnet.parameters()) < 200_000


def test_load_torchvision_weights_reports_and_loads(tmp_path):
    source, target = ResNet(TINY.pose.backbone), ResNet(TINY.pose.backbone)
    state = dict(source.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.randn(10, 48), torch.randn(10)
    del state["layer4.0.bn2.running_mean"]
    path = tmp_path / "resnet.pth"
    torch.save(state, path)
    report = load_torchvision_weights(target, path)
    assert report.unexpected == ["fc.bias", "fc.weight"]
    assert report.missing == ["layer4.0.bn2.running_mean"]
    assert len(report.loaded) == len(state) - 2
    assert torch.equal(target.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert "missing 1 (layer4.0.bn2.running_mean)" in str(report)


def test_load_torchvision_weights_refuses_bad_files(tmp_path):
    net = ResNet(TINY.pose.backbone)
    with pytest.raises(InputError, match="no such weights file"):
        load_torchvision_weights(net, tmp_path / "absent.pth")
    wrong = {k: v for k, v in net.state_dict().items()}
    wrong["conv1.weight"] = torch.zeros(3, 3, 7, 7)
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(InputError, match="record conv1.weight.*does not fit") as error:
        load_torchvision_weights(net, tmp_path / "wrong.pth")
    assert "wrong.pth" in str(error.value)
    assert not torch.equal(net.conv1.weight[:3], torch.zeros(3, 3, 7, 7))
    # A pickle that would build an arbitrary object is refused by weights_only loading.
    with open(tmp_path / "unsafe.pth", "wb") as f:
        pickle.dump({"conv1.weight": pickle.PickleError("payload")}, f, protocol=2)
    with pytest.raises(InputError, match="not a safe torch state dict"):
        load_torchvision_weights(net, tmp_path / "unsafe.pth")
    torch.save({"conv1.weight": [1, 2]}, tmp_path / "lists.pth")
    with pytest.raises(InputError, match="mapping parameter names to tensors"):
        load_torchvision_weights(net, tmp_path / "lists.pth")


def test_vgg_fc_layers_are_decimated_as_deeplab(tmp_path):
    config = TINY.part.backbone  # 48 conv5 channels, fc 64
    net = VGGLargeFOV(config)
    fc6 = torch.randn(4 * 64, 48 * 7 * 7)
    fc7 = torch.randn(4 * 64, 4 * 64)
    state = {**{k: v for k, v in net.state_dict().items() if k.startswith("features.")},
             "classifier.0.weight": fc6, "classifier.0.bias": torch.arange(256.0),
             "classifier.3.weight": fc7, "classifier.3.bias": torch.arange(256.0),
             "classifier.6.weight": torch.randn(1000, 256), "classifier.6.bias": torch.zeros(1000)}
    torch.save(state, tmp_path / "vgg.pth")
    report = load_torchvision_weights(net, tmp_path / "vgg.pth")
    assert report.missing == []
    assert report.unexpected == ["classifier.6.bias", "classifier.6.weight"]
    assert torch.equal(net.fc6.weight, fc6.reshape(256, 48, 7, 7)[::4, :, ::3, ::3])
    assert torch.equal(net.fc6.bias, torch.arange(0.0, 256, 4))
    assert torch.equal(net.fc7.weight[:, :, 0, 0], fc7[::4, ::4])
