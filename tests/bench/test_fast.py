"""The compiled fast path: numerics within the catalog's tolerances, fall-back, caching.

Every case is checked with the catalog's own float32 criterion (``assert_accurate``:
1e-5 relative to float64, beyond the inputs' rounding), forward and derivative (the
backward with a unit output gradient). The functions are those the compiler receives,
run eagerly (``ACTLAB_NO_COMPILE=1``) for every case; compiled kernels are checked on a
few representative cases here and on every case under ``-m slow``. Where the default
fast path runs ATen's less accurate kernel (float32 GELU), the precise path is held to
the criterion and the default one is checked to be exactly the native op.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import actlab
from actlab.catalog import fast
from actlab.catalog.fast import FastActivationModule, fast_call, fast_stats
from actlab.catalog.fast_forms import APPROXIMATE_FORMS, NATIVE_AUTOGRAD

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "catalog"))
from catalog_cases import assert_accurate, cases, gated_input, get, points


class FastView:
    """An activation seen through the fast path (float64 keeps the catalog's reference)."""

    def __init__(self, act: actlab.Activation, precise: bool | None = None) -> None:
        self.act, self.gated, self.name = act, act.gated, act.name
        # the catalog's tolerance is the precise path's contract
        self.precise = (act.name in NATIVE_AUTOGRAD or act.name in APPROXIMATE_FORMS
                        if precise is None else precise)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float64:
            return self.act(x)
        with torch.no_grad():
            return self.act.fast(x, precise=self.precise)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float64:
            return self.act.derivative(x)
        xr = x.detach().clone().requires_grad_(True)
        y = self.act.fast(xr, precise=self.precise)
        (g,) = torch.autograd.grad(y, xr, torch.ones_like(y))
        return g  # gated: [df/da, df/db] per output, the layout of Activation.derivative


def _inputs(act: actlab.Activation, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = points(dtype)
    return gated_input(x) if act.gated else x


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTLAB_NO_COMPILE", "1")


@pytest.fixture
def forget_kernels():
    """Drop the kernels a test made with a broken compiler (later tests compile afresh)."""
    yield
    fast.clear_cache()


@pytest.mark.parametrize("case", cases())
def test_fast_functions_within_catalog_tolerance(case, eager):
    """The fast path's functions (incl. the cheaper float32 forms), run eagerly."""
    act = get(case)
    assert_accurate(FastView(act), _inputs(act), rtol=1e-5)


COMPILED = [("mish", {}), ("gelu", {}), ("swiglu", {}), ("softplus", {"beta": 2.0})]


@pytest.mark.parametrize("case", COMPILED, ids=lambda c: c[0])
def test_compiled_within_catalog_tolerance(case):
    act = get(case)
    assert_accurate(FastView(act), _inputs(act), rtol=1e-5)
    assert FastActivationModule(act, precise=True).path(_inputs(act)) == "compiled"


def test_c_kernel_within_catalog_tolerance():
    """pau's C kernel (actlab.catalog.cpu_kernels) on the catalog's points and tolerance."""
    act = get(("pau", {}))
    if act.module(fast=True).path(_inputs(act)) != "kernel":
        pytest.skip("no C kernel here")
    assert_accurate(FastView(act), _inputs(act), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(NATIVE_AUTOGRAD))
def test_default_fast_path_runs_the_native_op(name):
    """GELU (the transformer default) and sigmoid: the default fast path is the native
    op with PyTorch's autograd, bit for bit, as fast as native; precise compiles."""
    act = actlab.get(name)
    x = _inputs(act) * 0.25
    m = act.module(fast=True)
    assert m.path(x) == "native"
    assert act.module(fast=True, precise=True).path(x) in ("compiled", "aten+compiled")
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = m(xa), act.native_fn(xb)
    g = torch.randn(ya.shape, generator=torch.Generator().manual_seed(2))
    ya.backward(g)
    yb.backward(g)
    assert torch.equal(ya, yb) and torch.equal(xa.grad, xb.grad)
    with pytest.raises(AssertionError):  # and it is the less accurate one
        assert_accurate(FastView(act, precise=False), _inputs(act), rtol=1e-5)


def test_geglu_default_gate_is_pytorchs_erf_gelu():
    """The default fast geglu gates with erf, as F.gelu does (faster); its documented
    figures: relative error <= 1.1e-5 for gates in [-3, 3], absolute < 5e-7 everywhere,
    all digits lost below b = -5.5; ``precise=True`` keeps the erfc form (<= 1.2e-6)."""
    act = actlab.get("geglu")
    b = torch.linspace(-10, 10, 20001)
    x = torch.stack([torch.ones_like(b), b], -1)
    ref = act(x.double()).squeeze(-1)
    mid = b.abs() <= 3
    for precise, rel_mid in ((False, 1.2e-5), (True, 1.5e-6)):
        m = act.module(fast=True, precise=precise)
        assert m.path(x) == "compiled"
        err = (m(x).double().squeeze(-1) - ref).abs()
        rel = err / ref.abs()
        assert rel[mid].max() <= rel_mid and err.max() < 5e-7
        tail = rel[b < -5.5]
        assert (tail.min() > 0.5) if not precise else (tail.max() < 1e-5)


# the default float32 forms that drop the catalog's care near 0 (APPROXIMATE_FORMS):
# absolute error bound for |x| < 1e-2 (measured: elu 3.0e-8, selu 5.4e-8, celu(2) 6.0e-8,
# xielu 2.4e-8, bent_identity 4.5e-8), where the precise forms keep 1e-5 relative
NEAR_ZERO = [("elu", {}, 4e-8), ("selu", {}, 7e-8), ("celu", {"alpha": 2.0}, 8e-8),
             ("xielu", {}, 4e-8), ("bent_identity", {}, 6e-8)]


@pytest.mark.parametrize(("name", "params", "bound"), NEAR_ZERO, ids=lambda v: str(v))
def test_default_forms_lose_digits_only_near_zero(name, params, bound):
    """elu, selu, celu, xielu compute expm1 as exp(x) - 1 (as inductor compiles
    torch.expm1 and the hand formula writes it), bent_identity sqrt(x^2 + 1) - 1 as it
    reads: faster, absolute error below ``bound`` near 0, relative 1e-5 elsewhere; the
    backward is the precise path's. ``precise=True`` keeps the accurate forms."""
    act = actlab.get(name, **params)
    x = torch.cat([-torch.logspace(-12, 1.5, 20001), torch.logspace(-12, 1.5, 20001)])
    runs = []
    for precise in (False, True):
        m = act.module(fast=True, precise=precise)
        # bent_identity's default form runs as a C kernel (actlab.catalog.cpu_kernels)
        kernel = name == "bent_identity" and not precise and m.path(x) == "kernel"
        assert kernel or m.path(x) == "compiled"
        xr = x.clone().requires_grad_(True)
        y = m(xr)
        (g,) = torch.autograd.grad(y, xr, torch.ones_like(y))
        runs.append((y.detach().double(), g))
    (d, gd), (p, gp) = runs
    ref = act(x.double()).detach()
    small = x.abs() < 1e-2
    assert (d - ref).abs()[small].max() <= bound
    assert ((d - p).abs() / p.abs())[~small].max() <= 1e-5
    rel_default = ((d - ref).abs() / ref.abs())[small].max()
    rel_precise = ((p - ref).abs() / ref.abs())[small].max()
    assert rel_default > 5e-5 and rel_precise < 2e-6  # the digits the default drops
    torch.testing.assert_close(gd, gp, rtol=1e-6, atol=0)


def test_float64_and_half_precision(eager):
    act = actlab.get("mish")
    x64 = torch.linspace(-8, 8, 101, dtype=torch.float64)
    # float64 runs the catalog's own forms: as exact as act() itself
    torch.testing.assert_close(act.fast(x64), act(x64), rtol=1e-14, atol=1e-15)
    xh = x64.to(torch.bfloat16)
    y = act.fast(xh)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, act(xh), rtol=1e-2, atol=1e-3)


def test_numpy_in_numpy_out(eager):
    y = actlab.get("relu").fast(torch.tensor([-1.0, 2.0]).numpy())
    assert y.tolist() == [0.0, 2.0]


def test_learned_parameter_gradients_match_eager_module():
    """prelu's alpha: the compiled backward reduces its gradient like autograd does."""
    act = actlab.get("prelu", alpha=0.3)
    x = torch.randn(6, 32, dtype=torch.float64)
    g = torch.randn(6, 32, dtype=torch.float64)
    fast_m, ref_m = act.module(fast=True).double(), act.module().double()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    fast_m(xa).backward(g)
    ref_m(xb).backward(g)
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(fast_m.alpha.grad, ref_m.alpha.grad)
    expected = (g * torch.where(x > 0, 0.0, x)).sum()
    torch.testing.assert_close(fast_m.alpha.grad, expected)
    assert fast_m.state_dict().keys() == ref_m.state_dict().keys()


def test_formula_activation_uses_autograd_of_its_forward(eager):
    act = actlab.formula("x * tanh(softplus(x))", name="my_mish")
    x = torch.linspace(-6, 6, 49, dtype=torch.float64, requires_grad=True)
    act.fast(x).sum().backward()
    torch.testing.assert_close(x.grad, actlab.get("mish").derivative(x.detach()))


def test_gated_odd_width_is_an_error(eager):
    with pytest.raises(ValueError, match="even"):
        actlab.get("swiglu").fast(torch.randn(3, 5))


def test_shapes_and_views(eager):
    m = actlab.get("gelu").module(fast=True)
    base = torch.randn(4, 6, 8)
    x = base.transpose(0, 2)  # not contiguous
    torch.testing.assert_close(m(x), actlab.get("gelu")(x))
    assert actlab.get("glu").module(fast=True)(torch.randn(2, 3, 8)).shape == (2, 3, 4)
    assert m(torch.randn(0, 3)).shape == (0, 3)


def test_falls_back_to_eager_when_compile_raises(monkeypatch, forget_kernels):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    fast.clear_cache()  # kernels another test compiled would not fall back
    act = actlab.get("tanhexp")
    before = fast_stats().fallbacks
    x = torch.linspace(-5, 5, 257, requires_grad=True)
    m = FastActivationModule(act)
    y = m(x)
    y.sum().backward()
    torch.testing.assert_close(y, act(x.detach()), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad, act.derivative(x.detach()), rtol=1e-5, atol=1e-6)
    assert not m.compiled(x)
    assert fast_stats().fallbacks == before + 1


def test_falls_back_when_the_backend_fails(monkeypatch, forget_kernels):
    """A failure inside compilation (not at torch.compile) is caught at the first call."""

    def failing_backend(gm, example_inputs):
        raise RuntimeError("inductor exploded")

    monkeypatch.setattr(fast, "_inductor", failing_backend)
    act = actlab.get("sine", w0=1.7)  # a key no other test compiles
    x = torch.randn(64)
    torch.testing.assert_close(act.fast(x), act(x), rtol=1e-5, atol=1e-6)
    assert not FastActivationModule(act).compiled(x)


def test_env_var_disables_compilation(eager):
    before = fast_stats().compiles
    act = actlab.get("softsign")
    x = torch.randn(100, requires_grad=True)
    act.fast(x).sum().backward()
    assert fast_stats().compiles == before
    assert not FastActivationModule(act).compiled(x)


def test_compilation_is_cached_across_calls_and_shapes():
    act = actlab.get("squared_relu")
    m = act.module(fast=True)
    x = torch.randn(33, 7, requires_grad=True)
    m(x).sum().backward()  # compiles forward and backward
    after_first = fast_stats().compiles
    for shape in [(33, 7), (5, 100), (1000,), (2, 3, 4, 5)]:
        x = torch.randn(shape, requires_grad=True)
        m(x).sum().backward()
        with torch.no_grad():
            act.fast(torch.randn(shape))
    assert fast_stats().compiles == after_first
    # a new activation object with the same parameters shares the kernels
    actlab.get("squared_relu").fast(torch.randn(9))
    assert fast_stats().compiles == after_first


def test_gated_kernels_are_shared_across_row_counts():
    """Gated kernels take any number of rows; the row width is static (one kernel each)."""
    act = actlab.get("swiglu")
    m = act.module(fast=True)
    m(torch.randn(3, 24, requires_grad=True)).sum().backward()
    after_first = fast_stats().compiles
    for rows in (7, 100, 33):  # (a single row would be specialised by dynamo)
        x = torch.randn(rows, 24, requires_grad=True)
        m(x).sum().backward()
        torch.testing.assert_close(x.grad, act.derivative(x.detach()), rtol=1e-5, atol=1e-6)
    assert fast_stats().compiles == after_first
    m(torch.randn(2, 40, requires_grad=True)).sum().backward()  # a new width compiles
    assert fast_stats().compiles > after_first


def test_fast_call_is_differentiable(eager):
    act = actlab.get("silu", beta=1.5)
    x = torch.randn(40, dtype=torch.float64, requires_grad=True)
    fast_call(act, x).sum().backward()
    torch.testing.assert_close(x.grad, act.derivative(x.detach()))


def test_only_the_input_is_saved(eager):
    from actlab.bench.memory import saved_bytes_per_element

    x = torch.randn(4096)
    assert saved_bytes_per_element(actlab.get("mish").module(fast=True), x) == 4.0
    assert saved_bytes_per_element(actlab.get("swiglu").module(fast=True), x.view(64, 64)) == 4.0


@pytest.mark.parametrize("name, params", [("relu", {}), ("leaky_relu", {"alpha": 0.2}),
                                          ("hardswish", {}), ("threshold", {"threshold": 0.5}),
                                          ("softshrink", {"lambd": 1.0})])
def test_piecewise_linear_use_atens_exact_kernels(name, params):
    """ATen's kernels both ways; hardswish compiles its forward (ATen's values, faster)."""
    act = actlab.get(name, **params)
    kinks = [float(k) for k in act.spec.kinks(**act.params)]
    x = torch.tensor([-4.0, -3.0, -1.0, 0.0, 0.5, 1.0, 3.0, 4.0, *kinks], requires_grad=True)
    m = act.module(fast=True)
    assert m.path(x) == ("compiled+aten" if name == "hardswish" else "aten")
    y = m(x)
    y.backward(torch.ones_like(y))
    assert torch.equal(y, act(x.detach()))
    assert torch.equal(x.grad, act.derivative(x.detach()))  # same values at the kinks


def test_compiled_hardswish_forward_gives_atens_values():
    """The compiled forward that replaces ATen's (COMPILED_FORWARD) equals it bit for bit,
    NaN and infinities included, on a fine grid over the kinks and beyond."""
    act = actlab.get("hardswish")
    inf, nan = float("inf"), float("nan")
    x = torch.cat([torch.linspace(-5, 5, 200001), torch.tensor([-3e38, 3e38, inf, -inf, nan])])
    y = act.fast(x)
    want = torch.nn.functional.hardswish(x)
    assert torch.equal(y.isnan(), want.isnan())
    assert torch.equal(y[~y.isnan()], want[~want.isnan()])


def test_learned_prelu_is_compiled_not_aten():
    assert actlab.get("prelu").module(fast=True).path(torch.randn(4)) != "aten"
    assert actlab.get("prelu", learn=[]).module(fast=True).path(torch.randn(4)) == "aten"


def test_kernels_are_generated_for_the_current_thread_count(monkeypatch, forget_kernels):
    """The thread count is in inductor's options (and so in its on-disk cache key): a
    kernel made for one thread has no OpenMP loop and must not serve a process with two."""
    import torch._inductor.compile_fx as cfx
    import torch._inductor.config as config

    seen = []

    def spy(gm, example_inputs):
        seen.append(config.cpp.threads)
        return gm.forward

    monkeypatch.setattr(cfx, "compile_fx", spy)
    act = actlab.get("gaussian")
    torch.testing.assert_close(act.fast(torch.linspace(-2, 2, 9)), act(torch.linspace(-2, 2, 9)))
    assert seen == [torch.get_num_threads()]


# star_relu compiles in ~5 s; the others take 10-30 s on 2 cores (dyt: per-channel reductions)
@pytest.mark.parametrize("name", ["star_relu", pytest.param("dyt", marks=pytest.mark.slow),
                                  pytest.param("pau", marks=pytest.mark.slow),
                                  pytest.param("xielu", marks=pytest.mark.slow)])
def test_compiled_learned_parameters_match_the_eager_module(name):
    """Learned (and per-channel) parameters through the compiled kernels: the same values
    and gradients as the memory-efficient module, float32, from the analytic partials."""
    act = actlab.get(name)
    gen = torch.Generator().manual_seed(4)
    x = 3.0 * torch.randn(64, 48, generator=gen)
    g = torch.randn(64, 48, generator=gen)
    fast_m, ref_m = act.module(fast=True, channels=48), act.module(channels=48)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = fast_m(xa), ref_m(xb)
    assert fast_m.compiled(x)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-6)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-6)
    for (n, pa), (_, pb) in zip(fast_m.named_parameters(), ref_m.named_parameters(), strict=True):
        scale = pb.grad.abs().max().clamp(min=1.0)
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-5 * scale.item(), msg=n)


@pytest.mark.parametrize("name", ["xielu", "dyt", "pau"])
def test_float32_forms_of_parameter_partials(name, eager):
    """xielu, dyt and pau have cheaper float32 forms of their parameter partials too: the fast
    module's float32 parameter gradients agree with the float64 memory-efficient module."""
    act = actlab.get(name)
    gen = torch.Generator().manual_seed(6)
    x = 3.0 * torch.randn(64, 48, generator=gen)
    g = torch.randn(64, 48, generator=gen)
    m32, m64 = act.module(fast=True, channels=48), act.module(channels=48).double()
    m32(x).backward(g)
    m64(x.double()).backward(g.double())
    parts = m64.current().param_derivative(x.double())
    for (n, p32), (_, p64) in zip(m32.named_parameters(), m64.named_parameters(), strict=True):
        # a float32 sum of 3072 terms that cancel: its rounding is ~eps sqrt(n) sum |terms|
        scale = (g.double() * parts[n]).abs().sum().item()
        torch.testing.assert_close(p32.grad.double(), p64.grad, rtol=1e-5, atol=1e-6 * scale,
                                   msg=n)
