"""Mean-field signal propagation in deep networks at initialisation.

Poole et al. 2016 (Exponential expressivity in deep neural networks through transient
chaos) and Schoenholz et al. 2017 (Deep information propagation). A deep fully connected
network with weights ``W_ij ~ N(0, sigma_w^2 / fan_in)`` and biases ``b_i ~ N(0, sigma_b^2)``;
in the wide limit the pre-activations of layer l are Gaussian with variance q_l, and

* the q map:  ``q_{l+1} = sigma_w^2 E[f(sqrt(q_l) z)^2] + sigma_b^2``, with fixed point q*;
* ``chi_1 = sigma_w^2 E[f'(sqrt(q*) z)^2]``: the factor by which the squared norm of a
  back-propagated gradient (and the distance between nearby inputs) changes per layer.
  chi_1 < 1 is the ordered phase (gradients vanish), chi_1 > 1 the chaotic phase
  (they explode), chi_1 = 1 the edge of chaos;
* the correlation map of two inputs, ``c_{l+1} = (sigma_w^2 E[f(u1) f(u2)] + sigma_b^2) / q*``
  with ``u1, u2`` of variance q* and correlation c_l; c = 1 is always a fixed point and its
  slope there is chi_1; in the chaotic phase the stable fixed point c* < 1, and its slope is
  ``chi_c = sigma_w^2 E[f'(u1) f'(u2)]``;
* depth scales: ``xi_q = -1 / log(slope of the q map at q*)``, where that slope is
  ``chi_1 + sigma_w^2 E[f f''] = sigma_w^2 E[z f f'] / sqrt(q*)`` (Stein's lemma; no second
  derivative needed), and ``xi_c = -1 / log(chi_c)`` (``chi_c = chi_1`` in the ordered phase);
  xi_c diverges at the edge of chaos.

Gated activations (GLU family): a layer maps width n to 2n pre-activations, split into
independent halves ``a, b`` (independent N(0, q)); ``E[f^2]`` is over both and ``f'^2`` is
``(df/da)^2 + (df/db)^2`` (see :class:`actlab.analysis.quadrature.Moments`).

q* is the fixed point reached from the input variance ``q0`` (default 1): ``q* = 0`` when the
signal collapses and ``q* = inf`` when it grows without bound (relu above sigma_w^2 = 2); the
quantities at q* are then limits, evaluated at q = 1e-12 or 1e8.

Example:
    >>> critical_weight_variance("relu")
    2.0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scipy.optimize import brentq

from actlab.analysis._eval import resolve
from actlab.analysis.quadrature import gaussian

Q_MIN = 1e-12
Q_MAX = 1e8
CRITICAL_TOL = 1e-9


@dataclass(frozen=True)
class FixedPoint:
    """The mean-field state of a deep network (see the module docstring).

    Attributes:
        activation: activation name.
        sigma_w2: weight variance times fan_in.
        sigma_b2: bias variance.
        q_star: pre-activation variance fixed point (0: collapses; inf: unbounded).
        chi_1: per-layer factor of squared gradient norms.
        slope: slope of the q map at q*.
        xi_q: depth scale of convergence of q (layers; inf if it does not converge).
        c_star: stable correlation fixed point (1 in the ordered phase).
        chi_c: slope of the correlation map at c*.
        xi_c: correlation depth scale (inf at the edge of chaos; NaN if q is unbounded).
        phase: ``"ordered"``, ``"critical"``, ``"chaotic"`` or ``"unbounded"``.
        q0: the input variance the fixed point is reached from.
    """

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    chi_1: float
    slope: float
    xi_q: float
    c_star: float
    chi_c: float
    xi_c: float
    phase: str
    q0: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(sigma_w2: float, sigma_b2: float) -> None:
    if not (math.isfinite(sigma_w2) and sigma_w2 > 0):
        raise ValueError(f"sigma_w2 must be a positive finite number, got {sigma_w2!r}")
    if not (math.isfinite(sigma_b2) and sigma_b2 >= 0):
        raise ValueError(f"sigma_b2 must be a non-negative finite number, got {sigma_b2!r}")


def q_map(activation: Any, q: float, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """One layer of the variance map: ``sigma_w^2 E[f(sqrt(q) z)^2] + sigma_b^2``."""
    _check(sigma_w2, sigma_b2)
    return sigma_w2 * gaussian(resolve(activation)).moments(q).second + sigma_b2


def c_map(activation: Any, c: float, q: float, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """One layer of the correlation map at variance q, normalised so that ``c_map(1) = 1``."""
    _check(sigma_w2, sigma_b2)
    g = gaussian(resolve(activation))
    ff, _ = g.correlated_converged(q, c)
    return (sigma_w2 * ff + sigma_b2) / (sigma_w2 * g.moments(q).second + sigma_b2)


def _q_star(g: Any, sigma_w2: float, sigma_b2: float, q0: float) -> float:
    """The fixed point of the q map reached from q0 (0.0 or inf at the limits)."""

    def gap(q: float) -> float:
        return sigma_w2 * g.moments(q).second + sigma_b2 - q

    v0 = gap(q0)
    if not math.isfinite(v0):
        raise ValueError(
            f"the q map of {g.act.name} is not finite at q = {q0:g}: does f give NaN or inf?"
        )
    if abs(v0) <= 1e-12 * q0:
        return q0
    q, factor = q0, (8.0 if v0 > 0 else 0.125)
    while True:
        nxt = q * factor
        if nxt > Q_MAX:
            return math.inf
        if nxt < Q_MIN:
            return 0.0
        v = gap(nxt)
        if not math.isfinite(v):
            return math.inf if v0 > 0 else 0.0
        if (v < 0) if v0 > 0 else (v > 0):
            lo, hi = sorted((q, nxt))
            return float(brentq(gap, lo, hi, xtol=1e-14 * hi, rtol=1e-13))
        if v == 0:
            return nxt
        q = nxt


def _chi_1(g: Any, sigma_w2: float, q_star: float) -> tuple[float, float]:
    """(chi_1, slope of the q map) at q* (limits at 0 and inf evaluated at Q_MIN / Q_MAX)."""
    q = min(max(q_star, Q_MIN), Q_MAX)
    m = g.moments(q)
    return sigma_w2 * m.deriv2, sigma_w2 * m.zffp / math.sqrt(q)


def _depth(factor: float) -> float:
    """-1 / log|factor|: the number of layers over which a deviation shrinks by e."""
    a = abs(factor)
    if not math.isfinite(a):
        return math.nan
    if a >= 1.0 - CRITICAL_TOL:
        return math.inf
    if a == 0.0:
        return 0.0
    return -1.0 / math.log(a)


# correlations scanned (downwards) for the correlation map's fixed points: near 1 first
_C_GRID = (
    *(1.0 - 10.0 ** (-k) for k in range(7, 1, -1)),
    *(i / 50 for i in range(49, -50, -1)),
    *(-1.0 + 10.0 ** (-k) for k in range(2, 8)),
)


def _is_odd(g: Any) -> bool:
    """f(-x) = -f(x) on a grid (so that, without bias, the correlation map is odd)."""
    if g.ev.gated:
        return False
    import numpy as np

    x = np.linspace(0.0, 8.0, 65)
    f_pos, f_neg = g.ev.f(x), g.ev.f(-x)
    return bool(np.all(np.abs(f_pos + f_neg) <= 1e-12 * (1.0 + np.abs(f_pos))))


def _c_star(g: Any, sigma_w2: float, sigma_b2: float, q: float) -> float:
    """The stable correlation fixed point below 1 in the chaotic phase.

    The correlation map ``M(c)`` has the unstable fixed point 1 (slope chi_1 > 1). Two
    nearby inputs decorrelate until the largest fixed point below 1, found by scanning ``c``
    downwards from 1 for a sign change of ``M(c) - c`` from negative to positive. A sign is
    trusted only beyond the quadrature's accuracy there (the difference between 64- and
    96-node product rules, times 8): round-off at a fixed point such as ``c = 0`` is no sign.
    The root is refined with Brent's method on the converged quadrature
    (:meth:`~actlab.analysis.quadrature.GaussianActivation.correlated_converged`) and kept
    only if stable (``|M'(c*)| < 1``, with
    ``M'(c) = sigma_w^2 q E[f'(u1) f'(u2)] / (sigma_w^2 E[f^2] + sigma_b^2)``). For an odd
    activation without bias ``M`` is odd and ``c* = 0`` exactly when 0 is the stable root.
    """
    denom = sigma_w2 * g.moments(q).second + sigma_b2

    def m(c: float, n: int = 64) -> float:
        return (sigma_w2 * g.correlated(q, c, n)[0] + sigma_b2) / denom

    def gap(c: float) -> float:
        return m(c) - c

    def gap_accurate(c: float) -> float:
        return (sigma_w2 * g.correlated_converged(q, c)[0] + sigma_b2) / denom - c

    def sign(c: float) -> int:
        v = gap(c)
        tol = 8.0 * abs(m(c, 64) - m(c, 96)) + 1e-12
        return 0 if abs(v) <= tol else (1 if v > 0 else -1)

    def stable(c: float) -> bool:
        return abs(sigma_w2 * q * g.correlated_converged(q, c)[1] / denom) < 1.0

    symmetric = sigma_b2 == 0.0 and _is_odd(g)
    above: float | None = None  # the last correlation where M(c) < c (scanning down)
    for c in _C_GRID:
        s = sign(c)
        if s < 0:
            above = c
        elif s > 0 and above is not None:
            if symmetric and c <= 0.0 <= above and stable(0.0):
                return 0.0
            # the converged quadrature keeps the bracket's signs (they exceed 8x the
            # 64-node error); if it does not, the 64-node root is the best there is
            fn = gap_accurate if gap_accurate(c) > 0 > gap_accurate(above) else gap
            root = float(brentq(fn, c, above, xtol=1e-11))
            if stable(root):
                return root
            above = None  # an unstable root: look further down
    if above is None and sign(_C_GRID[0]) >= 0:
        return 1.0  # chi_1 is so close to 1 that c* cannot be told from 1
    return -1.0  # M(c) < c all the way down: anti-correlation (c* = -1)


def fixed_point(
    activation: Any, sigma_w2: float, sigma_b2: float = 0.0, q0: float = 1.0
) -> FixedPoint:
    """Mean-field fixed point, chi_1 and depth scales for ``(sigma_w^2, sigma_b^2)``.

    Args:
        activation: anything :func:`actlab.get` accepts.
        sigma_w2: weight variance times fan_in (PyTorch's default ``nn.Linear`` init: 1/3;
            Kaiming/He: 2).
        sigma_b2: bias variance.
        q0: input variance the dynamics start from (selects the fixed point).

    Example:
        >>> fp = fixed_point("tanh", 1.5, 0.05)
        >>> fp.phase, round(fp.chi_1, 3)
    """
    _check(sigma_w2, sigma_b2)
    if not (math.isfinite(q0) and q0 > 0):
        raise ValueError(f"q0 must be a positive finite number, got {q0!r}")
    act = resolve(activation)
    g = gaussian(act)
    qs = _q_star(g, sigma_w2, sigma_b2, q0)
    chi, slope = _chi_1(g, sigma_w2, qs)
    xi_q = _depth(slope) if math.isfinite(qs) else math.inf
    if not math.isfinite(qs):
        return FixedPoint(
            act.name,
            sigma_w2,
            sigma_b2,
            qs,
            chi,
            slope,
            xi_q,
            math.nan,
            math.nan,
            math.nan,
            "unbounded",
            q0,
        )
    if abs(chi - 1.0) <= CRITICAL_TOL:
        phase, c_star, chi_c = "critical", 1.0, chi
    elif chi < 1.0:
        phase, c_star, chi_c = "ordered", 1.0, chi
    else:
        phase = "chaotic"
        q = max(qs, Q_MIN)
        c_star = _c_star(g, sigma_w2, sigma_b2, q)
        chi_c = sigma_w2 * g.correlated_converged(q, c_star)[1] if c_star < 1.0 else chi
    return FixedPoint(
        act.name, sigma_w2, sigma_b2, qs, chi, slope, xi_q, c_star, chi_c, _depth(chi_c), phase, q0
    )


def chi_1(activation: Any, sigma_w2: float, sigma_b2: float = 0.0, q0: float = 1.0) -> float:
    """Just ``fixed_point(...).chi_1`` (no correlation map: cheaper)."""
    _check(sigma_w2, sigma_b2)
    g = gaussian(resolve(activation))
    return _chi_1(g, sigma_w2, _q_star(g, sigma_w2, sigma_b2, q0))[0]


def q_trajectory(
    activation: Any, sigma_w2: float, sigma_b2: float, q1: float, depth: int
) -> list[float]:
    """``[q_1, ..., q_depth]``: the q map iterated from the first layer's variance q1."""
    _check(sigma_w2, sigma_b2)
    g = gaussian(resolve(activation))
    qs = [float(q1)]
    for _ in range(depth - 1):
        q = min(max(qs[-1], Q_MIN), Q_MAX)
        qs.append(sigma_w2 * g.moments(q).second + sigma_b2)
    return qs


def chi_at(activation: Any, sigma_w2: float, q: float) -> float:
    """``sigma_w^2 E[f'(sqrt(q) z)^2]``: the per-layer squared-gradient factor at variance q."""
    g = gaussian(resolve(activation))
    return sigma_w2 * g.moments(min(max(q, Q_MIN), Q_MAX)).deriv2


def critical_weight_variance(activation: Any, sigma_b2: float = 0.0, q0: float = 1.0) -> float:
    """The edge of chaos: the sigma_w^2 at which chi_1 = 1, for a given sigma_b^2.

    Found by bracketing from sigma_w^2 = 1 (doubling or halving) and Brent's method; the
    crossing nearest to 1 is returned. relu: 2 for every sigma_b^2 (chi_1 = sigma_w^2 / 2);
    tanh: tends to 1 as sigma_b^2 -> 0.

    Returns:
        The critical sigma_w^2, or NaN if chi_1 does not cross 1 continuously for
        sigma_w^2 in [1e-6, 1e6] (no edge of chaos; e.g. reglu, bilinear).

    Raises:
        ValueError: if chi_1 is not finite (f or f' gives NaN/inf for large inputs).

    Example:
        >>> round(critical_weight_variance("tanh", 0.0), 6)
        1.0
    """
    if not (math.isfinite(sigma_b2) and sigma_b2 >= 0):
        raise ValueError(f"sigma_b2 must be a non-negative finite number, got {sigma_b2!r}")
    act = resolve(activation)
    g = gaussian(act)

    def h(sw2: float) -> float:
        v = _chi_1(g, sw2, _q_star(g, sw2, sigma_b2, q0))[0] - 1.0
        if not math.isfinite(v):
            raise ValueError(
                f"chi_1 of {act.name} is not finite at sigma_w^2 = {sw2:g}: f or f' gives NaN "
                "or inf for some large inputs (see `actlab audit`)"
            )
        return v

    s, v = 1.0, h(1.0)
    if v == 0.0:
        return 1.0
    factor = 2.0 if v < 0 else 0.5
    while 1e-6 <= s <= 1e6:
        nxt = s * factor
        w = h(nxt)
        if w == 0.0:
            return nxt
        if (w > 0) == (v < 0):
            lo, hi = sorted((s, nxt))
            root = float(brentq(h, lo, hi, xtol=1e-12, rtol=1e-12))
            # a true crossing is continuous; reglu and bilinear (quadratic at 0) instead jump
            # from 0 to infinity at the q0-dependent stability boundary: no edge of chaos
            if max(abs(h(root * (1 - 1e-6))), abs(h(root * (1 + 1e-6)))) > 1e-3:
                return math.nan
            return root
        s = nxt
    return math.nan
