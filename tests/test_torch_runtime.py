"""The generated PyTorch code as real PyTorch: it trains, it compiles with torch.compile without graph breaks,
it works under DistributedDataParallel, and it exports to ONNX.

- LeCun et al. 1989 (preset lecun1989) learns a small synthetic 16x16 "digit" task with plain SGD on the
  paper's loss (mean squared error to +1/-1 targets on tanh outputs).
- torch._dynamo.explain finds one graph and no break in the generated ResNet-18 (and in networks that use
  the copied helper modules); torch.compile(fullgraph=True) runs it and gives the eager output.
- DistributedDataParallel over 2 CPU processes (gloo): after one backward on different data per rank, the
  ranks hold the same gradients, equal to the single-process gradient of the mean loss over the whole batch.
- torch.onnx.export: onnxruntime gives the eager output (needs onnx, onnxscript and onnxruntime).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
import torch.nn.functional as F

import cnndsl


pytestmark = pytest.mark.usefixtures("torch_on_one_thread")  # tests/conftest.py: why one thread


def resnet18(size: int = 32):
    """The generated ResNet-18 at a small input (the architecture ends in a global pool: any size works)."""
    net = cnndsl.load("resnet18", inputs={"x": f"3x{size}x{size}"})
    return net, cnndsl.to_torch(net)


# ---------------------------------------------------------------- (a) LeCun 1989 learns


def digit_task(n_per_class: int, generator: torch.Generator, prototypes: torch.Tensor):
    """Noisy, shifted copies of 10 prototype images in [-1, 1] (background -1, as the paper's scaled digits)."""
    labels = torch.arange(10).repeat_interleave(n_per_class)
    images = prototypes[labels]
    shifts = torch.randint(-1, 2, (len(labels), 2), generator=generator)
    images = torch.stack([torch.roll(img, (int(dy), int(dx)), dims=(1, 2)) for img, (dy, dx) in zip(images, shifts)])
    images = images + 0.6 * torch.randn(images.shape, generator=generator)
    return images.clamp(-1, 1), labels


def make_prototypes(generator: torch.Generator) -> torch.Tensor:
    """10 blobby 16x16 binary patterns: random pixels, smoothed by a 3x3 mean, thresholded."""
    noise = torch.rand(10, 1, 16, 16, generator=generator)
    blobs = F.avg_pool2d(F.pad(noise, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return torch.where(blobs > 0.5, 1.0, -1.0)


def test_lecun1989_learns_a_synthetic_digit_task():
    g = torch.Generator().manual_seed(1989)
    prototypes = make_prototypes(g)
    x, labels = digit_task(32, g, prototypes)  # 320 training images
    x_test, labels_test = digit_task(20, g, prototypes)
    targets = torch.full((len(labels), 10), -1.0)  # the paper's targets: +1 for the class, -1 elsewhere
    targets[torch.arange(len(labels)), labels] = 1.0

    torch.manual_seed(0)
    model = cnndsl.to_torch(cnndsl.load("lecun1989"))
    assert sum(p.numel() for p in model.parameters()) == 9760  # LeCun et al. 1989: 9,760 free parameters

    def full_loss() -> float:
        with torch.no_grad():
            return F.mse_loss(model(x), targets).item()

    start = full_loss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(300):
        batch = torch.randint(0, len(labels), (32,), generator=g)
        loss = F.mse_loss(model(x[batch]), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    end = full_loss()
    with torch.no_grad():
        train_accuracy = (model(x).argmax(1) == labels).float().mean().item()
        test_accuracy = (model(x_test).argmax(1) == labels_test).float().mean().item()
    assert end < 0.5 * start, (start, end)
    assert train_accuracy > 0.95, train_accuracy
    assert test_accuracy > 0.9, test_accuracy  # chance: 0.1


def test_lecun1989_partial_connections_stay_partial_while_training():
    """H2's missing connections (its table) never gain weight: the packed kernels are the only parameters."""
    torch.manual_seed(0)
    model = cnndsl.to_torch(cnndsl.load("lecun1989"))
    assert model.h2.weight.shape == (96, 5, 5)  # 12 maps x 8 connections, one 5x5 kernel each
    x = torch.randn(4, 1, 16, 16)
    model(x).sum().backward()
    assert model.h1.bias.grad.shape == (12, 8, 8)  # untied: one bias per unit
    assert model.h1.bias.grad.abs().sum(dim=0).ne(0).all(), "every position's bias gets a gradient"


# ---------------------------------------------------------------- (b) torch.compile


def explain(model, *inputs):
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._dynamo.explain(model)(*inputs)


def test_resnet18_compiles_as_one_graph():
    _, model = resnet18()
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    report = explain(model, x)
    assert (report.graph_count, report.graph_break_count) == (1, 0), report.break_reasons
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


HELPERS_NET = """
network helpers() {
    input x: 3x8x8
    input w: 6x8x8
    t = x -> embed: [patch_embed(16, 4)] -> cls: class_token -> pos: pos_embedding -> layernorm
          -> attention(4) -> mlp(32) -> slice(0, 1) -> flatten -> linear(6) -> scaled_tanh
    c = w -> c1: conv(6, 3, pad=1, pad_value=-1, bias="untied") -> channel_shuffle(2) -> subsample(2)
          -> s: stochastic_depth(0.1) -> se(2) -> lrn(3) -> flatten -> rbf(6)
    output logits = t + c
}
"""


@pytest.mark.parametrize("target", ["lecun1989", "lenet5", "helpers"])
def test_helper_modules_compile_without_graph_breaks(target, tmp_path):
    if target == "helpers":
        path = tmp_path / "helpers.cnn"
        path.write_text(HELPERS_NET)
        target = str(path)
    net = cnndsl.load(target)
    model = cnndsl.to_torch(net).eval()
    inputs = [torch.randn(2, *net.type_of(node).shape) for node in net.inputs.values()]
    report = explain(model, *inputs)
    assert (report.graph_count, report.graph_break_count) == (1, 0), report.break_reasons


def test_helpers_net_uses_the_helpers():
    """The network above exercises the copied helper modules it is meant to (a guard for the test itself; the
    patch embedding sits in a Sequential, where it is the PatchEmbed helper rather than an nn.Conv2d)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "helpers.cnn"
        path.write_text(HELPERS_NET)
        source = cnndsl.compile(cnndsl.load(str(path)))
    for helper in ("PatchEmbed", "SelfAttention", "ClassicConv", "Subsample", "StochasticDepth",
                   "SqueezeExcitation", "RBF", "channel_shuffle"):
        assert helper in source, helper


def have_cpp_compiler() -> bool:
    return any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))


@pytest.mark.slow
@pytest.mark.skipif(not have_cpp_compiler(), reason="inductor's CPU backend needs a C++ compiler")
def test_resnet18_inductor_compile_matches_eager():
    _, model = resnet18()
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- (c) DistributedDataParallel

DDP_WORKER = '''
"""Rank r: the generated ResNet-18 in DistributedDataParallel, a backward on shard r; saves its gradients."""
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import cnndsl


def worker(rank, world, folder, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = cnndsl.to_torch(cnndsl.load("resnet18", inputs={"x": "3x32x32"}))
        model.load_state_dict(torch.load(os.path.join(folder, "init.pt")))
        model.eval()  # batch statistics would differ between a shard and the whole batch
        ddp = DistributedDataParallel(model)
        data = torch.load(os.path.join(folder, "data.pt"))
        n = len(data["y"]) // world
        x, y = data["x"][rank * n:(rank + 1) * n], data["y"][rank * n:(rank + 1) * n]
        torch.nn.functional.cross_entropy(ddp(x), y).backward()
        torch.save({k: p.grad for k, p in model.named_parameters()}, os.path.join(folder, f"grads{rank}.pt"))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    folder, port = sys.argv[1], int(sys.argv[2])
    mp.spawn(worker, args=(2, folder, port), nprocs=2, join=True)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_resnet18_under_distributed_data_parallel(tmp_path):
    torch.manual_seed(0)
    _, model = resnet18()
    torch.save(model.state_dict(), tmp_path / "init.pt")
    data = {"x": torch.randn(8, 3, 32, 32), "y": torch.randint(0, 1000, (8,))}
    torch.save(data, tmp_path / "data.pt")
    script = tmp_path / "ddp_worker.py"
    script.write_text(textwrap.dedent(DDP_WORKER))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path), str(free_port())], capture_output=True,
                          text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-4000:]

    model.eval()
    F.cross_entropy(model(data["x"]), data["y"]).backward()  # the whole batch, one process
    grads = [torch.load(tmp_path / f"grads{rank}.pt") for rank in (0, 1)]
    assert set(grads[0]) == {k for k, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=0, atol=0, msg=f"ranks differ: {name}")
        torch.testing.assert_close(grads[0][name], p.grad, rtol=1e-4, atol=1e-6, msg=f"not the mean: {name}")


# ---------------------------------------------------------------- (d) ONNX


@pytest.mark.slow
def test_resnet18_exports_to_onnx(tmp_path):
    import onnx
    import onnxruntime as ort
    import onnxscript  # noqa: F401 - torch.onnx.export needs it
    _, model = resnet18()
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    path = tmp_path / "resnet18.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["logits"],
                          dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, dynamo=True)
    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]
    for batch in (2, 3):  # the batch axis stays dynamic
        x = torch.randn(batch, 3, 32, 32)
        (got,) = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-5)
