"""One answer at NaN and +-inf, shared by every path of every activation.

The rule (``actlab.catalog`` documents it):

* an activation that PyTorch also implements gives PyTorch's values, f and f', on every
  path (its modules run PyTorch's op, and a module swapped in for ``torch.nn``'s must not
  change a model's numbers, even on broken inputs); for parameter values the native op
  cannot take (``silu`` with ``beta != 1``), those of its formula written the same way;
* any other gives NaN for f and f' at NaN, and at +-inf the limits of f and f' (NaN where
  there is none, as for ``sine``);
* a gated activation without a native op is its formula ``a g(b)``: ``df/da = g(b)`` and
  ``df/db = a g'(b)`` with the gate's limits, multiplied in IEEE arithmetic.

Paths: ``act(x)``, ``act.derivative(x)``, ``act.module()``, ``act.module(precise=True)``
and the fast path, eagerly for every case and compiled for a few here (all under
``-m slow``).
"""

from __future__ import annotations

import math

import pytest
import torch
from catalog_cases import CASES, case_id, get

import actlab
from actlab.bench.hand import hand_formula

INF, NAN = math.inf, math.nan

# f(-inf), f(inf), f'(-inf), f'(inf) of the activations without a native op (by hand)
LIMITS = {
    "identity": lambda: (-INF, INF, 1.0, 1.0),
    "arctan": lambda: (-math.pi / 2, math.pi / 2, 0.0, 0.0),
    "isru": lambda alpha: (-1 / math.sqrt(alpha), 1 / math.sqrt(alpha), 0.0, 0.0),
    "squared_relu": lambda: (0.0, INF, 0.0, INF),
    "isrlu": lambda alpha: (-1 / math.sqrt(alpha), INF, 0.0, 1.0),
    "elish": lambda: (0.0, INF, 0.0, 1.0),
    "quick_gelu": lambda: (0.0, INF, 0.0, 1.0),
    "serf": lambda: (0.0, INF, 0.0, 1.0),
    "tanhexp": lambda: (0.0, INF, 0.0, 1.0),
    "lisht": lambda: (INF, INF, -1.0, 1.0),
    "smelu": lambda beta: (0.0, INF, 0.0, 1.0),
    "bent_identity": lambda: (-INF, INF, 0.5, 1.5),
    "gaussian": lambda: (0.0, 0.0, 0.0, 0.0),
    "sine": lambda w0: (NAN, NAN, NAN, NAN),
    "snake": lambda alpha: (-INF, INF, NAN, NAN),
    # xIELU: alpha_n = beta + softplus(a_n) > beta, so f(-inf) = -alpha_n - (alpha_n - beta) x
    "xielu": lambda a_p, a_n, beta, eps: (
        INF, INF, beta - (beta + math.log1p(math.exp(a_n))), INF),
    "star_relu": lambda s, b: (b, math.copysign(INF, s), 0.0, math.copysign(INF, s)),
    # PAU: P/Q ~ a5 x^5 / (|b4| x^4) at both ends
    "pau": lambda a0, a1, a2, a3, a4, a5, b1, b2, b3, b4: (
        -math.copysign(INF, a5), math.copysign(INF, a5), a5 / abs(b4), a5 / abs(b4)),
    "dyt": lambda alpha, gamma, beta: (
        beta - gamma * math.copysign(1.0, alpha), beta + gamma * math.copysign(1.0, alpha),
        0.0, 0.0),
}
# the gate g of each gated activation without a native op: g(-inf), g(inf), g'(-inf), g'(inf)
GATES = {
    "reglu": (0.0, INF, 0.0, 1.0),
    "geglu": (0.0, INF, 0.0, 1.0),
    "swiglu": (0.0, INF, 0.0, 1.0),
    "bilinear": (-INF, INF, 1.0, 1.0),
}
GATE_FN = {
    "reglu": (torch.relu, lambda b: (b > 0).double()),
    "geglu": (actlab.get("gelu"), actlab.get("gelu").derivative),
    "swiglu": (actlab.get("silu"), actlab.get("silu").derivative),
    "bilinear": (lambda b: b, torch.ones_like),
}

ELEMENTWISE = [pytest.param(c, id=case_id(c)) for c in CASES if not get(c).gated]
GATED = [pytest.param(c, id=case_id(c)) for c in CASES if get(c).gated]
DTYPES = [torch.float32, torch.float64]


def _grad(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xr = x.clone().requires_grad_(True)
    y = fn(xr)
    (g,) = torch.autograd.grad(y, xr, torch.ones_like(y))
    return y.detach(), g


def _paths(act: actlab.Activation, dtype: torch.dtype):
    """name -> (f, f') of every path, as functions of a tensor."""

    def module_path(m):
        m = m.to(dtype)
        with torch.no_grad():  # learned parameters start in float32: set their exact values
            for name, p in m.named_parameters():
                p.fill_(act.params[name])
        return lambda x: _grad(m, x)

    return {
        "act": lambda x: (act(x), act.derivative(x)),
        "module": module_path(act.module(channels=3)),  # per-channel ones: 3 channels
        "precise": module_path(act.module(channels=3, precise=True)),
        "fast": lambda x: _grad(act.fast, x),
        "fast_precise": lambda x: _grad(lambda t: act.fast(t, precise=True), x),
    }


def _expected_elementwise(act: actlab.Activation, x: torch.Tensor):
    if act.native_fn is not None:
        return _grad(act.native_fn, x)
    if act.spec.native is not None:  # the formula, written as PyTorch writes the native op
        return _grad(hand_formula(act), x)
    lo_f, hi_f, lo_d, hi_d = LIMITS[act.name](**act.params)
    f = torch.tensor([NAN, hi_f, lo_f], dtype=x.dtype)
    d = torch.tensor([NAN, hi_d, lo_d], dtype=x.dtype)
    return f, d


def _matches(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    finite = torch.isfinite(want)
    same = (got == want) | (got.isnan() & want.isnan())
    return same | (finite & ((got - want).abs() <= 1e-6 * want.abs()))


def _assert_same(got: torch.Tensor, want: torch.Tensor, what: str,
                 alt: torch.Tensor | None = None) -> None:
    """NaN where NaN, the same infinities, and finite values equal to rounding (finite
    partials of gated activations, e.g. sigmoid(b) at a = inf, come from other formulas);
    ``alt``: another accepted value per element (PyTorch's op in float64)."""
    ok = _matches(got, want)
    if alt is not None:
        ok |= _matches(got, alt)
    either = "" if alt is None else f" (or {alt.tolist()})"
    assert ok.all(), f"{what}: got {got.tolist()}, want {want.tolist()}{either}"


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTLAB_NO_COMPILE", "1")


def _check_elementwise(case, dtype, paths=None) -> None:
    act = get(case)
    x = torch.tensor([NAN, INF, -INF], dtype=dtype)
    want_f, want_d = _expected_elementwise(act, x)
    # PyTorch's float32 op can disagree with its float64 op: on Linux, contiguous float32
    # GELU runs oneDNN's kernel, whose AVX-512 form gives gelu(+inf) = NaN (pytorch#185770)
    # where ATen gives +inf. Paths that run the op give the op's value, the precise paths
    # the limit: both are PyTorch's values.
    alt_f, alt_d = want_f, want_d
    if act.native_fn is not None and dtype != torch.float64:
        alt_f, alt_d = (t.to(dtype) for t in _expected_elementwise(act, x.double()))
    for name, path in _paths(act, dtype).items():
        if paths is not None and name not in paths:
            continue
        f, d = path(x)
        where = f"{act.name} {name} {{}} {dtype} at [nan, inf, -inf]"
        _assert_same(f, want_f, where.format("f"), alt_f)
        _assert_same(d, want_d, where.format("f'"), alt_d)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", ELEMENTWISE)
def test_elementwise_nonfinite(case, dtype, eager):
    _check_elementwise(case, dtype)


def _gated_points(dtype: torch.dtype) -> torch.Tensor:
    pairs = [(2.0, INF), (-2.0, INF), (2.0, -INF), (-2.0, -INF), (INF, 1.5), (-INF, 1.5),
             (INF, -1.5), (NAN, 1.0), (1.0, NAN), (0.5, 0.0)]
    return torch.tensor(pairs, dtype=dtype)  # rows [a, b]


def _expected_gated(act: actlab.Activation, x: torch.Tensor):
    if act.spec.native is not None:
        y, g = _grad(act.native_fn, x)
        return y, g
    a, b = x[:, 0].double(), x[:, 1].double()
    lo_g, hi_g, lo_d, hi_d = GATES[act.name]
    fn, der = GATE_FN[act.name]
    finite = torch.isfinite(b)
    bf = torch.where(finite, b, 0.0)
    g = torch.where(finite, fn(bf), torch.where(b > 0, hi_g, lo_g))
    gd = torch.where(finite, der(bf), torch.where(b > 0, hi_d, lo_d))
    g = torch.where(b.isnan(), NAN, g)
    gd = torch.where(b.isnan(), NAN, gd)
    f = (a * g).to(x.dtype)
    return f.unsqueeze(-1), torch.stack([g, a * gd], dim=-1).to(x.dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", GATED)
def test_gated_nonfinite(case, dtype, eager):
    act = get(case)
    x = _gated_points(dtype)
    want_f, want_d = _expected_gated(act, x)
    for name, path in _paths(act, dtype).items():
        f, d = path(x)
        _assert_same(f, want_f, f"{act.name} {name} f {dtype} at {x.tolist()}")
        _assert_same(d, want_d, f"{act.name} {name} f' {dtype} at {x.tolist()}")


COMPILED = ["mish", "gelu_tanh", "elu", "quick_gelu", "softplus", "relu"]


@pytest.mark.parametrize("name", COMPILED)
def test_compiled_fast_path_nonfinite(name):
    _check_elementwise((name, {}), torch.float32, paths={"fast", "fast_precise"})


@pytest.mark.slow
@pytest.mark.parametrize("case", ELEMENTWISE)
def test_compiled_fast_path_nonfinite_all(case):
    _check_elementwise(case, torch.float32, paths={"fast", "fast_precise"})


def test_the_issue_examples():
    """Issue 11: mish's fast path gave [nan, 1, nan] where the module gave [nan, nan, nan];
    relu's derivative at NaN was 0 where PyTorch gives 1. Now all agree with PyTorch."""
    x = torch.tensor([NAN, INF, -INF])
    mish = actlab.get("mish")
    want = _grad(torch.nn.functional.mish, x)[1]
    for fn in (mish.module(), mish.module(precise=True), mish.fast):
        _assert_same(_grad(fn, x)[1], want, "mish")
    relu = actlab.get("relu")
    assert relu.derivative(torch.tensor([NAN])).item() == 1.0
    assert _grad(relu.module(), torch.tensor([NAN]))[1].item() == 1.0
