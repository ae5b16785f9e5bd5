"""`training output`: outputs present only in training mode (GoogLeNet's and Inception v3's auxiliary
classifiers). The language (a word before `output`, an ordinary name elsewhere), the IR (Network.training_outputs,
eval_outputs(), training_nodes()), the analysis (parameters count the heads, MACs, FLOPs and memory the eval path,
training_macs and training_flops the heads too), the PyTorch backend (`if self.training:` around the heads; eval
returns the eval outputs, training a namedtuple of all) and the NumPy backend (the eval outputs only).

The zoo's GoogLeNet and Inception v3 are compared with torchvision in test_zoo_inception_video_audio.py and
test_zoo_torchvision_more.py; the misuses are tests/diagnostics/output_training_*.cnn. Expected numbers here are
computed by hand from the layer sizes (the formula is in each comment).
"""

from __future__ import annotations

import ast
import json

import numpy as np
import pytest
import torch

import cnndsl
from cnndsl.cli import main as cli_main

HEADS = """
network heads(num_classes=10) {
    "A trunk, an auxiliary classifier for training, and the main head"
    input x: 3x8x8
    y = x -> stem: conv(4, 3, pad=1) -> relu
    aux = y -> aux: [global_avgpool, flatten, fc: linear(num_classes)]
    y = y -> body: conv(8, 3, pad=1) -> relu
    output logits = y -> head: [global_avgpool, flatten, fc: linear(num_classes)]
    training output aux_logits = aux
}
"""

# conv 3->4 3x3 on 8x8: 4*3*9 = 108 weights + 4 biases, 108*64 = 6,912 MACs; conv 4->8: 8*4*9 = 288 + 8,
# 288*64 = 18,432 MACs; head linear 8->10: 80 + 10, 80 MACs; aux linear 4->10: 40 + 10, 40 MACs
PARAMS = 112 + 296 + 90 + 50
EVAL_MACS = 6_912 + 18_432 + 80
AUX_MACS = 40


def load(tmp_path, text: str = HEADS, **params):
    path = tmp_path / "heads.cnn"
    path.write_text(text, encoding="utf-8")
    return cnndsl.load(str(path), **params)


def module(net):
    torch.manual_seed(0)
    return cnndsl.to_torch(net)


def test_the_ir_records_which_outputs_are_training_only(tmp_path):
    net = load(tmp_path)
    assert list(net.outputs) == ["logits", "aux_logits"]  # declaration order, as before
    assert net.training_outputs == ["aux_logits"]
    assert list(net.eval_outputs()) == ["logits"]
    assert net.training_nodes() == {"aux.0", "aux.1", "aux.fc"}


def test_training_stays_an_ordinary_name(tmp_path):
    # `training` is a word only right before `output`: a parameter, a variable or a list element may use it
    net = load(tmp_path, """
network t(training=2) {
    input x: 3x8x8
    training_ = training
    output y = x -> conv([training, 4][0] * training_, 1)
}
""")
    assert net.training_outputs == [] and net.type_of(net.outputs["y"]).shape == (4, 8, 8)


def test_analysis_counts_the_heads_parameters_and_the_eval_paths_macs(tmp_path):
    net = load(tmp_path)
    totals = cnndsl.analyze(net)
    assert totals["params"] == PARAMS  # the heads are parameters of the model
    assert totals["macs"] == EVAL_MACS  # what eval mode computes
    assert totals["training_macs"] == EVAL_MACS + AUX_MACS
    assert totals["training_flops"] > totals["flops"]
    assert net.node("aux.fc")["training_only"] and not net.node("head.fc")["training_only"]
    # memory in eval mode: the aux head's tensors are not counted; without the head they are the same
    plain = load(tmp_path, HEADS.replace("    training output aux_logits = aux\n", ""))
    plain_totals = cnndsl.analyze(plain)
    # (the pooled 4x1x1 and the 10 logits, float32; flatten is a view of the pooled map)
    assert totals["activation_bytes"] == plain_totals["activation_bytes"] - 4 * (4 + 10)
    assert totals["peak_activation_bytes"] <= plain_totals["peak_activation_bytes"]


def test_reports_say_which_outputs_and_numbers_are_for_training(tmp_path, capsys):
    (tmp_path / "heads.cnn").write_text(HEADS, encoding="utf-8")
    assert cli_main(["analyze", str(tmp_path / "heads.cnn")]) == 0
    table = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert f"MACs {EVAL_MACS:,} (25.42 k, eval mode)" in table
    assert f"training MACs {EVAL_MACS + AUX_MACS:,} (25.46 k, with aux_logits)" in table
    assert "outputs logits 10, aux_logits 10 (training)" in table
    assert any(line.startswith("aux sequence (training) 10 50 40") for line in table)  # the aux head's row
    assert cli_main(["analyze", str(tmp_path / "heads.cnn"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["training_outputs"] == ["aux_logits"] and list(doc["outputs"]) == ["logits", "aux_logits"]
    assert doc["totals"]["macs"] == EVAL_MACS and doc["totals"]["training_macs"] == EVAL_MACS + AUX_MACS
    assert sum(layer["macs"] for layer in doc["layers"] if not layer["training_only"]) == EVAL_MACS
    assert {layer["name"] for layer in doc["layers"] if layer["training_only"]} == {"aux.0", "aux.1", "aux.fc"}


def test_torch_module_returns_the_main_output_in_eval_and_a_namedtuple_in_training(tmp_path):
    net = load(tmp_path)
    source = cnndsl.compile(net, "torch")
    assert 'HeadsOutputs = namedtuple("HeadsOutputs", ["logits", "aux_logits"])' in source
    assert "from collections import OrderedDict, namedtuple" in source
    ast.parse(source)
    model = module(net)
    calls = []
    for name in ("aux", "aux.fc"):
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    x = torch.randn(2, 3, 8, 8)
    model.eval()
    y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 10) and calls == []
    model.train()
    out = model(x)
    assert type(out).__name__ == "HeadsOutputs" and out._fields == ("logits", "aux_logits")
    assert calls == ["aux.fc", "aux"]
    # the same function as the modules computed by hand (no dropout, no batch norm: modes agree)
    trunk = torch.relu(model.stem(x))
    want_aux = model.aux.fc(trunk.mean((2, 3)))
    want = model.head.fc(torch.relu(model.body(trunk)).mean((2, 3)))
    torch.testing.assert_close(out.aux_logits, want_aux)
    torch.testing.assert_close(out.logits, want)
    torch.testing.assert_close(y, want)


def test_several_eval_outputs_stay_a_dict_in_eval(tmp_path):
    # segmentation-style outputs (`out`, `aux`, both always present) keep returning a dict; a training output
    # adds a namedtuple of all three in training mode
    text = HEADS.replace("output logits = ", "output out = ").replace(
        "    training output aux_logits = aux\n", "    output side = y\n    training output aux_logits = aux\n")
    net = load(tmp_path, text)
    model = module(net).eval()
    x = torch.randn(2, 3, 8, 8)
    y = model(x)
    assert isinstance(y, dict) and list(y) == ["out", "side"]
    out = model.train()(x)
    assert out._fields == ("out", "side", "aux_logits")
    torch.testing.assert_close(out.out, y["out"])


def test_an_output_named_like_a_keyword_still_makes_a_namedtuple(tmp_path):
    net = load(tmp_path, HEADS.replace("aux_logits = aux", "_hidden = aux"))
    out = module(net).train()(torch.randn(2, 3, 8, 8))
    assert len(out) == 2 and out._fields[0] == "logits"


def test_numpy_returns_the_eval_outputs_and_loads_the_whole_state_dict(tmp_path):
    net = load(tmp_path)
    source = cnndsl.compile(net, "numpy")
    assert "training outputs, not computed at inference: aux_logits" in source
    model = module(net).eval()
    namespace: dict = {}
    exec(compile(source, "<numpy heads>", "exec"), namespace)  # noqa: S102 (our generated code)
    numpy_model = namespace["Heads"](model.state_dict())  # aux.fc's weights included: strict, all or nothing
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    got = numpy_model(x)
    assert isinstance(got, np.ndarray)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("preset", ["googlenet", "inception_v3"])
def test_zoo_heads_are_training_outputs_in_the_generated_code(preset):
    net = cnndsl.load(preset)
    source = cnndsl.compile(net, "torch")
    forward = source.split("    def forward(self, x):")[-1].split("\n\n\n")[0]
    assert forward.count("        if self.training:\n") == (3 if preset == "googlenet" else 2)
    assert forward.rstrip().endswith("return y")
    assert "aux_logits" not in cnndsl.compile(net, "numpy").split("def __call__")[-1]
