"""Expectations over standard normal inputs, by quadrature (library rules, many nodes).

``E[g(z)]``, z ~ N(0, 1), is ``sum_i w_i g(z_i)`` for the nodes and weights of
:func:`normal_rule`:

* no break points: Gauss-Hermite (probabilists', ``numpy.polynomial.hermite_e.hermegauss``)
  with 200 nodes, exact for polynomials up to degree 399 and exponentially accurate for
  smooth activations;
* break points (where f, f' or f'' jumps, e.g. relu at 0): the line ``[-13, 13]`` is split
  at them and each piece is integrated by composite Gauss-Legendre
  (``numpy.polynomial.legendre.leggauss``) with the normal density as weight. Gauss-Hermite
  converges only algebraically across a kink; splitting restores spectral accuracy
  (relu's E[f^2] = 1/2 to 1e-15). The mass outside +-13 is below 1e-38.

For an activation at input variance q > 1 (``u = sqrt(q) z``), the features of f (scale ~1
in u) shrink to ~1/sqrt(q) in z, finer than the Gauss-Hermite nodes; the split rule is then
also graded, with extra break points at ``u = +-0.25 * 2^k`` (k = 0..12), so that
mean-field quantities stay accurate up to q ~ 1e8.

:func:`act_moments` uses these rules for activations (gated ones over two independent
inputs, a tensor-product rule).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

from actlab.analysis._eval import Array, Evaluator
from actlab.analysis.kinks import split_points

HERMITE_NODES = 200
GATED_VALUE_NODES = 32
LIMIT = 13.0
PANEL = 0.5
PANEL_NODES = 20
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_LADDER = tuple(0.25 * 2.0**k for k in range(13))


@lru_cache(maxsize=32)
def _hermite(n: int) -> tuple[Array, Array]:
    z, w = hermegauss(n)
    return z, w / _SQRT_2PI


@lru_cache(maxsize=8)
def _legendre(n: int) -> tuple[Array, Array]:
    return leggauss(n)


def normal_rule(
    breaks: Sequence[float] = (),
    n: int = HERMITE_NODES,
    panel: float = PANEL,
    panel_nodes: int = PANEL_NODES,
) -> tuple[Array, Array]:
    """Nodes ``z`` and weights ``w`` with ``sum(w * g(z)) ~= E[g(z)]``, z ~ N(0, 1).

    Args:
        breaks: points (in z units) where g or g' jumps; the rule splits there.
        n: Gauss-Hermite nodes when there are no breaks inside ``[-13, 13]``.
        panel: largest Gauss-Legendre panel width when splitting.
        panel_nodes: Gauss-Legendre nodes per panel.

    Example:
        >>> z, w = normal_rule()
        >>> float(w @ z**2)  # E[z^2] = 1 (to rounding)
    """
    inside = sorted({float(b) for b in breaks if -LIMIT < b < LIMIT})
    if not inside:
        return _hermite(n)
    t, tw = _legendre(panel_nodes)
    edges = [-LIMIT, *inside, LIMIT]
    zs, ws = [], []
    for lo, hi in itertools.pairwise(edges):
        k = max(1, math.ceil((hi - lo) / panel))
        left = lo + (hi - lo) * np.arange(k) / k
        half = 0.5 * (hi - lo) / k
        z = (left[:, None] + half * (t[None, :] + 1.0)).ravel()
        w = np.tile(tw * half, k)
        zs.append(z)
        ws.append(w * np.exp(-0.5 * z * z) / _SQRT_2PI)
    return np.concatenate(zs), np.concatenate(ws)


@dataclass(frozen=True)
class Moments:
    """Gaussian moments of an activation at input variance q (inputs ``u = sqrt(q) z``).

    For gated activations f(a, b) the two inputs are independent N(0, q), ``f'^2`` means
    ``(df/da)^2 + (df/db)^2`` and ``z f f'`` means ``f (z_a df/da + z_b df/db)``.

    Attributes:
        q: the input variance.
        mean: E[f(u)].
        second: E[f(u)^2].
        deriv2: E[f'(u)^2].
        zffp: E[z f(u) f'(u)]; ``d/dq E[f(u)^2] = zffp / sqrt(q)`` (the q-map slope).
    """

    q: float
    mean: float
    second: float
    deriv2: float
    zffp: float


class GaussianActivation:
    """An activation with cached quadrature rules, for repeated Gaussian expectations."""

    def __init__(self, activation: Any) -> None:
        self.ev = Evaluator(activation)
        self.act = self.ev.act
        self.breaks = split_points(self.act)
        self._rules: dict[float, tuple[Array, Array]] = {}

    def rule(self, q: float) -> tuple[Array, Array]:
        """The normal rule for inputs of variance q (break points mapped to z units)."""
        if q not in self._rules:
            s = math.sqrt(q)
            pts = [b / s for b in self.breaks]
            if q > 1.0:
                pts += [sign * u / s for u in _LADDER for sign in (-1.0, 1.0)] + [0.0]
            nodes = 12 if self.ev.gated else PANEL_NODES
            if len(self._rules) > 512:
                self._rules.clear()
            self._rules[q] = normal_rule(pts, panel_nodes=nodes)
        return self._rules[q]

    def moments(self, q: float = 1.0) -> Moments:
        """E[f], E[f^2], E[f'^2], E[z f f'] at input variance ``q > 0``."""
        if not (q > 0 and math.isfinite(q)):
            raise ValueError(f"input variance q must be a positive finite number, got {q!r}")
        s = math.sqrt(q)
        z, w = self.rule(q)
        with np.errstate(all="ignore"):
            if not self.ev.gated:
                u = s * z
                f, d = self.ev.f(u), self.ev.df(u)
                return Moments(
                    q, float(w @ f), float(w @ (f * f)), float(w @ (d * d)), float(w @ (z * f * d))
                )
            # gated: the value input a is integrated by Gauss-Hermite, the gate b by the
            # split rule (gates carry the kinks: reglu's relu(b)); a tensor-product rule
            za, wa = _hermite(GATED_VALUE_NODES)
            A, B = np.meshgrid(s * za, s * z, indexing="ij")
            W = np.outer(wa, w)
            f = self.ev.f2(A, B)
            da, db = self.ev.df2(A, B)
            zf = f * (A * da + B * db) / s
            return Moments(
                q,
                float(np.sum(W * f)),
                float(np.sum(W * f * f)),
                float(np.sum(W * (da * da + db * db))),
                float(np.sum(W * zf)),
            )

    def correlated(self, q: float, c: float, n: int = 64) -> tuple[float, float]:
        """``(E[f(u1) f(u2)], E[f'(u1) f'(u2)])`` for inputs of variance q and correlation c.

        ``u1 = sqrt(q) z1``, ``u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2)``, a Gauss-Hermite
        product rule (n x n nodes; for gated activations the a- and b-pairs are independent
        and f' f' is the sum over both partials). Used for the correlation map.
        """
        s = math.sqrt(q)
        c = min(max(c, -1.0), 1.0)
        r = math.sqrt(max(0.0, 1.0 - c * c))
        if self.ev.gated:
            n = min(n, 16)
        z, w = _hermite(n)
        if not self.ev.gated:  # u1 takes n values: f(u1) once per row, f(u2) on the n x n grid
            u1 = s * z
            u2 = s * (c * z[:, None] + r * z[None, :])
            with np.errstate(all="ignore"):
                inner_f = self.ev.f(u2) @ w
                inner_d = self.ev.df(u2) @ w
                return (
                    float(w @ (self.ev.f(u1) * inner_f)),
                    float(w @ (self.ev.df(u1) * inner_d)),
                )
        Z1, Z2 = np.meshgrid(z, z, indexing="ij")
        W = np.outer(w, w)
        u1, u2 = (s * Z1).ravel(), (s * (c * Z1 + r * Z2)).ravel()
        W = W.ravel()
        with np.errstate(all="ignore"):
            # 4-D: (a1, a2) and (b1, b2) independent correlated pairs
            a1, b1 = np.meshgrid(u1, u1, indexing="ij")
            a2, b2 = np.meshgrid(u2, u2, indexing="ij")
            WW = np.outer(W, W)
            f1, f2 = self.ev.f2(a1, b1), self.ev.f2(a2, b2)
            (p1, q1), (p2, q2) = self.ev.df2(a1, b1), self.ev.df2(a2, b2)
            return float(np.sum(WW * f1 * f2)), float(np.sum(WW * (p1 * p2 + q1 * q2)))


    def correlated_converged(
        self, q: float, c: float, rtol: float = 1e-10, n_max: int = 256
    ) -> tuple[float, float]:
        """:meth:`correlated` with the node count doubled from 64 until two successive
        results agree to ``rtol`` (relative to 1 + |value|), or ``n_max`` nodes.

        Gauss-Hermite product rules converge slowly for integrands with poles near the real
        axis (tanh at large q) or kinks; this is the accurate value used to refine roots.
        """
        n = 64
        prev = self.correlated(q, c, n)
        while n < n_max:
            n *= 2
            cur = self.correlated(q, c, min(n, n_max))
            if all(abs(a - b) <= rtol * (1.0 + abs(b)) for a, b in zip(prev, cur, strict=True)):
                return cur
            prev = cur
        return prev


@lru_cache(maxsize=256)
def gaussian(activation: Any) -> GaussianActivation:
    """A cached :class:`GaussianActivation` (rules and break points computed once)."""
    return GaussianActivation(activation)


def act_moments(activation: Any, q: float = 1.0) -> Moments:
    """Gaussian moments of ``activation`` at input variance ``q`` (see :class:`Moments`).

    Example:
        >>> act_moments("relu").second  # E[relu(z)^2]
        0.5
    """
    from actlab.analysis._eval import resolve

    return gaussian(resolve(activation)).moments(q)
