"""actlab's own C kernels (pau, isru, isrlu, bent_identity on the CPU, float32): values
against float64, threads, the blocks that take the exact slow path, and the fall-back when
they cannot be built."""

from __future__ import annotations

import pytest
import torch

import actlab
from actlab.catalog import cpu_kernels, fast
from actlab.catalog.cpu_kernels import build_error, cpu_kernel

INF, NAN = float("inf"), float("nan")

pytestmark = pytest.mark.skipif(cpu_kernel("pau") is None,
                                reason=f"no C kernels here: {build_error()}")


def _coefficients(act) -> list[float]:
    return [float(act.params[n]) for n in cpu_kernel("pau").names]


def _learned_pau(seed: int):
    """pau with coefficients away from the initial fit (and one b_k negative: |b_k|)."""
    gen = torch.Generator().manual_seed(seed)
    init = actlab.get("pau").params
    values = {n: float(v) + 0.3 * float(torch.randn(1, generator=gen)) for n, v in init.items()}
    values["b2"] = -abs(values["b2"])
    return actlab.get("pau", **values)


def _inputs(n: int, seed: int) -> torch.Tensor:
    """n values over many scales, some beyond the direct form's range and non-finite."""
    gen = torch.Generator().manual_seed(seed)
    x = 3.0 * torch.randn(n, generator=gen)
    far = torch.tensor([1e5, -3e6, 6e7, -1e9, 1e12, 3e38, -3e38, INF, -INF, 0.0, -0.0, 1e-30])
    idx = torch.randint(0, n, (far.numel(),), generator=gen)
    x[idx] = far
    return x


@pytest.mark.parametrize("n", [1, 15, 257, 5000, 70001])
def test_forward_and_derivative_match_float64(n):
    act = _learned_pau(0)
    k = cpu_kernel("pau")
    x = _inputs(n, n)
    y = k.forward(x, _coefficients(act))
    want = act(x.double())
    finite = torch.isfinite(want)
    torch.testing.assert_close(y.double()[finite], want[finite], rtol=2e-5, atol=1e-6)
    assert torch.equal(torch.isinf(y), torch.isinf(want))
    assert torch.equal(y[~finite], want[~finite].float())
    gx, sums = k.backward(x, torch.ones_like(x), _coefficients(act), params=False)
    assert sums is None
    dwant = act.derivative(x.double())
    torch.testing.assert_close(gx.double(), dwant, rtol=2e-5, atol=1e-6, equal_nan=True)


def test_values_beyond_float32_powers_and_at_the_limits():
    """x^5 overflows float32 beyond |x| = 5.1e7: the kernel's slow path is exact there,
    and f(+-inf) = +-inf, f(nan) = nan, as the catalog (which the hand formula is not)."""
    act = actlab.get("pau")
    x = torch.tensor([4e7, 6e7, -1e9, 1e12, 3e38, INF, -INF, NAN])
    y = cpu_kernel("pau").forward(x, _coefficients(act))
    want = act(x.double())
    torch.testing.assert_close(y.double(), want, rtol=1e-6, atol=0.0, equal_nan=True)
    assert y[5] == INF and y[6] == -INF and torch.isnan(y[7])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_parameter_gradients_match_float64(threads):
    act = _learned_pau(1)
    gen = torch.Generator().manual_seed(2)
    n = 3 * (1 << 15) + 123  # three threads' worth, and a ragged last block
    x = 3.0 * torch.randn(n, generator=gen)
    x[[7, 40000, n - 1]] = torch.tensor([2e9, -INF, 7e5])
    g = torch.randn(n, generator=gen)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gx, sums = cpu_kernel("pau").backward(x, g, _coefficients(act))
    finally:
        torch.set_num_threads(before)
    parts = act.param_derivative(x.double())
    for i, name in enumerate(cpu_kernel("pau").names):
        terms = g.double() * parts[name]
        finite = torch.isfinite(terms)
        if finite.all():
            # a float32 sum of n terms that cancel: its rounding is ~eps sqrt(n) sum |terms|
            scale = terms.abs().sum().item()
            torch.testing.assert_close(sums[i], terms.sum(), rtol=1e-5, atol=1e-6 * scale,
                                       msg=name)
        else:  # the -inf input: the sum is the infinite terms' (or nan where they cancel)
            assert torch.equal(sums[i].isnan(), terms.sum().isnan()), name
            if not terms.sum().isnan():
                assert sums[i] == terms.sum(), name
    torch.testing.assert_close(gx.double(), g.double() * act.derivative(x.double()),
                               rtol=2e-5, atol=1e-6)


def test_thread_count_changes_only_the_order_of_the_sums():
    act = _learned_pau(3)
    gen = torch.Generator().manual_seed(5)
    x, g = 3.0 * torch.randn(1 << 17, generator=gen), torch.randn(1 << 17, generator=gen)
    before = torch.get_num_threads()
    out = {}
    try:
        for t in (1, 4):
            torch.set_num_threads(t)
            out[t] = (cpu_kernel("pau").forward(x, _coefficients(act)),
                      *cpu_kernel("pau").backward(x, g, _coefficients(act)))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(out[1][0], out[4][0]) and torch.equal(out[1][1], out[4][1])
    torch.testing.assert_close(out[1][2], out[4][2], rtol=1e-9, atol=1e-9)


UNARY = [("isru", {"alpha": 0.7}), ("isrlu", {"alpha": 2.0}), ("bent_identity", {})]


@pytest.mark.parametrize(("name", "params"), UNARY, ids=[u[0] for u in UNARY])
@pytest.mark.parametrize("n", [7, 5000, 70001])
def test_unary_kernels_match_float64(name, params, n):
    """isru, isrlu, bent_identity: f and g f' against the catalog in float64, beyond the
    range where their squares overflow (1e18 up to +-inf) and at NaN; bent_identity's
    kernel is its default form as written (digits lost near 0: an absolute bound there)."""
    act = actlab.get(name, **params)
    k = cpu_kernel(name)
    p = [float(act.params[q]) for q in k.names]
    x = _inputs(n, n)
    x[: min(n, 4)] = torch.tensor([2e18, -5e19, INF, NAN])[: min(n, 4)]
    y = k.forward(x, p)
    want = act(x.double())
    finite = torch.isfinite(want) & (want.abs() < torch.finfo(torch.float32).max)
    atol = 5e-8 if name == "bent_identity" else 1e-7
    torch.testing.assert_close(y.double()[finite], want[finite], rtol=2e-6, atol=atol)
    assert torch.equal(y[~finite].isnan(), want[~finite].isnan())
    assert torch.equal(y[~finite & ~want.isnan()], want[~finite & ~want.isnan()].float())
    g = torch.randn(n, generator=torch.Generator().manual_seed(n))
    gx, sums = k.backward(x, g, p)
    assert sums is None
    torch.testing.assert_close(gx.double(), g.double() * act.derivative(x.double()),
                               rtol=2e-6, atol=1e-7, equal_nan=True)


@pytest.mark.parametrize(("name", "params"), UNARY, ids=[u[0] for u in UNARY])
def test_unary_fast_modules_run_the_kernel(name, params):
    act = actlab.get(name, **params)
    x = 3.0 * torch.randn(64, 48, generator=torch.Generator().manual_seed(1))
    m = act.module(fast=True)
    assert m.path(x) == "kernel"
    # bent_identity's kernel is its approximate default form: precise compiles
    precise = act.module(fast=True, precise=True).path(x)
    assert precise == ("compiled" if name == "bent_identity" else "kernel")
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = m(xa), act.module()(xb)
    torch.testing.assert_close(ya, yb, rtol=2e-6, atol=5e-8)
    ya.backward(torch.ones_like(ya))
    yb.backward(torch.ones_like(yb))
    torch.testing.assert_close(xa.grad, xb.grad, rtol=2e-6, atol=1e-7)


def test_bad_tensors_are_refused():
    k, p = cpu_kernel("pau"), _coefficients(actlab.get("pau"))
    with pytest.raises(ValueError, match="contiguous float32 CPU"):
        k.forward(torch.randn(8, dtype=torch.float64), p)
    with pytest.raises(ValueError, match="contiguous float32 CPU"):
        k.forward(torch.randn(4, 4).t(), p)
    with pytest.raises(ValueError, match="one number of elements"):
        k.backward(torch.randn(8), torch.randn(9), p)
    with pytest.raises(ValueError, match="pau takes 10 parameters, got 9"):
        k.forward(torch.randn(8), p[:9])


def test_fast_module_runs_the_kernel_and_matches_the_module():
    """pau's fast module on CPU float32 takes the C kernel (path "kernel"): values and
    gradients of x and of the ten learned coefficients as the memory-efficient module."""
    act = _learned_pau(4)
    gen = torch.Generator().manual_seed(7)
    x, g = 3.0 * torch.randn(64, 48, generator=gen), torch.randn(64, 48, generator=gen)
    m, ref = act.module(fast=True), act.module()
    assert m.path(x) == "kernel" and m.compiled(x)
    assert m.path(x.double()) == "compiled"
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = m(xa), ref(xb)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-6)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-6)
    for (n, pa), (_, pb) in zip(m.named_parameters(), ref.named_parameters(), strict=True):
        scale = pb.grad.abs().max().clamp(min=1.0)
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-5 * scale.item(), msg=n)
    # fixed coefficients (fast_call) and frozen learned ones take their values from the spec
    torch.testing.assert_close(act.fast(x), act(x), rtol=1e-5, atol=1e-6)
    for p in m.parameters():
        p.requires_grad_(False)
    xc = x.clone().requires_grad_()
    m(xc).backward(g)
    assert torch.equal(xc.grad, xa.grad)
    assert all(p.grad is not None for p in m.parameters())  # from the first backward only


@pytest.mark.parametrize("no_compile", [False, True])
def test_frozen_learned_parameters_backward_on_every_path(monkeypatch, no_compile):
    """A fast module whose learned parameters are frozen still backpropagates to x (the
    backward gets the parameters' values): eager and compiled (float64) paths too."""
    if no_compile:
        monkeypatch.setenv("ACTLAB_NO_COMPILE", "1")
    m = actlab.get("pau").module(fast=True).double()
    for p in m.parameters():
        p.requires_grad_(False)
    x = torch.linspace(-3, 3, 11, dtype=torch.float64, requires_grad=True)
    m(x).sum().backward()
    torch.testing.assert_close(x.grad, actlab.get("pau").derivative(x.detach()))


def test_no_compiler_falls_back_to_the_compiled_form(monkeypatch, tmp_path):
    """Without a working C compiler the kernel is not built, build_error says why, and the
    fast path compiles the torch form as for any activation (same values)."""
    monkeypatch.setattr(cpu_kernels, "_LOADED", {})
    monkeypatch.setattr(cpu_kernels, "_ERRORS", {})
    monkeypatch.setenv("ACTLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    fast.clear_cache()
    try:
        assert cpu_kernel("pau") is None
        assert "no-such-compiler" in build_error()
        act = actlab.get("pau")
        x = torch.linspace(-4, 4, 33)
        m = act.module(fast=True)
        assert m.path(x) == "compiled"
        torch.testing.assert_close(m(x), act(x), rtol=1e-5, atol=1e-6)
        assert not list(tmp_path.glob("kernels/*.so"))
    finally:
        fast.clear_cache()


def test_build_goes_to_the_cache_and_is_reused(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu_kernels, "_LOADED", {})
    monkeypatch.setenv("ACTLAB_CACHE", str(tmp_path))
    assert cpu_kernel("pau") is not None
    (built,) = tmp_path.glob("kernels/kernels-*.so")
    stamp = built.stat().st_mtime_ns
    monkeypatch.setattr(cpu_kernels, "_LOADED", {})
    assert cpu_kernel("pau") is not None
    assert built.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert cpu_kernel("mish") is None and build_error() is None  # none for mish


@pytest.mark.slow
def test_outer_torch_compile_traces_the_torch_form():
    """Under a caller's torch.compile the kernel (a ctypes call) is not traced: the fast
    path's torch form is, with the same values and gradients."""
    act = _learned_pau(8)
    m = act.module(fast=True)
    x = 3.0 * torch.randn(32, 16, generator=torch.Generator().manual_seed(9))
    compiled = torch.compile(m, fullgraph=False)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = compiled(xa), m(xb)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-6)
    ya.sum().backward()
    yb.sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-6)
