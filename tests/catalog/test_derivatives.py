"""The analytic derivative of every activation: against autograd, finite differences,
an mpmath high-precision reference, and ``gradcheck`` of ``module()``.

Every test runs for every built-in activation with its default hyper-parameters and for
the non-default ones in ``catalog_cases.NON_DEFAULT``, at the points the issue names
(0, +-1e-8, +-1, +-3, +-30, +-88, +-1e4) plus seeded random points.
"""

from __future__ import annotations

import mpmath as mp
import pytest
import torch
from catalog_cases import EXTREMES, POINTS, cases, gated_halves, gated_input, get, near_kink, points
from mp_reference import GATES, REF
from torch.func import functional_call

EPS64 = torch.finfo(torch.float64).eps


def _autograd(act, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """float64 autograd of ``spec.forward`` (the pair of partials when gated)."""
    if act.gated:
        a, b = (t.clone().requires_grad_(True) for t in gated_halves(x))
        y = act.spec.forward(a, b, **act.params)
        return torch.autograd.grad(y.sum(), (a, b))
    xr = x.clone().requires_grad_(True)
    y = act.spec.forward(xr, **act.params)
    (g,) = torch.autograd.grad(y.sum(), xr)
    return g


def _analytic(act, x: torch.Tensor):
    if act.gated:
        d = act.derivative(gated_input(x))
        return d[:, 0], d[:, 1]
    return act.derivative(x)


# ------------------------------------------------------------------------------ autograd
@pytest.mark.parametrize("case", cases())
def test_derivative_equals_autograd(case):
    act = get(case)
    x = points()
    # exactly at a kink the derivative is a convention: tested in test_derivative_at_kinks
    gate = gated_halves(x)[1] if act.gated else x
    keep = ~near_kink(act, gate, 1e-12)
    got, want = _analytic(act, x), _autograd(act, x)
    pairs = zip(got, want, strict=True) if act.gated else [(got, want)]
    for g, w in pairs:
        # autograd of the forward is itself inexact in some tails (sigmoid's s (1 - s),
        # tanh's 1 - t^2), so its absolute error ~ eps * |terms|: atol 1e-12
        torch.testing.assert_close(g[keep], w[keep], rtol=1e-7, atol=1e-12)
        # no NaN from an unused torch.where branch, even at the kinks
        assert torch.isfinite(g).all() and torch.isfinite(w).all()


KINKED = [c for c in cases() if get(c.values[0]).spec.kinks(**get(c.values[0]).params)]


@pytest.mark.parametrize("case", KINKED)
def test_derivative_at_kinks_is_a_one_sided_value(case):
    """Where f' jumps, f'(k) lies between the left and the right derivative."""
    act = get(case)
    for k in act.spec.kinks(**act.params):
        step = 1e-7 * max(1.0, abs(k))
        x = torch.tensor([k - step, k, k + step], dtype=torch.float64)
        if act.gated:  # kinks are in the gate b; the value a is 1.3
            xx = torch.stack([torch.full_like(x, 1.3), x], dim=-1)
            d = act.derivative(xx)[:, 1]
        else:
            d = act.derivative(x)
        lo, hi = min(d[0], d[2]).item(), max(d[0], d[2]).item()
        assert lo - 1e-6 <= d[1].item() <= hi + 1e-6, (k, d.tolist())


# ------------------------------------------------------------------------------ finite differences
def _central(f, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    xp, xm = x + h, x - h
    return (f(xp) - f(xm)) / (xp - xm)


@pytest.mark.parametrize("case", cases())
def test_derivative_matches_central_differences(case):
    act = get(case)
    x = points()
    h = 1e-6 * x.abs().clamp(min=1.0).sqrt()
    if act.gated:
        a, b = gated_halves(x)
        hb = 1e-6 * b.abs().clamp(min=1.0).sqrt()
        keep = ~near_kink(act, b, 10 * hb)

        def f(aa, bb):
            return act(torch.stack([aa, bb], dim=-1))[:, 0]

        fd_a = _central(lambda t: f(t, b), a, h)
        fd_b = _central(lambda t: f(a, t), b, hb)
        da, db = _analytic(act, x)
        torch.testing.assert_close(da[keep], fd_a[keep], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(db[keep], fd_b[keep], rtol=1e-5, atol=1e-6)
        return
    keep = ~near_kink(act, x, 10 * h)
    fd = _central(act, x, h)
    d = act.derivative(x)
    assert keep.sum() >= len(POINTS) - 6
    torch.testing.assert_close(d[keep], fd[keep], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ mpmath reference
MP_POINTS = [*EXTREMES, 0.09, -0.11, 0.29, -0.31, 0.7, -2.2, 5.5, -7.25, 12.0, -17.5, 41.0]


def _dps(*xs: float) -> int:
    # tails: 1 + tanh(-v) or tanh'(v) from tanh(v) = 1 - 2e^-2v need ~v digits to be exact
    return 40 if max(abs(v) for v in xs) < 2 else 340


def _close(got: float, ref, allowance) -> bool:
    # atol: the reference's own error (mpmath's numerical diff is good to ~10^-dps)
    atol = mp.mpf(10) ** (-mp.mp.dps) if mp.mp.dps < 300 else mp.mpf(1e-290)
    return abs(mp.mpf(got) - ref) <= 1e-13 * abs(ref) + 8 * EPS64 * allowance + atol


@pytest.mark.parametrize("case", cases(gated=False))
def test_float64_matches_mpmath_reference(case):
    """f and f' in float64 agree with 40-340 digit mpmath to ~1e-13 (relative), tails included.

    The allowance ``8 eps |x f'|`` (``8 eps |x f''|`` for f') is the change of f from
    rounding x itself: only an ill-conditioned point may deviate more.
    """
    act = get(case)
    if act.name not in REF:
        pytest.skip(f"no mpmath reference for {act.name}")
    params = {k: mp.mpf(v) for k, v in act.params.items()}

    def f(t):
        return REF[act.name](t, **params)

    x = torch.tensor(MP_POINTS, dtype=torch.float64)
    kink = near_kink(act, x, 1e-6)
    ys, ds = act(x).tolist(), act.derivative(x).tolist()
    bad = []
    for xi, yi, di, k in zip(MP_POINTS, ys, ds, kink.tolist(), strict=True):
        with mp.workdps(_dps(xi)):
            X = mp.mpf(xi)
            if k:  # f' is not defined here; f still is (from the side x lies on)
                if act.spec.continuous and not _close(yi, f(X), 0):
                    bad.append(("f", xi, yi, float(f(X))))
                continue
            r, r1, r2 = f(X), mp.diff(f, X), mp.diff(f, X, 2)
            if not _close(yi, r, abs(X * r1)):
                bad.append(("f", xi, yi, float(r)))
            if not _close(di, r1, abs(X * r2)):
                bad.append(("f'", xi, di, float(r1)))
    assert not bad, f"{act.name}: (what, x, actlab, reference): {bad}"


@pytest.mark.parametrize("case", cases(gated=True))
def test_gated_float64_matches_mpmath_reference(case):
    """f(a, b) = a g(b): df/da = g(b), df/db = a g'(b), against mpmath's g, g', g''."""
    act = get(case)
    g = GATES[act.name]
    x = torch.tensor(MP_POINTS, dtype=torch.float64)
    a, b = gated_halves(x, shift=5)
    xx = torch.stack([a, b], dim=-1)
    ys, ds = act(xx)[:, 0].tolist(), act.derivative(xx).tolist()
    kink = near_kink(act, b, 1e-6).tolist()
    bad = []
    for ai, bi, yi, (da, db), k in zip(a.tolist(), b.tolist(), ys, ds, kink, strict=True):
        with mp.workdps(_dps(ai, bi)):
            A, B = mp.mpf(ai), mp.mpf(bi)
            g0 = g(B)
            g1 = mp.mpf(0) if k else mp.diff(g, B)
            if not _close(yi, A * g0, abs(A * g0) + abs(A * B * g1)):
                bad.append(("f", ai, bi, yi, float(A * g0)))
            if k:
                continue
            g2 = mp.diff(g, B, 2)
            if not _close(da, g0, abs(B * g1)):
                bad.append(("df/da", ai, bi, da, float(g0)))
            if not _close(db, A * g1, abs(A * g1) + abs(A * B * g2)):
                bad.append(("df/db", ai, bi, db, float(A * g1)))
    assert not bad, f"{act.name}: {bad}"


# ------------------------------------------------------------------------------ gradcheck
GRADCHECK_X = [-30.0, -7.3, -3.6, -2.2, -1.1, -0.45, -0.02, 0.3, 0.8, 1.7, 2.9, 4.4, 8.6, 30.0]


@pytest.mark.parametrize("case", cases())
def test_module_gradcheck_float64(case):
    """``torch.autograd.gradcheck`` of ``module()`` wrt the input and every learnable parameter."""
    act = get(case)
    act = act.with_params() if not act.spec.learnable else actlab_learn_all(act)
    x = torch.tensor(GRADCHECK_X, dtype=torch.float64)
    gate = x.roll(3) if act.gated else x
    keep = ~near_kink(act, gate, 1e-3)
    x = torch.stack([x, gate], dim=-1)[keep] if act.gated else x[keep]  # gated: (N, 2) = a, b
    x.requires_grad_(True)
    module = act.module().double()
    module(x.detach())  # a lazy module sizes its per-channel parameters from this input
    names = [n for n, _ in module.named_parameters()]
    assert sorted(names) == sorted(act.learn)
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in module.named_parameters())

    def fn(inp, *ps):
        return functional_call(module, dict(zip(names, ps, strict=True)), (inp,))

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4)


def actlab_learn_all(act):
    import actlab

    return actlab.get(act, learn=list(act.spec.learnable))
