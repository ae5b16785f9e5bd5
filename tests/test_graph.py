"""`cnndsl graph`: drawings rendered by a real Graphviz `dot`, and the interactive page in a real browser.

The expected counts come from the architectures themselves, as torchvision's model files and the papers
build them (cited at each test), not from the drawing code.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cnndsl.cli import main

SVG = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def draw(tmp_path: Path, target: str, *options: str) -> ET.Element:
    path = tmp_path / f"{target}-{len(list(tmp_path.iterdir()))}.svg"
    code, _, err = run("graph", target, "-o", str(path), *options)
    assert code == 0, err
    return ET.parse(path).getroot()  # the SVG parses as XML


def groups(svg: ET.Element, kind: str) -> list[ET.Element]:
    return [g for g in svg.iter(f"{SVG}g") if g.get("class") == kind]


def ids(svg: ET.Element, kind: str) -> list[str]:
    return [g.get("id") for g in groups(svg, kind)]


def texts(g: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in g.iter(f"{SVG}text")]


# torchvision's ResNet.forward: conv1, bn1, relu, maxpool, layer1..layer4, avgpool, flatten, fc.
RESNET_TOP = ["x", "conv1", "bn1", "relu", "maxpool", "avgpool", "flatten", "fc"]


def test_depth_1_draws_the_top_level_layers_and_one_box_per_stage(tmp_path):
    svg = draw(tmp_path, "resnet18", "--depth", "1")
    nodes = ids(svg, "node")
    assert sorted(nodes) == sorted([f"n-{n}" for n in RESNET_TOP] + [f"b-layer{i}" for i in range(1, 5)]
                                   + ["o-logits"])
    assert ids(svg, "cluster") == []
    assert len(groups(svg, "edge")) == len(nodes) - 1  # one chain, input to output


def test_a_fold_of_n_blocks_is_one_box_and_no_fold_draws_n(tmp_path):
    # torchvision's resnet18: layer1 is two BasicBlocks without a downsample (64 -> 64 channels, stride 1),
    # so they are equal and fold; layers 2-4 open with a strided block that has one, then one plain block.
    folded = draw(tmp_path, "resnet18", "--depth", "2")
    unfolded = draw(tmp_path, "resnet18", "--depth", "2", "--no-fold")
    assert sorted(ids(folded, "cluster")) == [f"c-layer{i}" for i in range(1, 5)]
    boxes = [i for i in ids(folded, "node") if i[0] in "bf"]
    assert sorted(boxes) == ["b-layer2.0", "b-layer2.1", "b-layer3.0", "b-layer3.1", "b-layer4.0", "b-layer4.1",
                             "f-layer1.0"]
    fold = next(g for g in groups(folded, "node") if g.get("id") == "f-layer1.0")
    label = " ".join(texts(fold))
    assert "layer1.0 … layer1.1" in label and "×2" in label
    assert sorted(i for i in ids(unfolded, "node") if i[0] == "b") == sorted(
        [f"b-layer{s}.{k}" for s in range(1, 5) for k in range(2)])
    assert len(ids(unfolded, "node")) == len(ids(folded, "node")) + 1
    # the ResNet shortcut is drawn inside an open block, as a skip edge into the sum
    deep = draw(tmp_path, "resnet18", "--depth", "3", "--no-fold")
    skips = [e for e in groups(deep, "edge") if any(p.get("stroke") == "#c0392b" for p in e.iter(f"{SVG}path"))]
    # 8 BasicBlocks; the 5 without a downsample add their input itself (layer1.0, layer1.1, layer2.1, 3.1, 4.1)
    assert len(skips) == 5


def test_densenet_dense_blocks_fold(tmp_path):
    # DenseNet-121 (Huang et al. 2017, Table 1): dense blocks of 6, 12, 24 and 16 layers. torchvision's
    # _DenseBlock concatenates its features before each layer and once more at the end (n + 1 cats).
    folded = draw(tmp_path, "densenet121", "--depth", "3")
    unfolded = draw(tmp_path, "densenet121", "--depth", "3", "--no-fold")
    for block, n in enumerate((6, 12, 24, 16), start=1):
        prefix = f"features.denseblock{block}."
        fold = [g for g in groups(folded, "node") if g.get("id").startswith("f-" + prefix)]
        assert len(fold) == 1 and f"×{n}" in " ".join(texts(fold[0]))
        inside = [i for i in ids(folded, "node") if i[2:].startswith(prefix)]
        assert len(inside) == 3  # the first concatenation, the fold, the last concatenation
        layers = [i for i in ids(unfolded, "node") if i.startswith("b-" + prefix)]
        cats = [i for i in ids(unfolded, "node") if i.startswith("n-" + prefix + "concat")]
        assert (len(layers), len(cats)) == (n, n + 1)


def test_googlenet_inception_branches_side_by_side(tmp_path):
    # torchvision's Inception module: four branches on one input, concatenated; nine modules.
    svg = draw(tmp_path, "googlenet", "--depth", "2")
    modules = [g for g in groups(svg, "cluster") if re.fullmatch(r"c-inception\d[a-e]", g.get("id"))]
    assert len(modules) == 9
    for module in modules:
        name = module.get("id")[2:]
        tops = {}
        for g in groups(svg, "node"):
            if g.get("id", "").startswith(f"b-{name}.branch"):
                ys = [float(t.get("y")) for t in g.iter(f"{SVG}text")]
                tops[g.get("id")] = min(ys)
        assert len(tops) == 4 and len(set(tops.values())) == 1, tops  # one row


def test_nodes_show_their_op_arguments_and_boxes_their_totals(tmp_path, tv):
    from cnndsl.draw import compact

    model = tv("resnet50")
    svg = draw(tmp_path, "resnet50", "--depth", "1")
    node = {g.get("id"): " | ".join(texts(g)) for g in groups(svg, "node")}
    k, s = model.conv1.kernel_size, model.conv1.stride
    assert f"kernel {k[0]}x{k[1]}, stride {s[0]}x{s[1]}" in node["n-conv1"]
    assert "64x112x112" in node["n-conv1"]
    for i, (cin, cout, size) in enumerate([(64, 256, 56), (256, 512, 28), (512, 1024, 14), (1024, 2048, 7)], 1):
        layer = getattr(model, f"layer{i}")
        params = sum(p.numel() for p in layer.parameters())
        src = size * 2 if i > 1 else size
        assert f"{cin}x{src}x{src} → {cout}x{size}x{size}" in node[f"b-layer{i}"]
        assert f"{compact(params)} params" in node[f"b-layer{i}"]
    title = " ".join("".join(t.itertext()) for t in svg.iter(f"{SVG}text"))
    total = sum(p.numel() for p in model.parameters())
    assert f"{total:,} params" in title and "resnet50" in title
    for family in ("convolution", "normalisation", "activation", "pooling", "linear"):
        assert family in title  # the legend names the families drawn


def test_dot_output_is_deterministic_under_other_hash_seeds():
    outputs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-m", "cnndsl", "graph", "densenet121", "--depth", "3"],
                              capture_output=True, env=env, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1 and next(iter(outputs)).startswith(b"digraph densenet121 {")


def test_without_dot_one_line_says_how_to_install_it_and_dot_files_still_work(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    target = tmp_path / "r.svg"
    code, out, err = run("graph", "resnet18", "-o", str(target))
    assert code == 1 and not target.exists()
    assert err.count("\n") == 1 and "apt-get install graphviz" in err and ".dot" in err
    assert "Traceback" not in err
    code, _, err = run("graph", "resnet18", "-o", str(tmp_path / "r.dot"))
    assert code == 0 and (tmp_path / "r.dot").read_text().startswith("digraph resnet18")


def test_a_failed_drawing_leaves_an_existing_file_alone(tmp_path):
    target = tmp_path / "keep.svg"
    target.write_text("precious")
    code, _, err = run("graph", "resnet18", "-o", str(target), "--depth", "0")
    assert code == 1 and "--depth must be 1 or more" in err and target.read_text() == "precious"
    code, _, err = run("graph", "resnet18", "-o", str(tmp_path / "r.jpg"))
    assert code == 1 and ".svg" in err and not (tmp_path / "r.jpg").exists()
    code, _, err = run("graph", str(tmp_path / "missing.cnn"), "-o", str(target))
    assert code == 1 and target.read_text() == "precious"


def test_png_and_pdf_are_real_files(tmp_path):
    for ext, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF")):
        path = tmp_path / f"m.{ext}"
        assert run("graph", "lenet5", "-o", str(path))[0] == 0
        assert path.read_bytes().startswith(magic)


def test_families_and_shown_arguments_are_declared_by_the_op_specs():
    from cnndsl.draw import FAMILIES
    from cnndsl.ops import REGISTRY

    for spec in set(REGISTRY.values()):
        assert spec.category in FAMILIES, spec.name
        names = {a.name for a in spec.args}
        assert set(spec.shown) <= names, spec.name
    fills = [FAMILIES[f][1] for f in ("convolution", "normalization", "activation", "pooling", "merge", "attention",
                                     "linear")]
    assert len(set(fills)) == len(fills)  # the families the issue names are told apart
    assert REGISTRY["attention"].category == "attention"


def test_every_preset_has_a_current_drawing_in_the_gallery():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import gen_zoo
    finally:
        sys.path.pop(0)
    assert gen_zoo.stale_drawings() == [], "run python docs/gen_zoo.py"
    page = (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8")
    from cnndsl.zoo import entries

    for entry in entries():
        assert f"[drawing](gallery/{entry.name}.svg)" in page
        ET.parse(ROOT / "docs" / "gallery" / f"{entry.name}.svg")


# ---------------------------------------------------------------- the interactive page


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "resnet18.html"
    code, _, err = run("graph", "resnet18", "-o", str(path))
    assert code == 0, err
    return path


def test_the_page_is_self_contained(page):
    html = page.read_text(encoding="utf-8")
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    without_namespaces = re.sub(r'xmlns(:\w+)?="[^"]*"|"-//W3C//DTD[^"]*"|"http://www.w3.org/[^"]*"', "", html)
    assert "http://" not in without_namespaces and "https://" not in without_namespaces
    # one drawing per depth (resnet18's deepest scope is layerN.M.downsample: depth 4), folded and not where
    # something folds
    assert len(re.findall(r'<template id="variant-\d+">', html)) >= 4


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def test_the_page_changes_depth_finds_a_layer_and_shows_its_details(page, browser, tv):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    browser.get(page.as_uri())
    shown = lambda: browser.execute_script(  # noqa: E731
        "return [...document.querySelectorAll('#viewer g.node, #viewer g.cluster')].map(g => g.id)")
    depth = Select(browser.find_element(By.ID, "depth"))
    assert [o.text for o in depth.options] == ["1", "2", "3", "4"]
    depth.select_by_value("1")
    assert "b-layer3" in shown() and "c-layer3" not in shown()
    depth.select_by_value("2")
    assert "c-layer3" in shown() and "b-layer3.1" in shown()

    search = browser.find_element(By.ID, "search")
    search.send_keys("layer3.1.conv2", Keys.ENTER)
    details = browser.find_element(By.ID, "details").text
    conv = tv("resnet18").layer3[1].conv2
    assert "layer3.1.conv2" in details and "op conv" in details
    assert f"{conv.weight.numel():,}" in details and "kernel=3x3" in details
    assert "n-layer3.1.conv2" in shown()  # it switched to a drawing where the layer is drawn itself
    assert browser.execute_script("return document.querySelector('#viewer .hit').id") == "n-layer3.1.conv2"

    depth.select_by_value("1")
    browser.find_element(By.CSS_SELECTOR, '[id="b-layer2"]').click()  # a collapsed block opens
    assert "c-layer2" in shown()
    assert "layer2" in browser.find_element(By.ID, "details").text
    assert browser.get_log("browser") == []


def test_hostile_text_and_oversized_drawings_end_in_a_located_error_or_a_picture(tmp_path):
    from cnndsl.draw import DRAWN_MAX

    odd = tmp_path / "odd.cnn"
    # a description with markup, quotes, a backslash and control characters is drawn as text
    odd.write_text('network odd() {\n    "<b>&amp; \\" \\\\ \x01\x1f\u2028 </TD>"\n    input x: 3x8x8\n'
                   '    output y = x -> conv(4, 3)\n}\n', encoding="utf-8")
    svg = draw(tmp_path, str(odd))
    assert any("<b>&amp;" in t for t in texts(svg))
    big = tmp_path / "big.cnn"
    big.write_text("network big() {\n    input x: 3x8x8\n    y = x\n"
                   f"    for i in range({DRAWN_MAX + 10}) {{ y = y -> relu }}\n    output o = y\n}}\n")
    code, _, err = run("graph", str(big), "-o", str(tmp_path / "big.svg"))
    assert code == 1 and f"{DRAWN_MAX:,}" in err and "--depth" in err
    assert not (tmp_path / "big.svg").exists()


def test_unet_skips_are_drawn_as_skips_and_crops_read_only_a_size(tmp_path):
    # the paper's Figure 1: four copy-and-crop connections from the contracting to the expansive path; each crop
    # takes its size from the up-convolution's output, which it does not read
    svg = draw(tmp_path, "unet", "--depth", "2")
    strokes = [{p.get("stroke") for p in e.iter(f"{SVG}path")} for e in groups(svg, "edge")]
    dashed = [e for e in groups(svg, "edge") if any(p.get("stroke-dasharray") for p in e.iter(f"{SVG}path"))]
    assert sum("#c0392b" in s for s in strokes) == 4
    assert len(dashed) == 4 and all("size of" in " ".join(texts(e)) for e in dashed)
