"""``Activation.module()``: the memory-efficient autograd Function, learnable parameters,
``extra_repr``, half precision; and the GLU family's shape rules."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from catalog_cases import cases, get

import actlab


def _saved_by(module: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    saved: list[torch.Tensor] = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return saved


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a is b or (a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.dtype == b.dtype)


def _saved_and_output(module: torch.nn.Module, x: torch.Tensor):
    saved: list[torch.Tensor] = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = module(x)
    return saved, y


@pytest.mark.parametrize("precise", [False, True], ids=["default", "precise"])
@pytest.mark.parametrize("case", cases())
def test_module_saves_only_its_input(case, precise):
    """The custom Function saves x (and learned parameters); a module that runs the native
    op saves one tensor of the input's size: x, or its output (which the next layer keeps)."""
    act = get(case)
    act = actlab.get(act, learn=list(act.spec.learnable))
    module = act.module(precise=precise)
    x = torch.randn(3, 8, requires_grad=True)
    saved, y = _saved_and_output(module, x)
    params = list(module.parameters())
    assert len(saved) == 1 + len(params), [tuple(t.shape) for t in saved]
    if module.native:
        assert _same(saved[0], x) or _same(saved[0], y)
    else:
        assert _same(saved[0], x)
    for t, p in zip(saved[1:], params, strict=True):
        assert _same(t, p)


def test_plain_autograd_would_save_more():
    """The point of the custom Function: autograd of mish's forward saves many tensors."""
    x = torch.randn(3, 8, requires_grad=True)
    act = actlab.get("mish")
    plain = _saved_by(lambda t: act.spec.forward(t), x)
    assert len(plain) > 1
    assert len(_saved_by(act.module(), x)) == 1


@pytest.mark.parametrize("case", cases(gated=False))
def test_module_forward_and_backward_equal_f_and_derivative(case):
    """``precise=True``: the custom Function computes exactly f and g f'; the exact native
    ops it still runs (relu, elu, mish, ...) agree with them to float64 rounding."""
    act = get(case)
    x = torch.linspace(-5.0, 5.0, 41, dtype=torch.float64).requires_grad_(True)
    g = torch.randn(41, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    module = act.module(precise=True).double()
    act = module.current()  # learned parameters are float32 (the default dtype) at first
    y = module(x)
    tol = {"rtol": 1e-12, "atol": 1e-300} if module.native else {"rtol": 0, "atol": 0}
    torch.testing.assert_close(y, act(x.detach()), **tol)
    y.backward(g)
    tol = {"rtol": 1e-12, "atol": 1e-300} if module.native else {"rtol": 1e-15, "atol": 0}
    torch.testing.assert_close(x.grad, g * act.derivative(x.detach()), **tol)


def test_learnable_parameter_gradients_are_analytic():
    x = torch.linspace(-4.0, 4.0, 33, dtype=torch.float64)
    # silu: d/dbeta x sigmoid(beta x) = x^2 sigmoid'(beta x)
    m = actlab.get("silu", beta=1.5, learn=["beta"]).module().double()
    m(x).sum().backward()
    s = torch.sigmoid(1.5 * x)
    torch.testing.assert_close(m.beta.grad, (x * x * s * (1 - s)).sum())
    # prelu: d/dalpha = sum of the negative inputs
    m = actlab.get("prelu", alpha=0.2).module().double()
    m(x).sum().backward()
    torch.testing.assert_close(m.alpha.grad, x.clamp(max=0).sum())
    # snake: d/dalpha (x + sin^2(a x) / a) = x sin(2 a x) / a - sin^2(a x) / a^2
    a = 0.7
    m = actlab.get("snake", alpha=a).module().double()
    m(x).sum().backward()
    want = (x * torch.sin(2 * a * x) / a - torch.sin(a * x) ** 2 / a**2).sum()
    torch.testing.assert_close(m.alpha.grad, want)


def test_learned_parameters_are_trained():
    m = actlab.get("prelu", alpha=0.25).module()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x = -torch.ones(16)
    loss = (m(x) - (-0.5)).pow(2).mean()  # best alpha is 0.5
    loss.backward()
    opt.step()
    assert m.alpha.item() > 0.25
    assert m.current().params["alpha"] == pytest.approx(m.alpha.item())


def test_extra_repr_shows_parameters():
    assert "alpha=0.2" in repr(actlab.get("leaky_relu", alpha=0.2).module())
    r = repr(actlab.get("prelu", alpha=0.1).module())
    assert "prelu" in r and "alpha=learned" in r
    r = repr(actlab.get("softplus", beta=2.0).module())
    assert "beta=2" in r and "threshold=20" in r
    r = repr(actlab.get("silu", learn=["beta"]).module())
    assert "beta=learned" in r
    assert "relu" in repr(actlab.get("relu").module())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", ["gelu", "mish", "silu", "prelu", "snake", "swiglu", "elu"])
def test_module_in_half_precision(name, dtype):
    act = actlab.get(name)
    module = act.module().to(dtype)
    x = torch.linspace(-6.0, 6.0, 64).to(dtype).reshape(4, 16).requires_grad_(True)
    y = module(x)
    assert y.dtype == dtype
    y.float().sum().backward()
    assert x.grad.dtype == dtype
    x64 = x.detach().double()
    eps = torch.finfo(dtype).eps
    ref_y = act(x64)
    ref_g = act.derivative(x64)
    torch.testing.assert_close(y.double(), ref_y, rtol=2 * eps, atol=2 * eps)
    torch.testing.assert_close(x.grad.double(), ref_g, rtol=2 * eps, atol=2 * eps)
    for p in module.parameters():
        assert p.grad is not None and p.grad.dtype == dtype and torch.isfinite(p.grad).all()


def test_module_without_grad_and_pickling():
    m = actlab.get("snake", alpha=0.5).module()
    x = torch.randn(5)
    with torch.no_grad():
        y = m(x)
    m2 = pickle.loads(pickle.dumps(m))
    torch.testing.assert_close(m2(x).detach(), y)
    assert m2.act == m.act


def test_module_docstring_example():
    m = actlab.get("silu", learn=["beta"]).module()
    assert m(torch.randn(4, 8)).shape == (4, 8)
    assert [n for n, _ in m.named_parameters()] == ["beta"]


# ------------------------------------------------------------------------------ GLU family
GATED = [n for n in actlab.names(builtin_only=True) if actlab.get(n).gated]


def test_gated_family_is_complete():
    assert set(GATED) == {"glu", "reglu", "geglu", "swiglu", "bilinear"}


@pytest.mark.parametrize("name", GATED)
@pytest.mark.parametrize("shape", [(3, 5), (7,), ()], ids=["odd", "odd-1d", "0-dim"])
def test_gated_rejects_odd_last_dimension(name, shape):
    act = actlab.get(name)
    x = torch.randn(shape)
    module = act.module()
    for call in (act, act.derivative, module):
        with pytest.raises(ValueError, match=r"last dimension .* even; got a tensor of shape"):
            call(x)
    with pytest.raises(ValueError, match="even"):
        act(x.numpy())


@pytest.mark.parametrize("name", GATED)
def test_gated_shapes_and_halves(name):
    act = actlab.get(name)
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    y = act(x)
    assert y.shape == (2, 3, 4)
    a, b = x.chunk(2, dim=-1)
    torch.testing.assert_close(y, act.spec.forward(a, b))
    assert act.derivative(x).shape == x.shape
    xr = x.clone().requires_grad_(True)
    act.module()(xr).sum().backward()
    torch.testing.assert_close(xr.grad, act.derivative(x))


def test_glu_matches_native_gate_order():
    x = torch.tensor([[2.0, 0.0]])  # a = 2, b = 0 -> 2 * sigmoid(0) = 1
    assert actlab.get("glu")(x).item() == pytest.approx(1.0)
    assert actlab.get("reglu")(torch.tensor([[2.0, -1.0]])).item() == 0.0
    assert actlab.get("geglu")(torch.tensor([[1.0, 1.0]])).item() == pytest.approx(
        0.5 * (1 + math.erf(1 / math.sqrt(2)))
    )


# ------------------------------------------------------------------------------ chunking
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", ["serf", "swiglu", "tanhexp", "gelu"])
def test_chunked_function_equals_whole_tensor(name, dtype, monkeypatch):
    """Large inputs run chunk by chunk (the last chunk ragged, inputs not contiguous):
    the same values and gradients as one pass over the whole tensor."""
    from actlab.catalog import activation as A

    act = actlab.get(name)
    base = torch.randn(6, 10, 14, generator=torch.Generator().manual_seed(5)).to(dtype)
    x = base.transpose(0, 1)  # (10, 6, 14), not contiguous
    results = []
    for chunk in (1 << 40, 98):  # whole; 7 rows of 14 per chunk (60 rows: the last has 4)
        monkeypatch.setitem(A.EAGER_CHUNK, "cpu", chunk)
        module = act.module(precise=True)
        xr = x.detach().clone().requires_grad_(True)
        y = module(xr)
        g = torch.linspace(-1, 1, y.numel()).reshape(y.shape).to(dtype)
        y.backward(g)
        results.append((y.detach(), xr.grad))
    (y0, g0), (y1, g1) = results
    assert y1.shape == y0.shape and g1.shape == x.shape and g1.dtype == dtype
    torch.testing.assert_close(y1, y0, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g1, g0, rtol=1e-6, atol=1e-7)


def test_chunked_gated_error_names_the_whole_tensor(monkeypatch):
    from actlab.catalog import activation as A

    monkeypatch.setitem(A.EAGER_CHUNK, "cpu", 4)
    with pytest.raises(ValueError, match=r"shape \(3, 7\)"):
        actlab.get("swiglu").module()(torch.randn(3, 7))
