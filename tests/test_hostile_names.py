"""Generated code no name or string can break: hostile names (Python keywords and constants, the names the
generated files import or define, nn.Module's attributes, dunders) and hostile strings (quotes at the end,
backslashes, NUL, control characters, line separators) in every place a .cnn file can put them. Each
program is refused with a CnnError, or compiles, for both backends, to a file that parses, defines each
top-level name once, builds and runs a forward pass that agrees between the backends."""

from __future__ import annotations

import ast
import keyword

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl.names import MODULE_ATTRIBUTES

HOSTILE = ["None", "True", "False", "self", "torch", "nn", "F", "f", "np", "math", "OrderedDict", "WeightError",
           "weight_error", "forward", "training", "__call__", "__init__", "__class__", "_modules", "_parameters",
           "__dict__", "x", "y", "out", "super", "print", "type", "object", "int", "list", "dict", "range", "len",
           "float", "w", "weights", "Net", "ClassicConv", "classic_conv", "channel_shuffle", "SelfAttention",
           "load_npz", "load_state_dict", "SHAPES", "state_dict", "cuda", "half", "apply", "conv", "relu",
           "lambda_", "async_", "nonlocal_", "Bottleneck", "cls", "model", "_numpy", "__builtins__", "__name__",
           "exec", "eval", "__import__", "get_submodule", "T_destination", "dump_patches", "call_super_init"]
STRINGS = ['ends in a quote\\"', "ends in a backslash\\\\", 'three \\"\\"\\" quotes', "a NUL \x00 byte", "tab\\tand\\n",
           "line\u2028separator", "bell \x07 and escape \x1b", "\u00e9t\u00e9 \U0001f600", "'''single'''", "}{", ""]
# raw control characters cannot be typed inside a .cnn string (a NUL, \x07 and \x1b are lexed as they are)

TEMPLATE = """block {block}({p}, {q}=2) {{
    {v} = {p} -> {l1}: conv({q} * 2, 3, pad=1) -> relu
    return {v}
}}

network {net}() {{
    "{doc}"
    input {i}: 3x8x8
    {v2} = {i} -> {l2}: {block}(3) -> {l3}: [conv(4, 1), relu]
    output {o} = {v2} -> global_avgpool -> flatten -> {l4}: linear(3)
    output {o2} = {v2}
}}
"""

names = st.sampled_from(HOSTILE)


def fuzz(n):
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])


def top_level_names(tree: ast.Module) -> list[str]:
    out = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out += [(a.asname or a.name).split(".")[0] for a in node.names]
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            out.append(node.name)
        elif isinstance(node, ast.Assign):
            out += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return out


def build(tmp_path, text: str):
    path = tmp_path / "hostile.cnn"
    path.write_text(text, encoding="utf-8")
    try:
        return cnndsl.load(str(path))
    except cnndsl.CnnError as err:
        message = err.format()
        assert "error:" in message and "Traceback" not in message
        return None


PLAIN = TEMPLATE.format(block="b", p="x", q="c", v="y", net="n", i="x", v2="y", o="out", o2="out2", l1="c1",
                        l2="blk", l3="seq", l4="fc", doc="plain")


def split_definitions(source: str) -> tuple[set[str], int]:
    """(top-level names that are not classes of the network, number of such classes): a generated file defines
    the same fixed names (imports, helpers, kernels, WeightError) whatever the .cnn file calls things."""
    tree = ast.parse(source)
    defined = top_level_names(tree)
    assert len(defined) == len(set(defined)), f"a top-level name defined twice: {sorted(defined)}"
    from cnndsl.backends.pytorch import HELPER_NAMES

    own = {n.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name not in HELPER_NAMES
           and n.name != "WeightError"}
    return set(defined) - own, len(own)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    path = tmp_path_factory.mktemp("plain") / "plain.cnn"
    path.write_text(PLAIN, encoding="utf-8")
    net = cnndsl.load(str(path))
    return {backend: split_definitions(cnndsl.compile(net, backend)) for backend in ("torch", "numpy")}


def check_generated(net, plain=None) -> None:
    torch_source = cnndsl.compile(net, "torch")
    numpy_source = cnndsl.compile(net, "numpy")
    for backend, source in (("torch", torch_source), ("numpy", numpy_source)):
        assert "\x00" not in source
        fixed, classes = split_definitions(source)
        if plain is not None:  # the same program with plain names: nothing more, nothing less is defined
            assert (fixed, classes) == plain[backend], backend
    torch.manual_seed(0)
    model = cnndsl.to_torch(net).eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        got = model(x)
    namespace: dict = {}
    exec(compile(numpy_source, "<numpy>", "exec"), namespace)  # our generated code
    from cnndsl.backends.pytorch import class_name
    np_model = namespace[class_name(net)]()
    np_model.load_state_dict({k: v.detach().numpy() for k, v in model.state_dict().items()})
    np_got = np_model(x.numpy())
    outputs = got if isinstance(got, dict) else {next(iter(net.outputs)): got}
    np_outputs = np_got if isinstance(np_got, dict) else {next(iter(net.outputs)): np_got}
    assert list(outputs) == list(net.outputs) == list(np_outputs)
    for k in outputs:
        assert np.allclose(outputs[k].numpy(), np_outputs[k], atol=1e-4)


@fuzz(30)
@given(globals_=st.lists(names, min_size=2, max_size=2, unique=True), p=names, q=names, v=names, i=names, v2=names,
       outs=st.lists(names, min_size=2, max_size=2, unique=True), l1=names, l2=names, l3=names, l4=names,
       doc=st.sampled_from(STRINGS))
def test_hostile_names_and_strings_compile_to_code_that_runs(tmp_path, plain, globals_, p, q, v, i, v2, outs, l1,
                                                             l2, l3, l4, doc):
    (block, net), (o, o2) = globals_, outs
    text = TEMPLATE.format(block=block, p=p, q=q, v=v, net=net, i=i, v2=v2, o=o, o2=o2, l1=l1, l2=l2, l3=l3, l4=l4,
                           doc=doc)
    built = build(tmp_path, text)
    if built is not None:
        check_generated(built, plain)


@pytest.mark.parametrize("role", ["block", pytest.param("network", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", HOSTILE)
def test_each_hostile_name_everywhere_at_once(tmp_path, plain, name, role):
    refused = name in MODULE_ATTRIBUTES or keyword.iskeyword(name) or name.startswith("__")  # tested below
    label = "n" + name if refused else name
    block, net = (name, "n") if role == "block" else ("b", name)
    inp = name + "_i" if role == "block" else name  # the network's variables would hide the block
    text = TEMPLATE.format(block=block, p=name + "_p", q=name + "_q", v=name, net=net, i=inp, v2=name + "_v", o=name,
                           o2=name + "2", l1=label, l2=label + "_b", l3=label + "3", l4=label + "4", doc=name)
    built = build(tmp_path, text)
    if name in ("conv", "relu"):  # a block or an input of that name hides the op the template calls
        assert built is None
        return
    assert built is not None, text
    check_generated(built, plain)


@pytest.mark.parametrize("doc", STRINGS)
def test_each_hostile_description(tmp_path, doc):
    text = TEMPLATE.format(block="b", p="x", q="c", v="y", net="n", i="x", v2="y", o="out", o2="out2", l1="c1",
                           l2="blk", l3="seq", l4="fc", doc=doc)
    net = build(tmp_path, text)
    assert net is not None
    check_generated(net)
    namespace: dict = {}
    exec(compile(cnndsl.compile(net, "torch"), "<torch>", "exec"), namespace)
    decoded = doc.replace("\\\\", "\\").replace("\\t", "\t").replace("\\n", "\n").replace('\\"', '"')
    assert decoded.split("\n")[0] in namespace["N"].__doc__.replace("\n", " ") or not decoded.strip()


def test_module_attribute_list_is_every_attribute_of_nn_module():
    # dir() of the class and of an instance: methods, properties and what __init__ sets (training, _modules)
    names = set(dir(torch.nn.Module)) | set(dir(torch.nn.Module())) | set(vars(torch.nn.Module()))
    assert names <= MODULE_ATTRIBUTES, sorted(names - MODULE_ATTRIBUTES)


@pytest.mark.parametrize("label", ["__call__", "__init__", "__class__", "_modules", "_parameters", "__dict__",
                                   "training", "forward", "state_dict", "T_destination", "None", "True", "__x"])
def test_module_attributes_cannot_label_a_node(tmp_path, label):
    net = build(tmp_path, f"network n() {{\n    input x: 3x8x8\n    output y = x -> {label}: relu\n}}\n")
    assert net is None
