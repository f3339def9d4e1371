"""Learnable parameters: analytic partial derivatives, per-channel parameters, lazy modules;
and the defining values of the recent activations of issue 15 (xIELU, StarReLU, PAU, DyT),
each checked against its paper or reference code.

The general catalog tests (derivatives, stability, mpmath, gradcheck of ``module()``) run
on these four like on every built-in; this file adds what only learnable ones have.
"""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from catalog_cases import POINTS, cases, get, near_kink, points
from scipy import integrate

import actlab
from actlab.catalog import ActivationSpec
from actlab.catalog.fast import FastActivationModule

LEARNABLE = [c for c in cases() if get(c.values[0]).spec.learnable]
NEW = ["xielu", "star_relu", "pau", "dyt"]


def _autograd_partials(act, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """d f(x_i) / d p for each learnable p, element-wise: p expanded to one value per x_i."""
    out = {}
    for name in act.spec.learnable:
        leaf = torch.full_like(x, act.params[name]).requires_grad_(True)
        y = act.spec.forward(x, **{**act.params, name: leaf})
        (g,) = torch.autograd.grad(y.sum(), leaf)
        out[name] = g
    return out


# ------------------------------------------------------------------------------ partials
@pytest.mark.parametrize("case", LEARNABLE)
def test_param_derivative_equals_autograd_and_finite_differences(case):
    act = get(case)
    x = points()
    keep = ~near_kink(act, x, 1e-6)
    # differences in a parameter are inaccurate where f oscillates fast in it (snake's
    # sin(alpha x)^2 at |x| = 1e4): they are checked up to |x| = 100, autograd everywhere
    near = keep & (x.abs() <= 100)
    got = act.param_derivative(x)
    want = _autograd_partials(act, x)
    assert set(got) == set(act.spec.learnable)
    for name in act.spec.learnable:
        assert got[name].shape == x.shape and torch.isfinite(got[name]).all(), name
        torch.testing.assert_close(got[name][keep], want[name][keep], rtol=1e-7, atol=1e-12)
        # central differences in the parameter (an independent check of autograd too);
        # their rounding error is about eps |f| / h, hence the absolute part of the tolerance
        v = act.params[name]
        h = 1e-6 * max(1.0, abs(v))
        up, down = act.with_params(**{name: v + h}), act.with_params(**{name: v - h})
        fd = (up(x) - down(x)) / (2 * h)
        tol = 1e-5 * got[name].abs() + 1e-8 * act(x).abs().clamp(min=1.0)
        err = (got[name] - fd).abs()
        assert bool((err[near] <= tol[near]).all()), (act.name, name, err[near].max().item())


@pytest.mark.parametrize("case", LEARNABLE)
@pytest.mark.parametrize("fast", [False, True], ids=["eager", "fast"])
def test_module_parameter_gradients_are_the_reduced_partials(case, fast, monkeypatch):
    """Every learned parameter's gradient is sum(g * df/dp) over the elements it acts on
    (per-channel ones: over each channel), in the memory-efficient and fast modules."""
    monkeypatch.setenv("ACTLAB_NO_COMPILE", "1")  # the fast path's functions, run eagerly
    act = actlab.get(get(case), learn=list(get(case).spec.learnable))
    gen = torch.Generator().manual_seed(5)
    x = 3.0 * torch.randn(7, 6, generator=gen, dtype=torch.float64)
    x = x[~near_kink(act, x, 1e-6).any(-1)]
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    m = act.module(fast=fast, channels=x.shape[-1]).double()
    m(x).backward(g)
    parts = m.current().param_derivative(x)  # at the module's (float32-rounded) values
    for name, p in m.named_parameters():
        want = g * parts[name]
        want = want.sum(0) if name in act.spec.per_channel else want.sum()
        torch.testing.assert_close(p.grad, want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------ per channel
def test_per_channel_module_shapes_values_and_lazy_sizing():
    act = actlab.get("dyt")
    m = act.module(channels=5)
    assert m.gamma.shape == m.beta.shape == (5,) and m.alpha.shape == ()
    assert torch.equal(m.gamma, torch.ones(5)) and torch.equal(m.beta, torch.zeros(5))
    assert "gamma=learned per channel" in repr(m) and "channels=5" in repr(m)
    lazy = act.module()
    assert isinstance(lazy, torch.nn.modules.lazy.LazyModuleMixin)
    x = torch.randn(2, 3, 7)
    torch.testing.assert_close(lazy(x), act(x))
    assert type(lazy) is actlab.ActivationModule and lazy.gamma.shape == (7,)
    fast = act.module(fast=True)
    fast(x)
    assert type(fast) is FastActivationModule and fast.beta.shape == (7,)
    # a module built directly sizes itself on its first call too
    direct = actlab.ActivationModule(act)
    direct(x)
    assert direct.gamma.shape == (7,)


def test_per_channel_gradient_is_per_channel():
    m = actlab.get("dyt").module(channels=3).double()
    with torch.no_grad():
        m.gamma.copy_(torch.tensor([1.0, 2.0, -0.5]))
        m.beta.copy_(torch.tensor([0.0, 0.1, -0.2]))
        m.alpha.fill_(0.7)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(4, 3, dtype=torch.float64)
    y = m(x)
    torch.testing.assert_close(y, m.gamma * torch.tanh(0.7 * x) + m.beta)
    y.backward(g)
    t = torch.tanh(0.7 * x.detach())
    torch.testing.assert_close(m.gamma.grad, (g * t).sum(0))
    torch.testing.assert_close(m.beta.grad, g.sum(0))
    gamma, xd = m.gamma.detach(), x.detach()
    torch.testing.assert_close(m.alpha.grad, (g * gamma * xd * (1 - t * t)).sum())
    torch.testing.assert_close(x.grad, g * gamma * 0.7 * (1 - t * t))


def test_per_channel_bad_inputs_are_errors():
    m = actlab.get("dyt").module(channels=4)
    with pytest.raises(ValueError, match=r"gamma has 4 channels on dimension -1, but the input "
                                         r"has 3 there \(shape \(2, 3\)\)"):
        m(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"one value per channel along dimension -1, but the "
                                         r"input has shape \(\)"):
        actlab.get("dyt").module()(torch.tensor(1.0))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="channels must be a positive integer"):
            actlab.get("dyt").module(channels=bad)
    # an activation without per-channel parameters ignores channels
    assert actlab.get("prelu").module(channels=8).alpha.shape == ()


def test_current_and_state_dict_of_per_channel_modules():
    act = actlab.get("dyt", alpha=0.8)
    lazy = act.module()
    # before its first call: the initial values (rounded to float32, the parameters' dtype)
    assert lazy.current().params == pytest.approx(act.params, rel=1e-7)
    sized = act.module(channels=3)
    assert sized.current().params == pytest.approx(act.params, rel=1e-7)
    with torch.no_grad():
        sized.gamma[1] = 2.0
    with pytest.raises(ValueError, match="gamma differs across its 3 channels"):
        sized.current()
    # a lazy module loads a sized state dict (PyTorch's lazy-module rules), and pickles
    lazy.load_state_dict(sized.state_dict())
    x = torch.randn(5, 3)
    torch.testing.assert_close(lazy(x), sized(x))
    again = pickle.loads(pickle.dumps(sized))
    torch.testing.assert_close(again(x), sized(x))


def test_channels_on_another_dimension():
    """A spec may put per-channel parameters on any dimension (here 1: NCHW feature maps);
    the fast path moves it last for its kernels and back."""
    spec = dataclasses.replace(actlab.get("dyt").spec, name="dyt_nchw", builtin=False,
                               aliases=(), per_channel={"gamma": 1, "beta": 1})
    act = actlab.get(spec)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    gamma = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    want = gamma.view(3, 1, 1) * torch.tanh(0.5 * x)
    for fast in (False, True):
        m = act.module(fast=fast).double()
        m(x)
        assert m.gamma.shape == (3,)
        with torch.no_grad():
            m.gamma.copy_(gamma)
        xr = x.clone().requires_grad_(True)
        y = m(xr)
        torch.testing.assert_close(y, want)
        y.sum().backward()
        torch.testing.assert_close(m.beta.grad, torch.full((3,), 40.0, dtype=torch.float64))


def test_spec_rules_for_per_channel_parameters():
    base = actlab.get("dyt").spec
    with pytest.raises(ValueError, match=r"per-channel parameters .* must be learnable"):
        dataclasses.replace(base, per_channel={"gamma": -1, "nope": -1})
    with pytest.raises(TypeError, match=r"per_channel\['gamma'\] must be an int"):
        dataclasses.replace(base, per_channel={"gamma": "last"})
    glu = actlab.get("glu").spec
    with pytest.raises(ValueError, match="gated activations cannot have per-channel"):
        ActivationSpec(**{**{f.name: getattr(glu, f.name) for f in dataclasses.fields(glu)},
                          "params": {"w": 1.0}, "learnable": ("w",), "per_channel": {"w": -1}})


# ------------------------------------------------------------------------------ xIELU
def _xielu_reference(x, alpha_p_raw, alpha_n_raw, beta=0.5, eps=-1e-6):
    """The reference implementation's forward (github.com/rubber-duck-debug/xielu,
    xielu/ops/wrappers.py, XIELUPy), transcribed."""
    alpha_p = F.softplus(alpha_p_raw)
    alpha_n = beta + F.softplus(alpha_n_raw)
    eps = torch.tensor(eps, dtype=x.dtype)
    return torch.where(x > 0, alpha_p * x * x + beta * x,
                       alpha_n * torch.expm1(torch.min(x, eps)) - alpha_n * x + beta * x)


def test_xielu_initial_values_are_the_papers():
    p = actlab.get("xielu").params
    # the reference code stores alpha_p = log(exp(0.8) - 1), alpha_n = log(exp(0.8 - 0.5) - 1)
    assert p["a_p"] == pytest.approx(math.log(math.exp(0.8) - 1), rel=1e-15)
    assert p["a_n"] == pytest.approx(math.log(math.exp(0.3) - 1), rel=1e-15)
    assert math.log1p(math.exp(p["a_p"])) == pytest.approx(0.8, rel=1e-15)
    assert p["beta"] + math.log1p(math.exp(p["a_n"])) == pytest.approx(0.8, rel=1e-15)
    assert (p["beta"], p["eps"]) == (0.5, -1e-6)


def test_xielu_matches_the_reference_code_values_and_gradients():
    act = actlab.get("xielu")
    x = torch.tensor([p for p in POINTS if abs(p) < 1e3], dtype=torch.float64)
    x = x[~near_kink(act, x, 1e-5)]
    m = act.module().double()
    a_p = m.a_p.detach().clone().requires_grad_(True)
    a_n = m.a_n.detach().clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    ref = _xielu_reference(xr, a_p, a_n)
    xm = x.clone().requires_grad_(True)
    y = m(xm)
    torch.testing.assert_close(y, ref, rtol=1e-13, atol=1e-15)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref.backward(g)
    y.backward(g)
    torch.testing.assert_close(xm.grad, xr.grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(m.a_p.grad, a_p.grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(m.a_n.grad, a_n.grad, rtol=1e-12, atol=1e-14)


def test_xielu_initial_shape():
    act = actlab.get("xielu")
    x = torch.tensor([0.5, 2.0, 10.0], dtype=torch.float64)
    torch.testing.assert_close(act(x), 0.8 * x * x + 0.5 * x)  # alpha_p x^2 + beta x
    d = act.derivative(torch.tensor([1e-9, -1e-3, -60.0], dtype=torch.float64))
    assert d[0].item() == pytest.approx(0.5)  # beta at 0+
    assert d[2].item() == pytest.approx(0.5 - 0.8)  # beta - alpha_n at -inf: negative slope
    # its minimum: alpha_n e^x = alpha_n - beta, x* = log(1 - beta / alpha_n) = log(0.375)
    xs = math.log(0.375)
    assert act.derivative(torch.tensor([xs], dtype=torch.float64)).item() == pytest.approx(
        0.0, abs=1e-15)
    props = actlab.analysis.properties("xielu").as_dict()
    assert f"x = {xs:.3f}" in props["monotonic"]  # measured on a grid


# ------------------------------------------------------------------------------ StarReLU
def test_star_relu_initial_values_give_zero_mean_and_unit_variance():
    p = actlab.get("star_relu").params
    # E[relu(z)^2] = 1/2, E[relu(z)^4] = 3/2: s = 1 / sqrt(3/2 - 1/4), b = -s/2
    s = 1 / math.sqrt(1.5 - 0.25)
    assert p["s"] == pytest.approx(s, abs=5e-5) and p["b"] == pytest.approx(-s / 2, abs=5e-5)
    assert (p["s"], p["b"]) == (0.8944, -0.4472)  # the paper's rounded values

    def moment(k):
        f = lambda z: (p["s"] * max(z, 0.0) ** 2 + p["b"]) ** k * math.exp(-z * z / 2)  # noqa: E731
        return sum(integrate.quad(f, lo, hi, epsabs=1e-13)[0]
                   for lo, hi in ((-np.inf, 0), (0, np.inf))) / math.sqrt(2 * math.pi)

    assert abs(moment(1)) < 1e-12  # 0.8944 / 2 - 0.4472 = 0 exactly
    assert moment(2) == pytest.approx(1.0, abs=1e-4)
    m = actlab.analysis.act_moments("star_relu")
    assert m.mean == pytest.approx(moment(1), abs=1e-12)
    assert m.second == pytest.approx(moment(2), rel=1e-10)
    assert actlab.gain("star_relu") == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------------------ PAU
def test_pau_is_a_safe_rational_function():
    act = actlab.get("pau")
    p = act.params
    num = [p[f"a{k}"] for k in range(6)]
    den = [1.0] + [abs(p[f"b{k}"]) for k in range(1, 5)]
    x = np.linspace(-8, 8, 1601)
    ref = np.polynomial.polynomial.polyval(x, num) / np.polynomial.polynomial.polyval(
        np.abs(x), den)
    np.testing.assert_allclose(act(x), ref, rtol=1e-12, atol=1e-14)
    assert np.all(np.polynomial.polynomial.polyval(np.abs(x), den) >= 1.0)  # no pole
    # beyond +-1 it is evaluated divided by x^4: no overflow where x^5 would (float32 > 5e7)
    big = torch.tensor([1e8, -1e8, 1e30, -3e38], dtype=torch.float32)
    slope = p["a5"] / abs(p["b4"])
    torch.testing.assert_close(act(big), big * slope, rtol=1e-6, atol=0.0)
    assert torch.isfinite(act.derivative(big)).all()


def test_pau_initialisation_approximates_leaky_relu():
    """The authors' fit of leaky ReLU (slope 0.01) on [-3, 3] for this denominator
    (rational_activations, "Rational_version_A5/4" -> "leaky_relu"): largest distance a0
    at x = 0, RMS distance 0.0050, much closer to leaky ReLU than to ReLU or slope 0.1."""
    act = actlab.get("pau")
    x = torch.linspace(-3, 3, 60001, dtype=torch.float64)
    y = act(x)

    def dist(slope):
        e = y - F.leaky_relu(x, slope)
        return e.abs().max().item(), e.square().mean().sqrt().item()

    worst, rms = dist(0.01)
    assert worst == pytest.approx(act.params["a0"], rel=1e-9)  # at x = 0: f(0) = a0
    assert worst < 0.0298 and rms < 0.0051
    assert dist(0.0)[1] > 2.5 * rms and dist(0.1)[1] > 20 * rms


# ------------------------------------------------------------------------------ DyT
def test_dyt_initial_values_and_shape():
    act = actlab.get("dyt")
    assert act.params == {"alpha": 0.5, "gamma": 1.0, "beta": 0.0}
    assert act.spec.per_channel == {"gamma": -1, "beta": -1}
    x = torch.linspace(-20, 20, 81, dtype=torch.float64)
    torch.testing.assert_close(act(x), 2 * torch.sigmoid(x) - 1)  # tanh(x/2)
    # gain: 1 / sqrt(E[tanh(z/2)^2]) against scipy
    m2 = integrate.quad(lambda z: math.tanh(z / 2) ** 2 * math.exp(-z * z / 2), -np.inf, np.inf,
                        epsabs=1e-13)[0] / math.sqrt(2 * math.pi)
    assert actlab.gain("dyt") == pytest.approx(1 / math.sqrt(m2), rel=1e-10)
    # edge of chaos: tanh's sigma_w^2 = 1 at sigma_b^2 = 0, scaled by 1 / alpha^2
    crit = actlab.analysis.critical_weight_variance("dyt", 0.0)
    assert crit == pytest.approx(1 / 0.5**2, rel=1e-6)


@pytest.mark.parametrize("name", NEW)
def test_new_activations_have_no_native_op_and_a_finite_gain(name):
    act = actlab.get(name)
    assert act.native is None and act.spec.param_derivative is not None
    assert math.isfinite(actlab.gain(name)) and actlab.gain(name) > 0
