"""The language reference (docs/language.md) stays true to the compiler: its generated sections (op
reference, builtins, console output) are what docs/gen_reference.py makes from the compiler today, and
every example in it runs. The conventions for its code blocks are stated in the HTML comment at its top:

    ```cnn                      a complete file: elaborates (with its presets) and analyses without error
    ```cnn file=NAME            the same, saved as NAME so that imports and console examples find it
    ```cnn ... expect=error     must fail with a located CnnError
    ```cnn ... expect=warning   elaborates with located warnings (every other example has none)
    ```cnn-fragment             parses as a file, or as statements of a network body
    ```console / ```python      run in the folder of the file= examples
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import io
import re
import runpy
from pathlib import Path

import pytest

import cnndsl
from cnndsl.elaborate import elaborate
from cnndsl.errors import Source
from cnndsl.ir import lint_ir
from cnndsl.loader import load_program, program_target
from cnndsl.syntax import parse

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "language.md"


def _load_generator(name: str = "gen_reference"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = gen.fenced_blocks(TEXT)
KNOWN_LANGUAGES = {"cnn", "cnn-fragment", "console", "python", ""}


def blocks(lang: str) -> list:
    return [pytest.param(b, id=f"line{b[3]}") for b in BLOCKS if b[0] == lang]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A folder holding every ```cnn file=NAME example, as the console and python examples expect."""
    path = tmp_path_factory.mktemp("doc_examples")
    gen.write_example_files(TEXT, path)
    return path


# ---------------------------------------------------------------- generated sections


# The table (torchvision's sum(p.numel()) with weights=None; LeNet-5 and LeCun 1989 from their
# papers): docs/zoo.md must show these very figures, so the page is checked against a source of its own.
ZOO_FIGURES = {
    "lecun1989": "9,760", "lenet5": "60,840 (840 fixed)", "alexnet": "61,100,840", "alexnet_paper": "60,965,224",
    "vgg16": "138,357,544", "vgg19": "143,667,240", "vgg16_bn": "138,365,992", "googlenet": "13,004,888",
    "googlenet --set aux_logits=false": "6,624,904", "resnet18": "11,689,512", "resnet34": "21,797,672",
    "resnet50": "25,557,032", "resnet101": "44,549,160", "resnet152": "60,192,808", "densenet121": "7,978,856",
    "densenet161": "28,681,000", "densenet169": "14,149,480", "densenet201": "20,013,928",
    "mobilenet_v1": "4,231,976", "mobilenet_v2": "3,504,872", "mobilenet_v3_large": "5,483,032",
    "mobilenet_v3_small": "2,542,856", "shufflenet_v2_x1_0": "2,278,604", "efficientnet_b0": "5,288,548",
    "efficientnet_b7": "66,347,960", "vit_b_16": "86,567,656", "r3d_18": "33,371,472",
}


def test_the_zoo_page_is_up_to_date():
    zoo = _load_generator("gen_zoo")
    fresh, page = zoo.render(), zoo.DOC.read_text(encoding="utf-8")
    if fresh != page:
        diff = "".join(list(difflib.unified_diff(page.splitlines(True), fresh.splitlines(True), "zoo.md",
                                                 "generated"))[:80])
        pytest.fail(f"docs/zoo.md is stale; run `python docs/gen_zoo.py`:\n{diff}")


def test_the_zoo_page_lists_every_preset_with_the_reference_figures():
    from cnndsl.zoo import entries

    page = (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8")
    rows = {m[1]: m[2].split(" | ") for m in re.finditer(r"^\| `([^`]+)`[^|]* \| (.+) \|$", page, re.MULTILINE)}
    assert {e.name for e in entries()} <= set(rows)
    for name, params in ZOO_FIGURES.items():
        assert rows[name][2] == params, (name, rows[name])


def test_generated_sections_are_up_to_date():
    fresh = gen.generate(TEXT)
    if fresh != TEXT:
        diff = "".join(list(difflib.unified_diff(TEXT.splitlines(True), fresh.splitlines(True), "language.md",
                                                 "generated"))[:80])
        pytest.fail(f"docs/language.md is stale; run `python docs/gen_reference.py`:\n{diff}")


def test_every_op_and_builtin_has_its_entry():
    from cnndsl.ops import REGISTRY
    from cnndsl.values import BUILTINS

    ops = TEXT[TEXT.index("<!-- ops:begin -->"):TEXT.index("<!-- ops:end -->")]
    for name, spec in REGISTRY.items():
        assert f"\n#### {name}\n" in ops, name
        assert f"`{gen.signature(spec)}`" in ops, name
        for arg in spec.args:
            assert f"| `{arg.name}` |" in ops, (name, arg.name)
    table = TEXT[TEXT.index("<!-- builtins:begin -->"):TEXT.index("<!-- builtins:end -->")]
    for name in BUILTINS:
        assert f"| `{name}(" in table, name


def test_check_mode_fails_on_a_stale_file_and_a_rewrite_fixes_it(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "language.md"
    start = TEXT.index("<!-- builtins:begin -->") + len("<!-- builtins:begin -->")
    stale.write_text(TEXT[:start] + "\n| stale |" + TEXT[start:], encoding="utf-8")
    monkeypatch.setattr(gen, "DOC", stale)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == gen.generate(TEXT)


def test_the_conventions_are_stated_at_the_top():
    head = TEXT[:TEXT.index("-->")]
    assert TEXT.startswith("<!--")
    for word in ("```cnn ", "file=NAME", "expect=error", "expect=warning", "```cnn-fragment", "```console",
                 "```python"):
        assert word in head, word


# ---------------------------------------------------------------- examples


def test_code_blocks_use_the_stated_conventions():
    for lang, options, body, line in BLOCKS:
        assert lang in KNOWN_LANGUAGES, f"line {line}: unknown block language {lang!r}"
        if lang == "cnn" and "file" not in options:
            assert re.search(r"^network \w+", body, re.MULTILINE), \
                f"line {line}: a ```cnn block is a complete file (with a network); mark fragments cnn-fragment"
        assert set(options) <= {"file", "expect"}, f"line {line}: unknown options {options}"


@pytest.mark.parametrize("block", blocks("cnn"))
def test_cnn_examples_elaborate(block, folder):
    _, options, body, line = block
    path = folder / options.get("file", f"example_line{line}.cnn")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    if options.get("expect") == "error":
        with pytest.raises(cnndsl.CnnError) as caught:
            cnndsl.load(str(path))
        assert caught.value.format().startswith(f"{path}:"), "the error is located in the file"
        return
    program = load_program(path)
    if not program.networks:  # a library of blocks and constants, imported by other examples
        assert "file" in options
        return
    warned = []
    for name in [*program.networks, *program.presets]:
        net = elaborate(program_target(program, name))
        cnndsl.analyze(net)
        lint_ir(net)
        warned += net.warnings
    if options.get("expect") == "warning":
        assert warned and all(w.format().startswith(f"{path}:") for w in warned), "located warnings"
    else:
        assert not warned, f"line {line}: the example warns:\n" + "\n".join(w.format() for w in warned)


@pytest.mark.parametrize("block", blocks("cnn-fragment"))
def test_fragments_parse(block):
    _, _, body, line = block
    try:
        parse(Source(f"language.md:{line}", body))
    except cnndsl.CnnError:
        parse(Source(f"language.md:{line}", "network fragment() {\n" + body + "\n}\n"))


@pytest.mark.parametrize("block", blocks("python"))
def test_python_examples_run(block, folder, monkeypatch):
    script = folder / f"example_line{block[3]}.py"
    script.write_text(block[2], encoding="utf-8")
    monkeypatch.chdir(folder)
    with contextlib.redirect_stdout(io.StringIO()):
        runpy.run_path(str(script), run_name="doc_example")


@pytest.mark.parametrize("block", blocks("console"))
def test_console_examples_run_cnndsl_and_show_its_output(block):
    # the output under each command is checked by test_generated_sections_are_up_to_date
    commands = [line[2:] for line in block[2].splitlines() if line.startswith("$ ")]
    assert commands, f"line {block[3]}: a console block runs at least one command"
    for command in commands:
        assert command.startswith("cnndsl "), command
