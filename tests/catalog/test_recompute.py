"""actlab.low_memory(): the layers after actlab's activations keep the activation's input
instead of its output and recompute the output in the backward. Same gradients, bit for
bit; ReLU's saved bytes; safe against in-place changes; other hooks left intact."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import actlab
from actlab.bench.memory import bench_memory, saved_bytes
from actlab.catalog import recompute
from actlab.catalog.fast import fast_stats

CASES = [
    ("mish", {}), ("gelu", {}), ("silu", {}), ("elish", {}), ("swiglu", {}),
    ("prelu", {"learn": ["alpha"]}), ("dyt", {}), ("relu", {}), ("sigmoid", {}),
]


def _mlp(name: str, kw: dict, fast: bool) -> nn.Module:
    act = actlab.get(name, **kw)
    hidden = 48
    module = act.module(fast=fast, channels=hidden if name == "dyt" else None)
    out_in = hidden // 2 if act.gated else hidden
    return nn.Sequential(nn.Linear(6, hidden), module, nn.Linear(out_in, 3))


def _grads(model: nn.Module, x: Tensor, low: bool, inside: bool = True) -> list:
    model.zero_grad(set_to_none=True)
    if low:
        with actlab.low_memory():
            loss = model(x).pow(2).sum()
            if inside:
                loss.backward()
        if not inside:
            loss.backward()
    else:
        model(x).pow(2).sum().backward()
    return [p.grad.clone() for p in model.parameters()]


Tensor = torch.Tensor


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize(("name", "kw"), CASES)
def test_gradients_are_bit_identical(name, kw, fast):
    torch.manual_seed(0)
    model = _mlp(name, kw, fast)
    x = torch.randn(37, 6)
    ref = _grads(model, x, low=False)
    for inside in (True, False):  # backward inside the block, or after it
        got = _grads(copy.deepcopy(model), x, low=True, inside=inside)
        for a, b in zip(ref, got, strict=True):
            assert torch.equal(a, b)


def test_the_fast_path_still_compiles_under_the_hooks():
    before = fast_stats().fallbacks
    model = _mlp("mish", {}, fast=True)
    _grads(model, torch.randn(8, 6), low=True)
    assert fast_stats().fallbacks == before


@pytest.mark.parametrize("name", ["mish", "gelu", "silu", "elish"])
def test_saved_bytes_drop_to_relus(name):
    """Linear -> act -> Linear: ReLU keeps its output once (relu and the next linear share
    it); the others keep input and output, except inside low_memory()."""
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    relu = saved_bytes(_mlp("relu", {}, False), x)
    model = _mlp(name, {}, False)
    plain = saved_bytes(model, x)
    with actlab.low_memory():
        low = saved_bytes(model, x)
    hidden_bytes = 64 * 48 * 4
    assert plain == relu + hidden_bytes
    assert low == relu


@pytest.mark.parametrize("name", ["relu", "sigmoid"])
def test_activations_that_keep_their_output_are_left_alone(name):
    """Their input is not saved: recomputing from it would keep one more tensor."""
    x = torch.randn(64, 6)
    model = _mlp(name, {}, False)
    plain = saved_bytes(model, x)
    with actlab.low_memory():
        assert saved_bytes(model, x) == plain


def test_an_input_changed_in_place_is_an_error():
    model = nn.Sequential(nn.Linear(4, 8), actlab.get("gelu").module(), nn.Linear(8, 1))
    h = torch.randn(5, 4)
    with actlab.low_memory():
        z = model[0](h)
        z2 = z * 1.0  # a leaf-free intermediate to modify
        y = model[2](model[1](z2))
        z2.add_(1.0)
        with pytest.raises(RuntimeError, match="inplace"):
            y.sum().backward()


def test_second_derivatives_match():
    torch.manual_seed(1)
    model = _mlp("mish", {}, False)
    x = torch.randn(9, 6, requires_grad=True)

    def gradgrad(low: bool) -> Tensor:
        ctx = actlab.low_memory() if low else torch.autograd.graph.saved_tensors_hooks(
            lambda t: t, lambda t: t)
        with ctx:
            (g,) = torch.autograd.grad(model(x).pow(2).sum(), x, create_graph=True)
            (gg,) = torch.autograd.grad(g.pow(2).sum(), x)
        return gg

    torch.testing.assert_close(gradgrad(True), gradgrad(False), rtol=1e-6, atol=1e-7)


def test_under_autocast_nothing_is_recomputed():
    torch.manual_seed(0)
    model = _mlp("mish", {}, False)
    x = torch.randn(16, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = saved_bytes(model, x)
        with actlab.low_memory():
            assert saved_bytes(model, x) == plain


def test_hooks_suspended_restores_the_stack():
    top = torch._C._autograd._top_saved_tensors_default_hooks
    assert top(False) is None
    with actlab.low_memory(), torch.autograd.graph.saved_tensors_hooks(abs, abs):
        outer = top(False)
        with recompute.hooks_suspended():
            assert top(False) is None
        assert top(False) == outer
    assert top(False) is None
    assert not recompute.active()


def test_a_conv_net_in_channels_last_keeps_relus_bytes():
    """The article's CNN (NHWC, max-pool after each activation) on Fashion-MNIST-shaped
    input: mish inside low_memory() saves what ReLU saves, and its step peak drops."""
    rows = bench_memory(["relu", "mish"], models=["cnn"], impls=["actlab", "low_memory"],
                        batch={"cnn": 16})
    by = {(r.activation, r.impl): r for r in rows}
    assert by["mish", "low_memory"].saved == by["relu", "actlab"].saved
    assert by["mish", "actlab"].saved > by["relu", "actlab"].saved
    assert by["mish", "low_memory"].peak < by["mish", "actlab"].peak
    assert by["relu", "low_memory"].peak == by["relu", "actlab"].peak
    # the max-pool's backward reads only its input's layout: no output is materialised
    assert by["mish", "low_memory"].peak <= 1.05 * by["relu", "actlab"].peak


POOLS = {
    "max_pool1d": (lambda h: F.max_pool1d(h, 2), (5, 4, 12)),
    "max_pool2d": (lambda h: F.max_pool2d(h, 2), (5, 4, 6, 6)),
    "max_pool2d_nhwc": (lambda h: F.max_pool2d(h, 3, 2, padding=1), (5, 4, 7, 7)),
    "max_pool3d": (lambda h: F.max_pool3d(h, 2), (3, 4, 4, 4, 4)),
    "adaptive_max_pool2d": (lambda h: F.adaptive_max_pool2d(h, 3), (5, 4, 7, 7)),
    "adaptive_max_pool3d": (lambda h: F.adaptive_max_pool3d(h, 2), (3, 4, 5, 5, 5)),
}


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize("name", ["mish", "gelu"])
def test_a_max_pool_after_the_activation_needs_no_recomputation(pool, name, monkeypatch):
    """The max-pool backwards read their saved input's shape only: the activation's input
    stands in for its output. mish and gelu are not monotone, so a kernel that read the
    values (and picked other maxima) would give other gradients; counted: nothing is
    recomputed."""
    fn, shape = POOLS[pool]
    torch.manual_seed(0)
    x = torch.randn(*shape) * 2
    if pool.endswith("nhwc"):
        x = x.contiguous(memory_format=torch.channels_last)
    act = actlab.get(name).module()

    def grads(low: bool) -> Tensor:
        xr = x.clone().requires_grad_(True)
        h = xr * 1.5  # the activation's input is a saved intermediate, as after a conv
        with actlab.low_memory() if low else contextlib.nullcontext():
            pooled = fn(act(h))
            loss = (pooled * torch.linspace(-1, 1, pooled.numel()).view(pooled.shape)).sum()
        loss.backward()
        return xr.grad

    calls = []
    real = recompute._Recomputed.unpack

    def counted(self):
        out = real(self)
        calls.append(out.untyped_storage().data_ptr() == self.x.untyped_storage().data_ptr())
        return out

    monkeypatch.setattr(recompute._Recomputed, "unpack", counted)
    ref = grads(False)
    got = grads(True)
    assert calls and all(calls)  # every saved output came back as the input's storage
    assert torch.equal(ref, got)


def test_other_consumers_still_get_the_recomputed_output():
    """One output saved by a max-pool and by a linear layer: the linear layer's weight
    gradient reads the values, so it gets the recomputed output."""
    torch.manual_seed(0)
    first, act, last = nn.Linear(6, 16), actlab.get("mish").module(), nn.Linear(16, 3)
    x = torch.randn(9, 6)

    def grads(low: bool) -> list[Tensor]:
        with actlab.low_memory() if low else contextlib.nullcontext():
            h = act(first(x))
            loss = last(h).pow(2).sum() + F.max_pool1d(h.unsqueeze(1), 2).pow(2).sum()
        return torch.autograd.grad(loss, [first.weight, last.weight])

    for a, b in zip(grads(False), grads(True), strict=True):
        assert torch.equal(a, b)



def test_a_transformer_reaches_relus_peak():
    rows = bench_memory(["relu", "gelu"], models=["char_lm"], impls=["actlab", "low_memory"],
                        batch={"char_lm": 4})
    by = {(r.activation, r.impl): r for r in rows}
    assert by["gelu", "low_memory"].saved == by["relu", "actlab"].saved
    assert by["gelu", "low_memory"].peak <= 1.05 * by["relu", "actlab"].peak
    assert by["gelu", "actlab"].peak > 1.05 * by["relu", "actlab"].peak


def test_training_inside_the_block_matches_plain_training():
    torch.manual_seed(0)
    a = _mlp("silu", {}, False)
    b = copy.deepcopy(a)
    oa, ob = (torch.optim.Adam(m.parameters(), lr=1e-2) for m in (a, b))
    for step in range(20):
        x = torch.randn(32, 6, generator=torch.Generator().manual_seed(step))
        target = x[:, :3]
        for m, opt, low in ((a, oa, False), (b, ob, True)):
            opt.zero_grad()
            with actlab.low_memory() if low else torch.enable_grad():
                F.mse_loss(m(x), target).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
