"""Bytes saved for backward (known cases, counted once per storage) and the peak memory of
a training step (profiler events), cross-checked against each other and a count by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import actlab
from actlab.bench.memory import saved_bytes, saved_bytes_per_element


def test_relu_saves_one_tensor():
    x = torch.randn(1000)
    assert saved_bytes(torch.relu, x) == 4000  # its output, float32
    assert saved_bytes_per_element(torch.relu, x.double()) == 8.0


def test_naive_mish_saves_intermediates():
    """x * tanh(softplus(x)): softplus saves x, tanh saves t, the product x and t: 2 tensors."""
    x = torch.randn(1000)
    assert saved_bytes_per_element(lambda t: t * torch.tanh(F.softplus(t)), x) == 8.0
    # the catalog's stable composite keeps more (relu, exp, log1p intermediates)
    assert saved_bytes_per_element(actlab.get("mish").spec.forward, x) > 8.0


def test_memory_efficient_modules_save_only_the_input():
    x = torch.randn(512)
    for name in ("mish", "gelu", "elish"):
        assert saved_bytes_per_element(actlab.get(name).module(), x) == 4.0


def test_shared_storage_counts_once():
    x = torch.randn(100)

    def twice(t):
        return t * t + t.sin()  # saves t (mul, both operands) and t (sin): one storage

    assert saved_bytes(twice, x) == 400


def test_nothing_saved_without_a_graph():
    assert saved_bytes(lambda t: t.detach() + 1, torch.randn(10)) == 0


# ----------------------------------------------------------------------- training memory
def test_article_cnn_saved_bytes_counted_by_hand():
    """The hooks' count for the article's CNN with ReLU equals a count by hand: each
    layer's saved input (ReLU's output shared with the next layer), max-pool's int64
    indices, and the weights the convolutions and linear layers keep."""
    from actlab.experiments.models import CNN

    batch = 3
    model = CNN((1, 28, 28), 10, "relu")
    floats = 784 + 32 * 28 * 28 + 32 * 14 * 14 + 64 * 14 * 14 + 64 * 7 * 7 + 128
    indices = 32 * 14 * 14 + 64 * 7 * 7
    weights = 32 * 9 + 64 * 32 * 9 + 128 * 3136 + 10 * 128
    want = batch * (4 * floats + 8 * indices) + 4 * weights
    assert saved_bytes(model, torch.randn(batch, 1, 28, 28)) == want
    # a memory-efficient mish module keeps the conv outputs too: 32*28*28 + 64*14*14 + 128
    model = CNN((1, 28, 28), 10, "mish")
    extra = 32 * 28 * 28 + 64 * 14 * 14 + 128
    assert saved_bytes(model, torch.randn(batch, 1, 28, 28)) == want + 4 * batch * extra


def _mlp(act: str) -> torch.nn.Module:
    from actlab.experiments.models import MLP

    torch.manual_seed(0)
    return MLP(64, (512, 512), 10, act)


def test_step_memory_peak_is_at_least_what_the_forward_saves():
    from actlab.bench.memory import step_memory

    x = torch.randn(256, 64)
    y = torch.randint(0, 10, (256,))
    m = step_memory(_mlp("relu"), x, lambda out: F.cross_entropy(out, y))
    params = sum(p.numel() for p in _mlp("relu").parameters()) * 4
    assert m.before >= 3 * params + x.numel() * 4  # weights, Adam's two moments, the batch
    assert m.peak >= m.saved + params  # the saved tensors and, at the end, the gradients
    assert m.step_peak < 10 * m.saved  # and not wildly more


@pytest.mark.parametrize("impl", ["relu", "mish", "hand mish", "serf"])
def test_profiler_sees_the_saved_bytes(impl):
    """Cross-check of the two measures: after a forward, the profiler's running sum of
    allocations is exactly what autograd saved (without the batch and the weights, which
    existed before) plus the output."""
    from actlab.bench.memory import HandModule, profiled
    from actlab.bench.modules import swap_activations

    x = torch.randn(256, 64)
    model = _mlp(impl.split()[-1])
    if impl.startswith("hand"):
        model = swap_activations(model, lambda: HandModule(actlab.get("mish")))
    out = []
    _, held = profiled(lambda: out.append(model(x)))
    # the batch does not require grad: the first layer keeps x but not its weight
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][1:]
    weights = sum(m.weight.numel() * 4 for m in linears)
    want = saved_bytes(model, x, detach=False) - x.numel() * 4 - weights + out[0].numel() * 4
    assert held == want


def test_bench_memory_rows():
    from actlab.bench.memory import bench_memory, markdown

    rows = bench_memory(["relu", "mish"], models=["cnn"], batch={"cnn": 8})
    by = {(r.activation, r.impl): r for r in rows}
    impls = ("actlab", "low_memory", "function", "hand", "torch.nn")
    assert set(by) == {(name, i) for i in impls for name in ("relu", "mish")}
    # act.module() runs the native op: the very same bytes as torch.nn's module
    for name in ("relu", "mish"):
        assert by[(name, "actlab")].saved == by[(name, "torch.nn")].saved
        assert by[(name, "actlab")].peak == by[(name, "torch.nn")].peak
    # ReLU's output doubles as the next layer's input; mish must keep its input as well
    assert by[("mish", "actlab")].saved > by[("relu", "actlab")].saved
    assert by[("mish", "hand")].saved > by[("mish", "actlab")].saved
    # inside actlab.low_memory(), mish keeps what ReLU keeps
    assert by[("mish", "low_memory")].saved == by[("relu", "actlab")].saved
    assert "| cnn | relu | actlab |" in markdown(rows) and "1.00 |" in markdown(rows)
    assert "step time" not in markdown(rows)  # not timed
    timed = bench_memory(["relu"], models=["cnn"], impls=["actlab", "low_memory"],
                         batch={"cnn": 4}, time_steps=2)
    assert all(r.seconds > 0 for r in timed)
    assert "| cnn | relu | low_memory |" in markdown(timed) and "step time" in markdown(timed)
    with pytest.raises(ValueError, match="unknown model"):
        bench_memory(["relu"], models=["vgg"])
    with pytest.raises(ValueError, match="unknown implementation"):
        bench_memory(["relu"], impls=["cuda"])


def test_chunked_backward_holds_less(monkeypatch):
    """The memory-efficient Function computes large tensors in chunks: the same result,
    with a smaller peak than the formulas' full-size intermediates would need."""
    from actlab.bench.memory import step_memory
    from actlab.catalog import activation as A

    x = torch.randn(64, 64)
    y = torch.randint(0, 10, (64,))

    def measure(chunk: int):
        monkeypatch.setitem(A.EAGER_CHUNK, "cpu", chunk)
        from actlab.experiments.models import MLP

        torch.manual_seed(0)
        model = MLP(64, (4096,), 10, "serf")
        return step_memory(model, x, lambda out: F.cross_entropy(out, y))

    whole, chunked = measure(1 << 40), measure(1 << 12)
    assert chunked.saved == whole.saved
    assert chunked.step_peak < whole.step_peak
