"""The checks issue 5 asks of every preset of the zoo, one test per check over all presets: published
parameter counts, torchvision's documented GFLOPS, parameters, buffers, state_dict and MACs equal to the
reference model's (torchvision's, or a hand-written module in tests/reference.py), and no warning from
analysis or either backend. Family-specific checks are in tests/test_zoo_<family>.py.
"""

from __future__ import annotations

import ast
import warnings

import pytest

import cnndsl
from cnndsl.cli import main as cli_main
from cnndsl.loader import zoo_index
from cnndsl.zoo import entries

from reference import (NO_REFERENCE, PUBLISHED, WEIGHTS, assert_counts, assert_state_dict_is_the_models, reference_macs,
                       sampled)

ZOO = [e.name for e in entries()]  # what `cnndsl zoo` lists
TARGETS = list(zoo_index())  # those, and the generic networks they are presets of, with their defaults
WITH_REFERENCE = [preset for preset in ZOO if preset not in NO_REFERENCE]
# Reference models that register their parameters in another order than they use them (the IR's order):
# torchvision's GoogLeNet makes aux1 and aux2 after inception5b; its ViT's class token, a Parameter of the top
# module, comes before the children (conv_proj) in the state_dict; so does each ConvNeXt block's layer_scale,
# which the block applies after its `block` Sequential; Swin's PatchMerging makes `reduction` before the `norm`
# it applies first, and Swin V2's blocks make `norm1` before the `attn` it follows.
REGISTRATION_ORDER = {"googlenet", "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14",
                      "convnext_tiny", "convnext_small", "convnext_base", "convnext_large",
                      "swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b", "swin3d_t", "swin3d_s",
                      "swin3d_b"}
# torchvision's GoogLeNet and Inception v3 run their auxiliary classifiers (training outputs of the preset) in
# training mode only: cnndsl's `macs` is the eval path, `training_macs` adds the heads.
TRAINING_MODE = {"googlenet", "inception_v3"}
# torchvision's MViT blocks make pool_skip, norm1 and norm2 before the attn and mlp they feed.
REGISTRATION_ORDER |= {"mvit_v1_b", "mvit_v2_s"}


def test_every_preset_has_a_reference_or_its_papers_figures():
    assert set(ZOO) <= set(TARGETS)
    assert set(NO_REFERENCE) <= set(ZOO) and set(PUBLISHED) <= set(ZOO) and set(WEIGHTS) <= set(PUBLISHED)
    assert set(REGISTRATION_ORDER) | TRAINING_MODE <= set(WITH_REFERENCE)
    # issue 5's table: every preset it names has a published figure (the values: reference.PUBLISHED)
    table = ["lecun1989", "lenet5", "alexnet", "alexnet_paper", "vgg16", "vgg19", "vgg16_bn", "googlenet",
             "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "densenet121", "densenet161",
             "densenet169", "densenet201", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large",
             "mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0", "efficientnet_b7", "vit_b_16", "m5",
             "r3d_18"]
    assert set(table) <= set(PUBLISHED)


@pytest.mark.parametrize("target", sampled(TARGETS))
def test_analyzes_and_compiles_for_both_backends_without_a_warning(target, capsys):
    # cnndsl.load raises each lint warning as a CnnDslWarning (an error here) and keeps it on net.warnings;
    # the CLI prints it on stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = cnndsl.load(target)
        cnndsl.analyze(net)
        for backend in ("torch", "numpy"):
            ast.parse(cnndsl.compile(net, backend))
    assert net.warnings == []
    for argv in (["check", target], ["analyze", target], ["compile", target, "--backend", "torch"],
                 ["compile", target, "--backend", "numpy"]):
        assert cli_main(argv) == 0, argv
        assert capsys.readouterr().err == "", argv


@pytest.mark.parametrize("preset", list(PUBLISHED))
def test_trainable_parameters_are_the_published_figure(preset, ours):
    _, totals = ours(preset)
    assert totals["trainable_params"] == PUBLISHED[preset]
    if preset in WEIGHTS:
        assert PUBLISHED[preset] == WEIGHTS[preset].meta["num_params"]


@pytest.mark.parametrize("preset", list(WEIGHTS))
def test_gmacs_round_to_torchvisions_documented_gflops(preset, ours):
    # torchvision's model table lists "GFLOPS" in the MAC convention (meta["_ops"], rounded to 3 decimals),
    # measured at the weights' input, which is the preset's, in eval mode: without auxiliary classifiers, which
    # are training outputs of the presets (GoogLeNet, Inception v3), so `macs` counts the eval path as it is
    _, totals = ours(preset)
    assert round(totals["macs"] / 1e9, 3) == WEIGHTS[preset].meta["_ops"]


@pytest.mark.parametrize("preset", WITH_REFERENCE)
def test_parameters_and_buffers_are_the_references(preset, ours, tv):
    # trainable and fixed parameters; buffers: BN running mean and variance, and num_batches_tracked per BN
    _, totals = ours(preset)
    assert_counts(totals, tv(preset))


@pytest.mark.parametrize("preset", WITH_REFERENCE)
def test_state_dict_is_the_references(preset, ours, tv):
    # the same keys (in the same order where the reference registers them in the order it uses them), the
    # same shapes, each a parameter or a buffer as in the reference
    net, _ = ours(preset)
    assert_state_dict_is_the_models(net, tv(preset), in_order=preset not in REGISTRATION_ORDER)


@pytest.mark.parametrize("preset", sampled(WITH_REFERENCE))
def test_macs_equal_flop_counter_on_the_reference(preset, ours, tv):
    # at the preset's own input; FlopCounterMode's convolution and matrix-product FLOPs, halved
    net, totals = ours(preset)
    (x,) = net.inputs.values()
    assert totals["macs"] == reference_macs(tv(preset), net.type_of(x).shape)  # eval mode
    if preset in TRAINING_MODE:  # and the auxiliary classifiers, which torchvision runs in training mode only
        assert totals["training_macs"] == reference_macs(tv(preset), net.type_of(x).shape, train=True)
        assert totals["training_macs"] > totals["macs"]
    else:
        assert totals["training_macs"] == totals["macs"]
