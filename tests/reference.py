"""What the zoo tests (tests/test_zoo_*.py) measure on reference models, in one place.

A reference model is torchvision's (built here with weights=None) or a hand-written PyTorch module that
transcribes a paper. Every figure these helpers return is computed by torch on that model: parameter and
buffer counts, state_dict names and shapes, MACs as FlopCounterMode's FLOPs of the convolutions and matrix
products halved, the output shape of every module (forward hooks), and the outputs of the generated module
holding the reference's weights. None of them is derived from cnndsl's own output; the IR side
(`ir_state`, `ir_output_shapes`) only reads the IR into the same form, for comparison.

Counting runs on whatever device the model lives on: PyTorch's "meta" device gives the same constructor,
names, shapes and forward pass with no memory and no initialisation, so even ViT-H/14 counts in a fraction
of a second. The tests import this module as `reference` (tests/conftest.py puts this folder on sys.path);
the fixtures `ours` and `tv` are defined in tests/conftest.py.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import unittest.mock
import warnings
from collections import OrderedDict
from math import ceil

import pytest
import torch
import torchvision.models as tvm
from torch import nn
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import segmentation as tvs
from torchvision.models import video as tvv

import cnndsl
from cnndsl.ir import lint_ir
from unet_reference import ReferenceUNet

IMAGE = (3, 224, 224)  # an ImageNet image, the default input of torchvision's image models

# FlopCounterMode counts 2 FLOPs per multiply-accumulate of these ops (bias additions not included).
MATMUL_OPS = {"aten.convolution", "aten.addmm", "aten.mm", "aten.bmm"}


# ---------------------------------------------------------------- hand-written references (torchvision has none)


class ReferenceMobileNetV1(nn.Module):
    """MobileNet v1 written from the paper (Howard et al. 2017, Table 1 and Figure 3), independently of
    the .cnn file: every conv followed by batch norm and ReLU, the width multiplier applied as
    int(alpha * channels), the 13th depthwise conv at stride 1 (Table 1's "s2" there is a typo: its
    input and output are both 7x7). Module names are the ones the .cnn file chose."""

    # (depthwise stride, pointwise output channels) for the 13 separable layers of Table 1
    LAYERS = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 + [(2, 1024), (1, 1024)]

    def __init__(self, alpha=1.0, num_classes=1000):
        super().__init__()

        def cbr(cin, cout, kernel, stride=1, groups=1):
            return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU())

        channels = int(32 * alpha)
        layers = [cbr(3, channels, 3, stride=2)]
        for stride, out in self.LAYERS:
            layer = nn.Module()
            layer.dw = cbr(channels, channels, 3, stride, groups=channels)
            layer.pw = cbr(channels, int(out * alpha), 1)
            layer.forward = lambda x, layer=layer: layer.pw(layer.dw(x))
            layers.append(layer)
            channels = int(out * alpha)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class PaperLRN(nn.Module):
    """Krizhevsky et al. 2012, Section 3.3, Eq. (1), as printed: b_i = a_i / (k + alpha * sum_j a_j^2)^beta,
    the sum over maps j from max(0, i - n/2) to min(N - 1, i + n/2); k = 2, n = 5, alpha = 1e-4, beta = 0.75."""

    def __init__(self, n=5, k=2.0, alpha=1e-4, beta=0.75):
        super().__init__()
        self.n, self.k, self.alpha, self.beta = n, k, alpha, beta

    def forward(self, a):
        maps = a.shape[1]
        square = a * a
        out = []
        for i in range(maps):
            lo, hi = max(0, i - self.n // 2), min(maps - 1, i + self.n // 2)
            out.append(a[:, i] / (self.k + self.alpha * square[:, lo:hi + 1].sum(1)) ** self.beta)
        return torch.stack(out, 1)


def alexnet_2012(groups=2, classes=1000) -> nn.Module:
    """The network of the paper's Section 3 and Figure 2, written from the text: two GPUs' halves of the
    kernels as groups=2 convs where "kernels ... are connected only to those kernel maps in the previous
    layer which reside on the same GPU" (conv2, conv4, conv5), with Caffe's bvlc_alexnet layer names."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 96, 11, stride=4)), ("relu1", nn.ReLU()), ("norm1", PaperLRN()),
        ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=groups)), ("relu2", nn.ReLU()), ("norm2", PaperLRN()),
        ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=groups)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=groups)), ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2)), ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(256 * 6 * 6, 4096)), ("relu6", nn.ReLU()), ("drop6", nn.Dropout()),
        ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout()),
        ("fc8", nn.Linear(4096, classes)),
    ]))


def tf_same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (left, right): ceil(length / stride) outputs, the extra on the right."""
    total = max((ceil(length / stride) - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


class WaveformCNN(nn.Module):
    """Dai et al. 2017, Table 1, written from the paper: [80/4, c0] then [3, c_i] convs, each followed by
    batch norm, ReLU and a 4x max pool; global average pooling; a linear classifier. Convs pad as
    TensorFlow's "same" (explicitly, left and right); `same=False` pads nothing (PyTorch's tutorial)."""

    def __init__(self, channels=(128, 128, 256, 512), classes=10, stride=4, same=True):
        super().__init__()
        self.stride, self.same = stride, same
        cin = 1
        for i, c in enumerate(channels):
            setattr(self, f"conv{i + 1}", nn.Conv1d(cin, c, 80 if i == 0 else 3, stride=stride if i == 0 else 1))
            setattr(self, f"bn{i + 1}", nn.BatchNorm1d(c))
            setattr(self, f"pool{i + 1}", nn.MaxPool1d(4))
            cin = c
        self.stages = len(channels)
        self.fc1 = nn.Linear(cin, classes)

    def forward(self, x):
        for i in range(1, self.stages + 1):
            conv = getattr(self, f"conv{i}")
            if self.same:
                x = F.pad(x, tf_same_padding(x.shape[-1], conv.kernel_size[0], conv.stride[0]))
            x = getattr(self, f"pool{i}")(F.relu(getattr(self, f"bn{i}")(conv(x))))
        return self.fc1(x.mean(-1))


# ---------------------------------------------------------------- the zoo's references and published figures

def regnet(name: str):
    """torchvision's RegNet model function `name` with weights=None, on any device: BlockParams computes the
    widths and depths with torch tensors and reads them back (.tolist()), which the meta device cannot; that
    arithmetic runs on the CPU, the model is built on the current device."""
    from torchvision.models import regnet as tv_regnet

    from_init_params = tv_regnet.BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return from_init_params(cls, *args, **kwargs)

    def build(**kwargs):
        with unittest.mock.patch.object(tv_regnet.BlockParams, "from_init_params", classmethod(on_cpu)):
            return getattr(tvm, name)(weights=None, **kwargs)

    return build


REGNETS = [f"regnet_{kind}_{size}" for kind in "xy" for size in ["400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf",
                                                                   "32gf"]] + ["regnet_y_128gf"]

# The reference model of each preset of the zoo (`cnndsl zoo`) that is not torchvision's model function of the
# same name called with weights=None.
REFERENCES = {
    "mobilenet_v1": ReferenceMobileNetV1,
    "mobilenet_v1_075": functools.partial(ReferenceMobileNetV1, alpha=0.75),
    "mobilenet_v1_050": functools.partial(ReferenceMobileNetV1, alpha=0.5),
    "mobilenet_v1_025": functools.partial(ReferenceMobileNetV1, alpha=0.25),
    "alexnet_paper": alexnet_2012,
    "m5": WaveformCNN,
    "m3": functools.partial(WaveformCNN, (256, 256)),
    # torchvision warns unless init_weights is given; aux_logits=True (its default) is the preset's
    "googlenet": functools.partial(tvm.googlenet, weights=None, init_weights=False),
    "inception_v3": functools.partial(tvm.inception_v3, weights=None, init_weights=False),
    **{name: regnet(name) for name in REGNETS},
    # torchvision's COCO-trained weights have the auxiliary head; weights_backbone=None: nothing to download
    **{name: functools.partial(getattr(tvs, name), weights=None, weights_backbone=None, aux_loss=True)
       for name in ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
                    "deeplabv3_mobilenet_v3_large")},
    "lraspp_mobilenet_v3_large": functools.partial(tvs.lraspp_mobilenet_v3_large, weights=None,
                                                   weights_backbone=None),
    "unet_paper": ReferenceUNet,
    "unet_padded": functools.partial(ReferenceUNet, padding=1),
}
# Presets without a reference model: their tests check the papers' own figures (tests/test_zoo_classic.py).
NO_REFERENCE = {
    "lecun1989": "LeCun et al. 1989: parameters and connections per layer from the paper, shapes from Karpathy's "
                 "reproduction",
    "lenet5": "LeCun et al. 1998: parameters and connections per layer, Table I, from the paper",
}

# Trainable parameters as published: for torchvision's models, torchvision's model documentation
# (docs.pytorch.org/vision/stable/models.html, "Params"; each weights enum's meta["num_params"], which the tests
# compare with WEIGHTS); otherwise the papers or their reproductions, as cited. Every row of issue 5's table
# (torchvision's sum(p.numel()) with weights=None) is one of these figures.
PUBLISHED = {
    # LeCun et al. 1989: "9,760 independent parameters"; LeCun et al. 1998, Section II.B: LeNet-5's trainable
    # layers C1 .. F6 (156 + 12 + 1,516 + 32 + 48,120 + 10,164), besides its 840 fixed RBF prototypes
    "lecun1989": 9_760, "lenet5": 60_000,
    "alexnet": 61_100_840,
    # Krizhevsky et al. 2012, Section 3.5's layer shapes, each with a bias per kernel or unit ("60 million")
    "alexnet_paper": 60_965_224,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248,
    # googlenet(weights=None) with its default aux_logits=True (6,624,904 without: tested with aux_logits=false)
    "googlenet": 13_004_888,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "densenet121": 7_978_856, "densenet161": 28_681_000, "densenet169": 14_149_480, "densenet201": 20_013_928,
    # torchvision has no MobileNet v1: issue 5's figure, the paper's "4.2 million" (Table 6) counted exactly
    "mobilenet_v1": 4_231_976,
    "mobilenet_v2": 3_504_872, "mobilenet_v3_large": 5_483_032, "mobilenet_v3_small": 2_542_856,
    "shufflenet_v2_x0_5": 1_366_792, "shufflenet_v2_x1_0": 2_278_604, "shufflenet_v2_x1_5": 3_503_624,
    "shufflenet_v2_x2_0": 7_393_996,
    "efficientnet_b0": 5_288_548, "efficientnet_b1": 7_794_184, "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232, "efficientnet_b4": 19_341_616, "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704, "efficientnet_b7": 66_347_960,
    "vit_b_16": 86_567_656, "vit_b_32": 88_224_232, "vit_l_16": 304_326_632, "vit_l_32": 306_535_400,
    "vit_h_14": 632_045_800,
    # philipperemy/very-deep-convnets-raw-waveforms, the Keras reproduction of Dai et al. 2017, README.md:
    # "trainable params = 559,114" for M5 and 221,194 for M3 (10 classes; the paper rounds: 0.5M and 0.2M)
    "m5": 559_114, "m3": 221_194,
    "r3d_18": 33_371_472, "mc3_18": 11_695_440, "r2plus1d_18": 31_505_325,
    "convnext_tiny": 28_589_128, "convnext_small": 50_223_688, "convnext_base": 88_591_464,
    "convnext_large": 197_767_336, "swin_t": 28_288_354, "swin_s": 49_606_258, "swin_b": 87_768_224,
    "swin_v2_t": 28_351_570, "swin_v2_s": 49_737_442, "swin_v2_b": 87_930_848,
    "swin3d_t": 28_158_070, "swin3d_s": 49_816_678, "swin3d_b": 88_048_984,
    # with the auxiliary FCNHead, as the COCO-trained weights (their meta)
    "fcn_resnet50": 35_322_218, "fcn_resnet101": 54_314_346, "deeplabv3_resnet50": 42_004_074,
    "deeplabv3_resnet101": 60_996_202, "deeplabv3_mobilenet_v3_large": 11_029_328,
    "lraspp_mobilenet_v3_large": 3_221_538,
    # issue 11: torchvision's documentation, each also its weights' meta["num_params"] (WEIGHTS); Inception v3's
    # with its auxiliary classifier, whose weights torchvision's checkpoint holds
    "resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336, "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240, "wide_resnet101_2": 126_886_696,
    "squeezenet1_0": 1_248_424, "squeezenet1_1": 1_235_496,
    "mnasnet0_5": 2_218_512, "mnasnet0_75": 3_170_208, "mnasnet1_0": 4_383_312, "mnasnet1_3": 6_282_256,
    "efficientnet_v2_s": 21_458_488, "efficientnet_v2_m": 54_139_356, "efficientnet_v2_l": 118_515_272,
    "inception_v3": 27_161_264,
    "regnet_x_400mf": 5_495_976, "regnet_x_800mf": 7_259_656, "regnet_x_1_6gf": 9_190_136,
    "regnet_x_3_2gf": 15_296_552, "regnet_x_8gf": 39_572_648, "regnet_x_16gf": 54_278_536,
    "regnet_x_32gf": 107_811_560,
    "regnet_y_400mf": 4_344_144, "regnet_y_800mf": 6_432_512, "regnet_y_1_6gf": 11_202_430,
    "regnet_y_3_2gf": 19_436_338, "regnet_y_8gf": 39_381_472, "regnet_y_16gf": 83_590_140,
    "regnet_y_32gf": 145_046_770,
    "regnet_y_128gf": 644_812_894,
    # issue 11, video: torchvision's documentation, each also its Kinetics-400 weights' meta["num_params"]
    "s3d": 8_320_048, "mvit_v1_b": 36_610_672, "mvit_v2_s": 34_537_744,
    # issue 11: torchvision's documentation of maxvit_t, also its ImageNet weights' meta["num_params"]
    "maxvit_t": 30_919_624,
}

# torchvision's weights of each preset's network at the preset's input, whose meta gives the published
# "num_params" and "_ops" (multiply-adds, in G, 3 decimals): ImageNet weights at 224x224, except EfficientNet
# (each at its crop size), ViT-H/14 (no 224 weights but its SWAG linear-probe ones) and the video models
# (Kinetics-400, 16x112x112 clips). GoogLeNet's weights have no auxiliary classifiers, unlike the preset.
# EfficientNetV2 at its crop size (384, 480, 480), Inception v3 at 299 (its "_ops" without the auxiliary
# classifier, which runs only in training), RegNetY-128GF at 224 with its SWAG linear-probe weights.
WEIGHTS = {
    **{name: tvm.get_model_weights(name).IMAGENET1K_V1 for name in [
        "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "densenet121", "densenet161", "densenet169", "densenet201",
        "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
        "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
        *[f"efficientnet_b{k}" for k in range(8)],
        "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32",
        "convnext_tiny", "convnext_small", "convnext_base", "convnext_large", "swin_t", "swin_s", "swin_b",
        "swin_v2_t", "swin_v2_s", "swin_v2_b"]},
    "vit_h_14": tvm.ViT_H_14_Weights.IMAGENET1K_SWAG_LINEAR_V1,
    **{name: tvm.get_model_weights(name).KINETICS400_V1 for name in ["r3d_18", "mc3_18", "r2plus1d_18", "swin3d_t",
                                                                      "swin3d_s", "swin3d_b"]},
    # COCO-trained, with Pascal VOC's 21 classes, at 520x520
    **{name: tvm.get_model_weights(name).COCO_WITH_VOC_LABELS_V1 for name in [
        "fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large",
        "lraspp_mobilenet_v3_large"]},
    **{name: tvm.get_model_weights(name).IMAGENET1K_V1 for name in [
        "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
        "squeezenet1_0", "squeezenet1_1", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
        "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l", "inception_v3",
        *[name for name in REGNETS if name != "regnet_y_128gf"]]},
    "regnet_y_128gf": tvm.RegNet_Y_128GF_Weights.IMAGENET1K_SWAG_LINEAR_V1,
    # Kinetics-400, at the clip of its documented "_ops": S3D and MViT 16x224x224
    **{name: tvm.get_model_weights(name).KINETICS400_V1 for name in ["s3d", "mvit_v1_b", "mvit_v2_s"]},
    "maxvit_t": tvm.MaxVit_T_Weights.IMAGENET1K_V1,  # ImageNet, at 224x224 (its "_ops": 5.558)
}


def conv_path(model: nn.Module) -> nn.Module:
    """The model with its squeeze-excitation gates replaced by identities: the conv path alone, whose receptive
    field a gradient can measure (a gate sees the whole map: test_receptive_gates, test_zoo_maxvit)."""
    import torchvision

    for name, child in list(model.named_children()):
        if isinstance(child, torchvision.ops.SqueezeExcitation):
            setattr(model, name, nn.Identity())
        else:
            conv_path(child)
    return model


def fast_sample(names) -> set[str]:
    """The first target of each bundled file: the per-preset checks that every file's presets share run on these in
    the fast suite (`pytest -m "not slow"`) and on every preset with -m slow (CI runs both)."""
    from cnndsl.loader import zoo_index

    index, seen, out = zoo_index(), set(), set()
    for name in names:
        if index[name].name not in seen:
            seen.add(index[name].name)
            out.add(name)
    return out


def sampled(names) -> list:
    """pytest params over `names`: the fast sample as is, the others marked slow."""
    fast = fast_sample(names)
    return [pytest.param(n, id=n, marks=() if n in fast else pytest.mark.slow) for n in names]


# ---------------------------------------------------------------- builders, cached (see conftest.py)


class Networks:
    """cnndsl networks, elaborated, analysed and linted once per (target, inputs, params): `(net, totals)`.
    Elaboration and analysis must not warn (a CnnDslWarning or any other warning fails the test)."""

    def __init__(self):
        self._cache: dict = {}

    def __call__(self, target: str, inputs: dict | None = None, **params):
        key = (target, json.dumps(inputs, sort_keys=True, default=repr),
               json.dumps(params, sort_keys=True, default=repr))
        if key not in self._cache:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                net = cnndsl.load(target, inputs=inputs, **params)
                totals = cnndsl.analyze(net)
            assert net.warnings == [], [w.format() for w in net.warnings]
            lint_ir(net)
            self._cache[key] = net, totals
        return self._cache[key]


def torchvision_builder(name: str):
    """torchvision's model function of that name (torchvision.models or torchvision.models.video)."""
    for namespace in (tvm, tvv):
        fn = getattr(namespace, name, None)
        if callable(fn) and not isinstance(fn, type):
            return lambda **kwargs: fn(weights=None, **kwargs)
    raise KeyError(f"torchvision has no model function {name!r}")


class ReferenceModels:
    """Reference models in eval mode, built once per (name, device, kwargs) after torch.manual_seed(0):
    `builders[name](**kwargs)` (by default REFERENCES: the hand-written ones), or else torchvision's model
    function of that name with weights=None. device="meta" (the default) for counting; "cpu" for running."""

    def __init__(self, builders: dict | None = None):
        self._builders = REFERENCES if builders is None else dict(builders)
        self._cache: dict = {}

    def __call__(self, name: str, device: str = "meta", **kwargs) -> nn.Module:
        key = (name, device, repr(sorted(kwargs.items())))
        if key not in self._cache:
            build = self._builders.get(name) or torchvision_builder(name)
            torch.manual_seed(0)
            with torch.device(device):
                self._cache[key] = build(**kwargs).eval()
        return self._cache[key]


# ---------------------------------------------------------------- counts


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fixed(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if not p.requires_grad)


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def buffers(model: nn.Module) -> int:
    return sum(b.numel() for b in model.buffers())


def torch_numbers(model: nn.Module) -> dict[str, int]:
    """The counts cnndsl's totals report, as torch counts them on the model."""
    return {"trainable_params": trainable(model), "fixed_params": fixed(model), "buffers": buffers(model)}


def assert_counts(totals: dict, model: nn.Module, published: int | None = None) -> None:
    """The analysis counts the model's trainable parameters (and, when given, the published figure), no
    fixed ones, and the model's buffers (BN running mean and variance, and num_batches_tracked)."""
    assert totals["trainable_params"] == trainable(model)
    if published is not None:
        assert totals["trainable_params"] == published
    assert totals["fixed_params"] == fixed(model) == 0 and totals["params"] == totals["trainable_params"]
    assert totals["buffers"] == buffers(model)


# ---------------------------------------------------------------- state_dict


def ir_state(net) -> dict[str, tuple[tuple[int, ...], str]]:
    """state_dict key -> (shape, kind) of every parameter and buffer of the IR, in the IR's order."""
    if not any("params" in d for d in net.nodes()):
        cnndsl.analyze(net)  # the parameter pass annotates the nodes
    return {f"{d['name']}.{p.name}" if p.name else d["name"]: (tuple(p.shape), p.kind)
            for d in net.nodes() for p in d.get("params", ())}


def torch_state(model: nn.Module) -> dict[str, tuple[tuple[int, ...], str]]:
    """state_dict key -> (shape, "trainable" | "fixed" | "buffer") of a torch module."""
    out = {k: (tuple(v.shape), "trainable" if v.requires_grad else "fixed") for k, v in model.named_parameters()}
    out.update({k: (tuple(v.shape), "buffer") for k, v in model.named_buffers()})
    return out


def assert_state_dict_is_the_models(net, model: nn.Module, in_order: bool = True) -> None:
    """The IR's parameters and buffers are the model's state_dict: the same keys (in_order: in the same
    order), the same shapes, and each a trainable parameter, a fixed one or a buffer as in the model."""
    mine, state = ir_state(net), model.state_dict()
    assert set(mine) == set(state)
    if in_order:
        assert list(mine) == list(state)
    assert {k: shape for k, (shape, _) in mine.items()} == {k: tuple(v.shape) for k, v in state.items()}
    assert mine == torch_state(model)


# ---------------------------------------------------------------- MACs through FlopCounterMode


@contextlib.contextmanager
def attention_counted():
    """nn.MultiheadAttention's fast path and the fused SDPA kernels hide the attention products from
    FlopCounterMode; the slow path with the math backend runs them as bmm, which it counts."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def flop_counts(model: nn.Module, shape=IMAGE, batch: int = 1) -> dict[str, dict[str, int]]:
    """FlopCounterMode's FLOPs per module and op name ("Global" for the whole model) of one forward pass on
    zeros of (batch, *shape), in the model's current mode, on the model's device."""
    with torch.no_grad(), attention_counted(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(batch, *shape, device=device_of(model)))
    return {module: {str(op): n for op, n in ops.items()} for module, ops in counter.get_flop_counts().items()}


def matmul_macs(counts: dict[str, int], batch: int = 1) -> int:
    """MACs per sample in FlopCounterMode's counts: the convolution and matrix-product FLOPs, halved."""
    flops = sum(n for op, n in counts.items() if str(op) in MATMUL_OPS)
    assert flops % (2 * batch) == 0
    return flops // (2 * batch)


def reference_macs(model: nn.Module, shape=IMAGE, train: bool = False) -> int:
    """MACs of a model per sample, by FlopCounterMode. In training mode (torchvision's GoogLeNet then also
    runs its auxiliary classifiers) on a batch of two: batch norm refuses to train on one value per channel.
    The model is left in eval mode."""
    batch = 2 if train else 1
    model.train(train)
    try:
        counts = flop_counts(model, shape, batch)["Global"]
    finally:
        model.eval()
    return matmul_macs(counts, batch)


def node_macs_checked(net, model: nn.Module, ops: dict[str, int], shape=IMAGE) -> int:
    """Assert that each node whose op is in `ops` has the MACs FlopCounterMode counts in the model's module
    of the same name; return how many modules those nodes stand for (ops[op] each)."""
    counts = flop_counts(model, shape)
    prefix = type(model).__name__
    checked = 0
    for data in net.nodes():
        if data["op"] in ops:
            assert data["macs"] == matmul_macs(counts[f"{prefix}.{data['name']}"]), data["name"]
            checked += ops[data["op"]]
    return checked


def conv_and_linear_modules(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) for m in model.modules())


# ---------------------------------------------------------------- shapes


def module_output_shapes(model: nn.Module, shape, train: bool = False) -> dict[str, tuple[int, ...]]:
    """Output shape (without the batch) of every named module on its first call (torchvision reuses one ReLU
    per block), on the model's device; in training mode on a batch of two. The model is left in eval mode."""
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name):
        def hook(module, args, out):  # returns None: the output is left alone
            shapes.setdefault(name, tuple(out.shape[1:]))
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if name]
    model.train(train)
    try:
        with torch.no_grad():
            model(torch.zeros(2 if train else 1, *shape, device=device_of(model)))
    finally:
        model.eval()
        for h in hooks:
            h.remove()
    return shapes


def ir_output_shapes(net) -> dict[str, tuple[int, ...]]:
    """Output shape of every node and of every scope (its last node: a block's result, a sequence's end)."""
    shapes = {name: net.type_of(name).shape for name in net.order}
    for scope in net.scopes:
        if scope:
            last = [n for n in net.order if n.startswith(scope + ".")][-1]
            shapes[scope] = net.type_of(last).shape
    return shapes


def assert_module_output_shapes(net, model: nn.Module, shape, train: bool = False) -> dict[str, tuple[int, ...]]:
    """Every module the model calls is a node or a scope of the IR, with the model's output shape. Returns
    the IR's shapes."""
    theirs = module_output_shapes(model, shape, train)
    mine = ir_output_shapes(net)
    assert set(theirs) <= set(mine)
    assert {k: mine[k] for k in theirs} == theirs
    return mine


# ---------------------------------------------------------------- the generated module against a reference


def random_input(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def generated(net, reference: nn.Module) -> nn.Module:
    """cnndsl.to_torch(net) (or a generated module already built), holding the reference's state_dict
    loaded with strict=True, in eval mode."""
    model = net if isinstance(net, nn.Module) else cnndsl.to_torch(net)
    model.load_state_dict(reference.state_dict(), strict=True)
    return model.eval()


def norm_error(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach(), want.detach()
    return float((got - want).norm() / want.norm())


def max_error(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach(), want.detach()
    return float((got - want).abs().max() / want.abs().max())


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """The larger of the norm-wise and the element-wise relative errors of `got` against `want`, whose
    shapes must agree."""
    assert got.shape == want.shape
    return max(norm_error(got, want), max_error(got, want))


@contextlib.contextmanager
def one_thread():
    """Small inputs gain nothing from more threads, and on a busy 2-core CI runner the first call of a
    many-layer model with intra-op threads takes seconds instead of a tenth of one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def output_error(net, reference: nn.Module, x: torch.Tensor, threads: int | None = None) -> float:
    """`relative_error` of the generated module holding the reference's state_dict (strict=True) against the
    reference, both in eval mode, on x (without gradients; on one thread when threads=1)."""
    model = generated(net, reference)
    reference.eval()
    with one_thread() if threads == 1 else contextlib.nullcontext(), torch.no_grad():
        got, want = model(x), reference(x)
    assert want.abs().max() > 0  # a reference that outputs zeros would agree with anything
    return relative_error(got, want)


# ---------------------------------------------------------------- generated source


def unused_definitions(source: str) -> list[str]:
    """Classes and functions of a generated file that nothing in it refers to and that it does not export."""
    tree = ast.parse(source)
    defined = [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    exported = set(ast.literal_eval(source.split("__all__ = ", 1)[1].splitlines()[0]))
    return [name for name in defined if name not in used and name not in exported]
