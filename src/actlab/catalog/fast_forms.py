"""Cheaper float32 formulations of built-ins, used only by the compiled fast path.

``FAST_FORMS[name] = (forward, derivative)``, with the spec's signatures. The compiled
fast path uses them for float32 (and half precision, computed in float32); float64
keeps the catalog's own forms.

Why: on CPU an element-wise kernel is memory-bound only while it spends less than about
a nanosecond per element on arithmetic, and inductor maps ``tanh``, ``erfc``,
``log1p``, ``atan`` and ``hypot`` to SLEEF routines that cost several times that. Each
form here uses at most one or two ``exp`` s, one division, short polynomials and
``torch.where`` blends, and is as stable as the catalog's form:

* ``expm1`` near zero by its Taylor polynomial (inductor computes ``expm1`` as
  ``exp(x) - 1``, which cancels below |x| = 1/16);
* ``tanh(|x|) = -m / (2 + m)`` with ``m = expm1(-2|x|)``, ``sech^2 = 4E / (1 + E)^2``
  with ``E = exp(-2|x|)``: no overflow, no cancellation;
* ``sigmoid`` and ``sigmoid'`` from one ``E = exp(-|x|)``: ``r = 1/(1+E)``,
  ``sigmoid(x) = r`` or ``E r``, ``sigmoid'(x) = E r^2``;
* ``log1p(u)`` for ``0 <= u <= 1`` as ``2 atanh(s)``, ``s = u / (2 + u) <= 1/3``, by its
  series (softplus, logsigmoid, mish's derivative);
* ``erfc`` of a non-negative argument by the Chebyshev-fitted formula of Numerical
  Recipes (relative error below 1.2e-7), for GELU's lower tail;
* ``atan`` by the Cephes single-precision range reduction and polynomial;
* PAU's two forms (direct for |x| <= 1, numerator and denominator divided by a power of x
  beyond) as one polynomial pair with per-element coefficients: two divisions instead of
  four, and one evaluation;
* the overflow guards of isru, isrlu and bent_identity select the limit on the output
  (one compare per side) rather than clamping x and guarding the square: around a sqrt
  and a division, every extra operation shows; elish's sigmoid and ``expm1`` share one
  ``exp``; snake keeps f(+-inf) = +-inf by a compare on |x| and a select on the output
  (inductor vectorises both; its clamp and ``isinf`` cost more than the ``sin``).

``tests/bench`` checks every form against float64 references with the catalog's
tolerances, and ``tests/catalog/test_nonfinite.py`` their values at NaN and +-inf (the
catalog's rule: a native op's values where PyTorch has one, else NaN and the limits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from actlab.catalog.builtins import PAU_A, PAU_B, _sign, _snake_d
from actlab.catalog.builtins import _horner as _poly  # lowest degree first, any coefficients

SQRT_2 = math.sqrt(2.0)
INV_SQRT_2 = 1.0 / SQRT_2
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
GELU_TANH_K = math.sqrt(2.0 / math.pi)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

# expm1(x) = x + x^2/2! + ... + x^5/5!  (|x| < 1/16: truncation below 2e-9 relative; above
# 1/16, e - 1 loses at most 2e-6 relative to the rounding of e)
_EXPM1 = [1.0 / math.factorial(k) for k in range(5, 0, -1)]
_EXPM1_SWITCH = 1.0 / 16.0
# x - tanh(x) = sum c_k x^k, k = 3, 5, ..., 21 (|x| < 0.6: truncation below 1e-9 relative)
_TANHSHRINK = [
    0.3333333333333333, -0.13333333333333333, 0.05396825396825397, -0.021869488536155203,
    0.008863235529902197, -0.003592128036572481, 0.0014558343870513183,
    -0.000590027440945586, 0.00023912911424355248, -9.691537956929451e-05,
]
# Numerical Recipes erfcc: erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0
_ERFC = [
    0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807,
    -0.18628806, 0.09678418, 0.37409196, 1.00002368, -1.26551223,
]


_BIG = 1e30


def _lower(x: Tensor) -> Tensor:
    """x with -inf made finite: ``_lower(x) * g(x)`` is 0 (not NaN) where g(-inf) = 0."""
    return x.clamp(min=-_BIG)


def _finite(x: Tensor) -> Tensor:
    """x with +-inf made finite: ``_finite(x) * h(x)`` is 0 where h(+-inf) = 0."""
    return x.clamp(-_BIG, _BIG)


def _horner(x: Tensor, coeffs: list[float]) -> Tensor:
    """c[0] x^(n-1) + ... + c[n-1] (highest degree first)."""
    acc = torch.full_like(x, coeffs[0])
    for c in coeffs[1:]:
        acc = acc * x + c
    return acc


def _expm1_parts(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(exp(x), expm1(x))``, both accurate; one exp. ``x`` at most ~88."""
    e = torch.exp(x)
    series = _horner(x, _EXPM1) * x
    return e, torch.where(x.abs() < _EXPM1_SWITCH, series, e - 1.0)


def _expm1(x: Tensor) -> Tensor:
    return _expm1_parts(x)[1]


def _tanh_parts(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(tanh(x), sech^2(x))``, accurate in both tails and near zero; one exp, one div."""
    e, m = _expm1_parts(-2.0 * x.abs())  # e = exp(-2|x|) in (0, 1], m = e - 1
    r = 1.0 / (1.0 + e)
    t = torch.copysign(-m * r, x)  # (1 - e) / (1 + e)
    return t, 4.0 * e * r * r


def _tanh(x: Tensor) -> Tensor:
    return _tanh_parts(x)[0]


def _sech2(x: Tensor) -> Tensor:
    return _tanh_parts(x)[1]


def _sigmoid_parts(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(sigmoid(x), sigmoid(-x), sigmoid'(x))``; one exp, one division."""
    e = torch.exp(-x.abs())
    r = 1.0 / (1.0 + e)
    er = e * r
    pos = x >= 0
    return torch.where(pos, r, er), torch.where(pos, er, r), er * r


def _sigmoid(x: Tensor) -> Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


def _sig_prime(x: Tensor) -> Tensor:
    return _sigmoid_parts(x)[2]


def _log1p_unit(u: Tensor) -> Tensor:
    """log(1 + u) for 0 <= u <= 1: 2 atanh(s), s = u / (2 + u) <= 1/3, by its series."""
    s = u / (2.0 + u)
    s2 = s * s
    # 2 (s + s^3/3 + ... + s^17/17): the next term is below 1e-9 relative
    poly = _horner(s2, [2.0 / k for k in range(17, 0, -2)])
    return s * poly


def _softplus_parts(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(softplus(z), sigmoid(z), exp(-|z|))``; one exp, two divisions."""
    e = torch.exp(-z.abs())
    sp = torch.relu(z) + _log1p_unit(e)
    r = 1.0 / (1.0 + e)
    return sp, torch.where(z >= 0, r, e * r), e


def _Phi_parts(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(Phi(x), phi(x))``, the normal CDF (accurate in the lower tail) and density."""
    z = x.abs() * INV_SQRT_2
    t = 1.0 / (1.0 + 0.5 * z)
    z2 = z * z
    half_erfc = 0.5 * t * torch.exp(_horner(t, _ERFC) - z2)  # Phi(-|x|)
    Phi = torch.where(x < 0, half_erfc, 1.0 - half_erfc)
    return Phi, torch.exp(-z2) * INV_SQRT_2PI


def _erf_pos(s: Tensor) -> Tensor:
    """erf(s) for s >= 0, relatively accurate near 0 (Taylor below 0.5)."""
    s2 = s * s
    # erf(s) = 2/sqrt(pi) sum (-1)^k s^(2k+1) / (k! (2k+1)), k = 0..7
    c = [(-1) ** k / (math.factorial(k) * (2 * k + 1)) for k in range(7, -1, -1)]
    series = TWO_OVER_SQRT_PI * s * _horner(s2, c)
    return torch.where(s < 0.5, series, torch.erf(s))


# ----------------------------------------------------------------------------- forms
def _tanh_d(x: Tensor) -> Tensor:
    return _sech2(x)


def _logsigmoid(x: Tensor) -> Tensor:
    return -_softplus_parts(-x)[0]


def _logsigmoid_d(x: Tensor) -> Tensor:
    return _sigmoid_parts(x)[1]


def _atan(x: Tensor) -> Tensor:
    """Cephes ``atanf``: reduce |x| to [0, tan(pi/8)], then a degree-9 odd polynomial."""
    a = x.abs()
    big = a > 2.414213562373095  # tan(3 pi / 8)
    mid = a > 0.4142135623730950  # tan(pi / 8)
    y0 = torch.where(big, math.pi / 2, torch.where(mid, math.pi / 4, torch.zeros_like(a)))
    num = torch.where(big, -1.0, torch.where(mid, a - 1.0, a))
    den = torch.where(big, a, torch.where(mid, a + 1.0, 1.0))
    z = num / den
    z2 = z * z
    poly = _horner(z2, [8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1])
    return torch.copysign(y0 + (poly * z2 * z + z), x)


def _isru_core(x: Tensor, alpha: float) -> Tensor:
    """x / sqrt(1 + alpha x^2) where sqrt(alpha) |x| <= 1e18 (no overflow of the square)."""
    u = math.sqrt(alpha) * x
    return x / torch.sqrt(1.0 + u * u)


def _isru_far(alpha: float) -> tuple[float, float]:
    """``(limit, big)``: beyond ``|x| = big`` (sqrt(alpha) |x| = 1e18, and at +-inf) isru
    is its limit ``+-limit = +-1/sqrt(alpha)`` in float32. Selecting it on the output
    (one compare per side) is cheaper than clamping x and guarding the square: isrlu's
    old form took 2.4 clones against the hand formula's 1.06 on an AVX-512 Xeon."""
    r = 1.0 / math.sqrt(alpha)
    return r, 1e18 * r


def _isru(x: Tensor, alpha: float) -> Tensor:
    c, big = _isru_far(alpha)
    return torch.where(x > big, c, torch.where(x < -big, -c, _isru_core(x, alpha)))


def _isru_d(x: Tensor, alpha: float) -> Tensor:
    u = math.sqrt(alpha) * x
    r = 1.0 / torch.sqrt(1.0 + u * u)  # 0 where u^2 overflows (and at +-inf): the limit
    return r * r * r


def _isrlu(x: Tensor, alpha: float) -> Tensor:
    c, big = _isru_far(alpha)
    return torch.where(x >= 0, x, torch.where(x < -big, -c, _isru_core(x, alpha)))


def _isrlu_d(x: Tensor, alpha: float) -> Tensor:
    return torch.where(x >= 0, 1.0, _isru_d(x, alpha))


def _elu(x: Tensor, alpha: float) -> Tensor:
    return torch.where(x > 0, x, alpha * _expm1(x.clamp(max=0.0)))


def _elu_exp(x: Tensor, alpha: float) -> Tensor:
    """elu with ``exp(x) - 1`` (inductor's ``expm1``, the hand formula's): one exp and no
    series; absolute error below ``alpha`` x 6e-8 near 0 (see ``APPROXIMATE_FORMS``)."""
    return torch.where(x > 0, x, alpha * (torch.exp(x) - 1.0))


def _elu_d(x: Tensor, alpha: float) -> Tensor:
    # F.elu's backward tests x <= 0: NaN takes the other branch (1)
    return torch.where(x <= 0, alpha * torch.exp(x.clamp(max=0.0)), 1.0)


def _celu(x: Tensor, alpha: float) -> Tensor:
    return torch.where(x > 0, x, alpha * _expm1(x.clamp(max=0.0) * (1.0 / alpha)))


def _celu_d(x: Tensor, alpha: float) -> Tensor:
    return torch.where(x <= 0, torch.exp(x.clamp(max=0.0) * (1.0 / alpha)), 1.0)


def _elish_parts(x: Tensor) -> tuple[Tensor, ...]:
    """``(sigmoid, sigmoid', exp(x-), expm1(x-))`` with x- = min(x, 0), from one exp:
    exp(-|x|) is exp(x) wherever x < 0, the only place the expm1 branch is used."""
    e = torch.exp(-x.abs())
    r = 1.0 / (1.0 + e)
    er = e * r
    xn = x.clamp(max=0.0)
    m = torch.where(xn > -_EXPM1_SWITCH, _horner(xn, _EXPM1) * xn, e - 1.0)
    return torch.where(x >= 0, r, er), er * r, e, m


def _elish(x: Tensor) -> Tensor:
    s, _, _, m = _elish_parts(x)
    return torch.where(x >= 0, x, m) * s


def _elish_d(x: Tensor) -> Tensor:
    s, sp, e, m = _elish_parts(x)
    return torch.where(x >= 0, s + _finite(x) * sp, e * s + m * sp)


def _gelu(x: Tensor) -> Tensor:
    return x * _Phi_parts(x)[0]


def _gelu_d(x: Tensor) -> Tensor:
    Phi, phi = _Phi_parts(x)
    return Phi + x * phi


def _gelu_tanh_u(x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.clamp(-100.0, 100.0)  # u saturates the sigmoid long before; keeps du finite
    x2 = x * x
    u = (2.0 * GELU_TANH_K) * x * (1.0 + 0.044715 * x2)
    du = (2.0 * GELU_TANH_K) * (1.0 + (3.0 * 0.044715) * x2)
    return u, du


def _gelu_tanh(x: Tensor) -> Tensor:
    return x * _sigmoid(_gelu_tanh_u(x)[0])


def _gelu_tanh_d(x: Tensor) -> Tensor:
    u, du = _gelu_tanh_u(x)
    s, _, sp = _sigmoid_parts(u)
    return s + x * sp * du


def _quick_gelu(x: Tensor) -> Tensor:
    return _lower(x) * _sigmoid(1.702 * x)


def _quick_gelu_d(x: Tensor) -> Tensor:
    s, _, sp = _sigmoid_parts(1.702 * x)
    return s + (1.702 * _finite(x)) * sp


def _silu(x: Tensor, beta: float) -> Tensor:
    return x * _sigmoid(beta * x)


def _silu_d(x: Tensor, beta: float) -> Tensor:
    s, _, sp = _sigmoid_parts(beta * x)
    return s + beta * x * sp


def _mish_w(x: Tensor) -> tuple[Tensor, Tensor]:
    """``n = e^x`` (x clamped at 20) and ``w = n (n + 2)``: tanh(softplus(x)) = w / (w + 2)."""
    n = torch.exp(x.clamp(max=20.0))
    return n, n * (n + 2.0)


def _mish(x: Tensor) -> Tensor:
    _, w = _mish_w(x)
    return x * (w / (w + 2.0))


def _mish_d(x: Tensor) -> Tensor:
    # tanh(sp) + x sech^2(sp) sigmoid(x) = w/(w+2) + 4 x n (n+1) / (w+2)^2
    n, w = _mish_w(x)
    r = 1.0 / (w + 2.0)
    # 1 + (x - x): NaN at +inf, as F.mish's backward gives (inf * 0)
    return torch.where(x > 20.0, 1.0 + (x - x), w * r + x * (4.0 * n * (n + 1.0) * r * r))


def _serf(x: Tensor) -> Tensor:
    sp = _softplus_parts(x)[0]
    return _lower(x) * _erf_pos(sp)


def _serf_d(x: Tensor) -> Tensor:
    sp, s, _ = _softplus_parts(x)
    return _erf_pos(sp) + _finite(x) * TWO_OVER_SQRT_PI * torch.exp(-sp * sp) * s


def _tanhexp_e(x: Tensor) -> Tensor:
    # tanh(e^x) == 1 in float32 once e^x > 9, i.e. x > 2.2: clamping keeps e^x finite
    return torch.exp(x.clamp(max=20.0))


def _tanhexp(x: Tensor) -> Tensor:
    # tanh(e) == 1 for e > 9: clamping at 40 keeps exp(-2e) out of the (slow) subnormals
    return _lower(x) * _tanh(_tanhexp_e(x).clamp(max=40.0))


def _tanhexp_d(x: Tensor) -> Tensor:
    e = _tanhexp_e(x)
    t, s2 = _tanh_parts(e.clamp(max=40.0))
    return t + _finite(x) * torch.where(e > 40.0, 0.0, e * s2)  # sech^2(e) e < 1e-33 there


def _lisht(x: Tensor) -> Tensor:
    return x * _tanh(x)


def _lisht_d(x: Tensor) -> Tensor:
    t, s2 = _tanh_parts(x)
    return t + _finite(x) * s2


def _softplus(x: Tensor, beta: float, threshold: float) -> Tensor:
    z = beta * x
    return torch.where(z > threshold, x, _softplus_parts(z)[0] * (1.0 / beta))


def _softplus_d(x: Tensor, beta: float, threshold: float) -> Tensor:
    z = beta * x
    return torch.where(z > threshold, 1.0, _sigmoid(z))


def _tanhshrink(x: Tensor) -> Tensor:
    x2 = x * x
    series = _horner(x2, _TANHSHRINK[::-1]) * x2 * x
    return torch.where(x.abs() < 0.6, series, x - _tanh(x))


def _tanhshrink_d(x: Tensor) -> Tensor:
    t = _tanh(x)
    return t * t


_BENT_BIG = 1e18  # beyond, sqrt(x^2 + 1) is |x| in float32 (and x^2 would overflow)


def _bent(x: Tensor) -> Tensor:
    # x (1 + x / (2 (h + 1))), h = sqrt(x^2 + 1): no cancellation near 0; 1.5 x or 0.5 x
    # beyond 1e18 (+-inf too), selected on the output (cheaper than clamping x)
    far = torch.where(x > 0, 1.5 * x, 0.5 * x)
    near = x * (1.0 + 0.5 * (x / (torch.sqrt(x * x + 1.0) + 1.0)))
    return torch.where(x.abs() > _BENT_BIG, far, near)


def _bent_plain(x: Tensor) -> Tensor:
    """bent_identity as the formula reads, ``(sqrt(x^2 + 1) - 1) / 2 + x``, with the same
    limits beyond 1e18 (see ``APPROXIMATE_FORMS``)."""
    far = torch.where(x > 0, 1.5 * x, 0.5 * x)
    return torch.where(x.abs() > _BENT_BIG, far, (torch.sqrt(x * x + 1.0) - 1.0) * 0.5 + x)


def _snake(x: Tensor, alpha: Any) -> Tensor:
    """The catalog's snake (x clamped to +-1e30 before sin, so that f(+-inf) = +-inf) with
    the guard on the output, as a compare inductor vectorises: its clamp cost 1.65x the
    unguarded formula's time on a Xeon, ``isinf`` (a scalar loop) 1.52x, this 1.20x.
    Beyond 1e30 the sin term (at most 1/alpha) is below x's rounding, as in the catalog."""
    return x + torch.where(x.abs() < _BIG, torch.sin(alpha * x).square() / alpha, 0.0)


def _bent_d(x: Tensor) -> Tensor:
    far = torch.where(x > 0, 1.5, 0.5)
    return torch.where(x.abs() > _BENT_BIG, far, 0.5 * x / torch.sqrt(x * x + 1.0) + 1.0)


def _glu_d(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    s, _, sp = _sigmoid_parts(b)
    return s, a * sp


def _geglu(a: Tensor, b: Tensor) -> Tensor:
    return a * (_lower(b) * _Phi_parts(b)[0])


def _geglu_d(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    Phi, phi = _Phi_parts(b)
    return _lower(b) * Phi, a * (Phi + _finite(b) * phi)


def _gelu_erf_parts(b: Tensor) -> tuple[Tensor, Tensor]:
    """``(Phi(b), phi(b))`` with Phi from ``erf``, as PyTorch's GELU computes it (one
    vectorised erf: faster than :func:`_Phi_parts`, but 1 + erf cancels in the lower
    tail: all digits lost below b = -5.5 in float32, absolute error < 1e-6)."""
    Phi = 0.5 + 0.5 * torch.erf(b * INV_SQRT_2)
    return Phi, torch.exp(-0.5 * b * b) * INV_SQRT_2PI


def _geglu_erf(a: Tensor, b: Tensor) -> Tensor:
    return a * (_lower(b) * _gelu_erf_parts(b)[0])


def _geglu_erf_d(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    Phi, phi = _gelu_erf_parts(b)
    return _lower(b) * Phi, a * (Phi + _finite(b) * phi)


def _swiglu(a: Tensor, b: Tensor) -> Tensor:
    return a * (_lower(b) * _sigmoid(b))


def _swiglu_d(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    s, _, sp = _sigmoid_parts(b)
    return _lower(b) * s, a * (s + _finite(b) * sp)


def _softplus_p(v: float | Tensor) -> float | Tensor:
    """softplus of a parameter (a float, or a learned 0-d tensor)."""
    return F.softplus(v) if isinstance(v, Tensor) else math.log1p(math.exp(-abs(v))) + max(v, 0.0)


def _sigmoid_p(v: float | Tensor) -> float | Tensor:
    return torch.sigmoid(v) if isinstance(v, Tensor) else 0.5 * (1.0 + math.tanh(0.5 * v))


def _xielu_neg(x: Tensor, eps: float) -> Tensor:
    return _expm1(x.clamp(max=eps)) - x  # inductor's expm1 is exp - 1: cancels near 0


def _xielu(x: Tensor, a_p, a_n, beta, eps) -> Tensor:
    xp = x.clamp(min=0.0)
    alpha_n = beta + _softplus_p(a_n)
    # x <= 0: alpha_n expm1(min(x, eps)) + (beta - alpha_n) x (+inf at -inf, not inf - inf)
    neg = alpha_n * _expm1(x.clamp(max=eps)) + (beta - alpha_n) * x
    return torch.where(x > 0, beta * x + _softplus_p(a_p) * xp * xp, neg)


def _xielu_exp(x: Tensor, a_p, a_n, beta, eps) -> Tensor:
    """xielu with ``exp(x) - 1`` for its ``expm1`` (see ``APPROXIMATE_FORMS``); x^2 on
    the selected branch only (no clamp: the other branch's inf is not selected)."""
    alpha_n = beta + _softplus_p(a_n)
    neg = alpha_n * (torch.exp(x.clamp(max=eps)) - 1.0) + (beta - alpha_n) * x
    return torch.where(x > 0, (beta + _softplus_p(a_p) * x) * x, neg)


def _xielu_d(x: Tensor, a_p, a_n, beta, eps) -> Tensor:
    alpha_n = beta + _softplus_p(a_n)
    neg = torch.where(x > eps, -alpha_n, alpha_n * _expm1(x.clamp(max=eps)))  # NaN stays NaN
    return beta + torch.where(x > 0, 2.0 * _softplus_p(a_p) * x.clamp(min=0.0), neg)


def _xielu_p(x: Tensor, a_p, a_n, beta, eps) -> dict[str, Tensor]:
    pos = x > 0
    xp = x.clamp(min=0.0)
    return {
        "a_p": torch.where(pos, xp * xp * _sigmoid_p(a_p), 0.0),
        "a_n": torch.where(pos, 0.0, _xielu_neg(x, eps) * _sigmoid_p(a_n)),
    }


def _dyt(x: Tensor, alpha, gamma, beta) -> Tensor:
    return gamma * _tanh(alpha * x) + beta


def _dyt_d(x: Tensor, alpha, gamma, beta) -> Tensor:
    return gamma * alpha * _sech2(alpha * x)


def _dyt_p(x: Tensor, alpha, gamma, beta) -> dict[str, Tensor]:
    t, s2 = _tanh_parts(alpha * x)
    return {"alpha": gamma * x * s2, "gamma": t, "beta": torch.ones_like(x)}


# PAU (safe, degrees 5/4) in one evaluation. The catalog evaluates P(x)/Q(x) directly for
# |x| <= 1 and, against overflow, the form divided by x^4 elsewhere, both everywhere (then
# selects): four divisions and four polynomials. With z = x (|x| <= 1) or 1/x, w = |z|:
#   f = num(z) / E(w) * m,  num = sum c_k z^k,  E = sum e_k w^k,  m = 1 or x,
# where c_k = a_k, e = (1, |b1|, ..., |b4|) directly and, reversed (numerator and denominator
# times z^5), c_k = a_(5-k), e_k = e_(4-k): one polynomial pair with per-element coefficients,
# and two divisions (1/x, 1/E). Same rounding behaviour as the catalog's two forms.
def _pick(small: Tensor, direct: list, reversed_: list) -> list:
    return [torch.where(small, d, r) for d, r in zip(direct, reversed_, strict=True)]


def _pau_parts(x: Tensor, p: dict) -> tuple[Any, ...]:
    """``(small, z, w, m, num, E, r, a, e)``: the pieces of f = num r m, r = 1 / E, and
    the coefficients ``a`` and ``e = (1, |b1|, ..., |b4|)``."""
    a = [p[n] for n in PAU_A]
    e = [1.0, *(abs(p[n]) for n in PAU_B)]
    small = x.abs() <= 1.0
    z = torch.where(small, x, 1.0 / x)
    w = z.abs()
    num = _poly(_pick(small, a, a[::-1]), z)
    E = _poly(_pick(small, e, e[::-1]), w)
    m = torch.where(small, 1.0, x)
    return small, z, w, m, num, E, 1.0 / E, a, e


def _pau(x: Tensor, **p) -> Tensor:
    _, _, _, m, num, _, r, _, _ = _pau_parts(x, p)
    return num * r * m


def _pau_d(x: Tensor, **p) -> Tensor:
    # direct: f' = (num' - f sign(x) E') / E; reversed (t = 1/x): f' = (-t num' + u (E + w E'))
    # / E with u = num / E (= f t, finite at x = +-inf), num' and E' the derivatives in z, w
    small, z, w, _, num, E, r, a, e = _pau_parts(x, p)
    dnum = _poly(_pick(small, [k * a[k] for k in range(1, 6)],
                       [k * a[5 - k] for k in range(1, 6)]), z)
    dE = _poly(_pick(small, [k * e[k] for k in range(1, 5)],
                     [k * e[4 - k] for k in range(1, 5)]), w)
    u = num * r
    direct = dnum - u * torch.sign(x) * dE
    reverse = u * (E + w * dE) - z * dnum
    return torch.where(small, direct, reverse) * r


def _pau_p(x: Tensor, **p) -> dict[str, Tensor]:
    # df/da_k = x^k / Q: z^k r directly, z^(4-k) r reversed (x r for a5); df/d|b_k| =
    # -f |x|^k / Q: -f w^k r directly, -f w^(4-k) r reversed (the catalog's partials)
    small, z, w, m, num, _, r, _, _ = _pau_parts(x, p)
    zp, wp = [torch.ones_like(z), z], [torch.ones_like(w), w]
    for _ in range(3):
        zp.append(zp[-1] * z)
        wp.append(wp[-1] * w)
    zp.append(zp[-1] * z)  # z^5
    big = [*zp[4::-1], x]
    out = {n: torch.where(small, zp[k], big[k]) * r for k, n in enumerate(PAU_A)}
    f = num * r * m
    for k, n in enumerate(PAU_B, start=1):
        out[n] = -_sign(p[n]) * f * torch.where(small, wp[k], wp[4 - k]) * r
    return out


#: name -> (forward, derivative) or (forward, derivative, parameter partials), the spec's
#: signatures (the partials as the spec's ``param_derivative``)
FAST_FORMS: dict[str, tuple[Callable[..., Any], ...]] = {
    "tanh": (_tanh, _tanh_d),
    "sigmoid": (_sigmoid, _sig_prime),
    "logsigmoid": (_logsigmoid, _logsigmoid_d),
    "arctan": (_atan, lambda x: 1.0 / (1.0 + x * x)),
    "isru": (_isru, _isru_d),
    "isrlu": (_isrlu, _isrlu_d),
    "elu": (_elu, _elu_d),
    "selu": (
        lambda x: SELU_SCALE * _elu(x, SELU_ALPHA),
        lambda x: SELU_SCALE * _elu_d(x, SELU_ALPHA),
    ),
    "celu": (_celu, _celu_d),
    "elish": (_elish, _elish_d),
    "gelu": (_gelu, _gelu_d),
    "gelu_tanh": (_gelu_tanh, _gelu_tanh_d),
    "quick_gelu": (_quick_gelu, _quick_gelu_d),
    "silu": (_silu, _silu_d),
    "mish": (_mish, _mish_d),
    "serf": (_serf, _serf_d),
    "tanhexp": (_tanhexp, _tanhexp_d),
    "lisht": (_lisht, _lisht_d),
    "softplus": (_softplus, _softplus_d),
    "tanhshrink": (_tanhshrink, _tanhshrink_d),
    "bent_identity": (_bent, _bent_d),
    "snake": (_snake, _snake_d),
    "glu": (lambda a, b: a * _sigmoid(b), _glu_d),
    "geglu": (_geglu, _geglu_d),
    "swiglu": (_swiglu, _swiglu_d),
    "xielu": (_xielu, _xielu_d, _xielu_p),
    "dyt": (_dyt, _dyt_d, _dyt_p),
    "pau": (_pau, _pau_d, _pau_p),
}


#: float32 forms that are faster and less accurate than the catalog's tolerance in a tail,
#: as the native op of the same function is (``actlab.catalog.native.APPROXIMATE``): the
#: default fast path compiles them; ``precise=True`` keeps :data:`FAST_FORMS`.
#: geglu's gate as PyTorch's (erf) GELU: f and f' lose their digits below b = -5.5, where
#: the gate is < 2e-8. elu, selu, celu and xielu take ``expm1`` as ``exp(x) - 1`` (what
#: inductor compiles ``torch.expm1`` to, and the formula a user writes): all digits lost
#: for |x| below 6e-8, absolute error below 3.0e-8 (elu), 5.4e-8 (selu), 6.0e-8 (celu,
#: alpha = 2), 2.4e-8 (xielu) for |x| < 1e-2, relative error 6e-6 beyond (forward 1.11 to
#: 1.34x the hand formula's time with the series, 1.00 without). bent_identity computes
#: ``sqrt(x^2 + 1) - 1`` as it reads (cancels near 0: relative error 1.1e-4 around
#: |x| = 1e-3, absolute below 4.5e-8). Derivatives are the precise ones. Held by
#: ``tests/bench/test_fast.py``.
APPROXIMATE_FORMS: dict[str, tuple[Callable[..., Any], ...]] = {
    "geglu": (_geglu_erf, _geglu_erf_d),
    "elu": (_elu_exp, _elu_d),
    "selu": (
        lambda x: SELU_SCALE * _elu_exp(x, SELU_ALPHA),
        lambda x: SELU_SCALE * _elu_d(x, SELU_ALPHA),
    ),
    "celu": (lambda x, alpha: torch.where(x > 0, x, alpha * _elu_exp(x * (1.0 / alpha), 1.0)),
             _celu_d),
    "xielu": (_xielu_exp, _xielu_d, _xielu_p),
    "bent_identity": (_bent_plain, _bent_d),
}


# ----------------------------------------------------------------------------- ATen kernels
# Piecewise-linear activations whose native forward and backward are exact, single-pass,
# hand-vectorised ATen loops: the fast path calls them directly (inductor's generated loop
# is ~10% slower than ATen's on memory-bound copies like these). Each backward applies
# the spec's derivative (the same comparisons at the kinks), reading x and g once.
_A = torch.ops.aten
NATIVE_KERNELS: dict[str, tuple[Callable[..., Tensor], Callable[..., Tensor]]] = {
    "relu": (torch.relu, lambda x, g: _A.threshold_backward(g, x, 0.0)),
    "leaky_relu": (
        lambda x, alpha: F.leaky_relu(x, alpha),
        lambda x, g, alpha: _A.leaky_relu_backward(g, x, alpha, False),
    ),
    "prelu": (
        lambda x, alpha: F.leaky_relu(x, alpha),
        lambda x, g, alpha: _A.leaky_relu_backward(g, x, alpha, False),
    ),
    "rrelu": (
        lambda x, lower, upper: F.leaky_relu(x, 0.5 * (lower + upper)),
        lambda x, g, lower, upper: _A.leaky_relu_backward(g, x, 0.5 * (lower + upper), False),
    ),
    "relu6": (
        lambda x: F.hardtanh(x, 0.0, 6.0),
        lambda x, g: _A.hardtanh_backward(g, x, 0.0, 6.0),
    ),
    "hardtanh": (
        lambda x, min_val, max_val: F.hardtanh(x, min_val, max_val),
        lambda x, g, min_val, max_val: _A.hardtanh_backward(g, x, min_val, max_val),
    ),
    "hardsigmoid": (F.hardsigmoid, lambda x, g: _A.hardsigmoid_backward(g, x)),
    "hardswish": (F.hardswish, lambda x, g: _A.hardswish_backward(g, x)),
    "threshold": (
        lambda x, threshold, value: F.threshold(x, threshold, value),
        lambda x, g, threshold, value: _A.threshold_backward(g, x, threshold),
    ),
    "softshrink": (
        lambda x, lambd: F.softshrink(x, lambd),
        lambda x, g, lambd: _A.softshrink_backward(g, x, lambd),
    ),
    "hardshrink": (
        lambda x, lambd: F.hardshrink(x, lambd),
        lambda x, g, lambd: _A.hardshrink_backward(g, x, lambd),
    ),
}


#: Of those, the ones whose forward compiled by inductor gives ATen's values bit for bit and
#: runs faster (hardswish: 1.11 against ATen's 1.18 clones on a Xeon, 2^24 elements, one
#: thread): the fast path compiles their forward and keeps ATen's backward.
COMPILED_FORWARD = frozenset({"hardswish"})


# Native ops that are less accurate than the catalog's tolerance somewhere
# (actlab.catalog.native.APPROXIMATE) and at least as fast as the compiled forms: the
# default fast path runs them with PyTorch's own autograd, as the default module does
# (sigmoid's and tanh's backward read the saved output in one pass; float32 GELU's erf
# kernel beats the erfc form; ATen's SLEEF tanh ran in 0.73 of the exp form's time on a
# Xeon, 1.67 on the Xeon of an earlier session: the native op is the default, as fast as
# ``torch.nn``); params -> callable. ``precise=True`` compiles the forms above instead.
NATIVE_AUTOGRAD: dict[str, Callable[[dict[str, float]], Callable[[Tensor], Tensor]]] = {
    "gelu": lambda p: F.gelu,
    "gelu_tanh": lambda p: partial(F.gelu, approximate="tanh"),
    "sigmoid": lambda p: torch.sigmoid,
    "tanh": lambda p: torch.tanh,
}


# Native forwards that are as accurate as the catalog's (they pass its float32 tolerance)
# and faster than inductor's loop (ATen's loops are unrolled): params -> callable or None.
# The backward stays the compiled (x, g) kernel.
NATIVE_FORWARD: dict[str, Callable[[dict[str, float]], Callable[[Tensor], Tensor] | None]] = {
    "sigmoid": lambda p: torch.sigmoid,
    "silu": lambda p: F.silu if p["beta"] == 1.0 else None,
}
