"""Hypothesis property tests: derivatives and precision on random floats; the formula
parser on random text and random expressions (never executes, never hangs)."""

from __future__ import annotations

import math

import torch
from catalog_cases import BUILTINS, assert_accurate, finite_within, near_kink, nothing_executes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actlab

SCALAR = [n for n in BUILTINS if not actlab.get(n).gated]
GATED = [n for n in BUILTINS if actlab.get(n).gated]
floats = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=64)
floats32 = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)


@given(name=st.sampled_from(SCALAR), xs=st.lists(floats, min_size=1, max_size=16))
def test_derivative_equals_autograd_on_random_floats(name, xs):
    act = actlab.get(name)
    x = torch.tensor(xs, dtype=torch.float64)
    keep = ~near_kink(act, x, 1e-9)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(act.spec.forward(xr, **act.params).sum(), xr)
    d = act.derivative(x)
    assert torch.isfinite(d).all()
    torch.testing.assert_close(d[keep], g[keep], rtol=1e-7, atol=1e-12)


@given(name=st.sampled_from(GATED), a=floats, b=floats)
def test_gated_partials_equal_autograd_on_random_floats(name, a, b):
    act = actlab.get(name)
    if near_kink(act, torch.tensor([b], dtype=torch.float64), 1e-9).any():
        return
    ta = torch.tensor([a], dtype=torch.float64, requires_grad=True)
    tb = torch.tensor([b], dtype=torch.float64, requires_grad=True)
    ga, gb = torch.autograd.grad(act.spec.forward(ta, tb).sum(), (ta, tb))
    d = act.derivative(torch.tensor([[a, b]], dtype=torch.float64))[0]
    torch.testing.assert_close(d, torch.cat([ga, gb]), rtol=1e-7, atol=1e-12)


@given(name=st.sampled_from(BUILTINS), xs=st.lists(floats32, min_size=2, max_size=16))
def test_float32_accuracy_on_random_floats(name, xs):
    act = actlab.get(name)
    x = torch.tensor(xs[: len(xs) // 2 * 2], dtype=torch.float32)
    assert_accurate(act, x.reshape(-1, 2) if act.gated else x, rtol=1e-5)


@given(
    name=st.sampled_from(BUILTINS),
    dtype=st.sampled_from([torch.float16, torch.bfloat16]),
    xs=st.lists(st.floats(min_value=-6e4, max_value=6e4, width=32), min_size=2, max_size=16),
)
def test_half_precision_finite_on_random_floats(name, dtype, xs):
    act = actlab.get(name)
    x = torch.tensor(xs[: len(xs) // 2 * 2]).to(dtype)
    x = x.reshape(-1, 2) if act.gated else x
    for fn in (act, act.derivative):
        ref = fn(x.double())
        need = finite_within(ref, dtype)
        assert torch.isfinite(fn(x)[need]).all()


# ------------------------------------------------------------------------------ formula parser
def _parse(text: str) -> None:
    calls: list[str] = []
    try:
        with nothing_executes(calls):
            act = actlab.formula(text)
    except ValueError as exc:
        msg = str(exc)
        assert msg.startswith("invalid formula") and "\n" not in msg, msg
    else:
        x = torch.linspace(-3, 3, 7, dtype=torch.float64)
        assert act(x).shape == x.shape and act.derivative(x).shape == x.shape
    assert not calls, calls


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=120))
def test_parser_on_random_text(text):
    _parse(text)


TOKENS = [
    "x", "x", "x", "1", "2.5", "1e3", "pi", "e", "beta", "(", ")", "(", ")", "+", "-", "*", "/",
    "**", ",", "<", ">", "==", ".", "[", "]", "exp(", "log(", "sqrt(", "tanh(", "sigmoid(",
    "where(", "max(", "min(", "clamp(", "softplus(", "__import__(", "os", "'os'", "lambda",
    ":", "for", "in", "if", "else", "not", "and", "__class__", "open(", "eval(", ";", "=",
    ":=", "@", "&", "|", "~", "%", "//", "9**9**9", "1e308", "1j", "*x", "**x", "\n",
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(tokens=st.lists(st.sampled_from(TOKENS), max_size=40))
def test_parser_on_random_token_soup(tokens):
    _parse(" ".join(tokens))


def _expressions() -> st.SearchStrategy[str]:
    leaves = st.sampled_from(["x", "1.5", "-2", "pi", "e", "0"])
    unary = st.sampled_from(["exp", "log", "log1p", "sqrt", "abs", "tanh", "sigmoid",
                             "softplus", "erf", "sin", "cos", "atan", "relu", "expm1"])

    def extend(inner):
        return st.one_of(
            st.builds(lambda f, a: f"{f}({a})", unary, inner),
            st.builds(lambda a, op, b: f"({a} {op} {b})", inner,
                      st.sampled_from(["+", "-", "*", "/"]), inner),
            st.builds(lambda a, n: f"({a}) ** {n}", inner, st.sampled_from(["2", "3", "0.5"])),
            st.builds(lambda c, a, b: f"where({c} > 0, {a}, {b})", inner, inner, inner),
            st.builds(lambda a, b: f"max({a}, {b})", inner, inner),
        )

    return st.recursive(leaves, extend, max_leaves=12)


@settings(max_examples=150)
@given(text=_expressions())
def test_valid_random_expressions_have_exact_derivatives(text):
    """Every well-formed expression parses; its derivative is exact (= central differences
    where those are reliable)."""
    act = actlab.formula(text)
    x = torch.linspace(-2.05, 2.05, 9, dtype=torch.float64)
    d = act.derivative(x)
    h = 1e-6
    fd = (act(x + h) - act(x - h)) / (2 * h)
    y = act(x)
    ok = torch.isfinite(d) & torch.isfinite(fd) & torch.isfinite(y)
    ok &= (d.abs() < 1e6) & (fd.abs() < 1e6)
    for i in torch.nonzero(ok).flatten().tolist():
        # skip kinks and jumps (where, max, abs, relu) near this point
        left = (act(x[i : i + 1] - 1e-3) - y[i]).item()
        right = (act(x[i : i + 1] + 1e-3) - y[i]).item()
        if not math.isclose(-left, right, rel_tol=0.05, abs_tol=1e-5):
            continue
        assert math.isclose(d[i].item(), fd[i].item(), rel_tol=1e-4, abs_tol=1e-5), (
            text, x[i].item(), d[i].item(), fd[i].item()
        )
