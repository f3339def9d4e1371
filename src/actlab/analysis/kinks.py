"""Where an activation (or its derivative) jumps: found numerically, never typed by hand.

On a fine grid, a jump of ``g`` (f, f' or f'') shows up as one difference
``|g(x_{i+1}) - g(x_i)|`` far larger than its neighbours, which for a smooth function are
all about ``h |g'|``. The grid is offset by an irrational fraction of its step so that the
usual kink locations (0, +-3, 6, ...) fall strictly between grid points, and each jump
found is then located to about 1e-12 by bisection.

Example:
    >>> find_breaks("relu").derivative
    (0.0,)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from actlab.analysis._eval import Array, Evaluator, resolve
from actlab.catalog import Activation

LIMIT = 40.0  # scan [-LIMIT, LIMIT]
STEP = 2e-3
JUMP_TOL = 1e-7  # jumps smaller than this are ignored
RATIO = 20.0  # a jump must be this many times larger than its neighbours' differences
_OFFSET = 0.3819660112501051  # 2 - golden ratio


@dataclass(frozen=True)
class Breaks:
    """Measured break points of an activation along one line.

    Attributes:
        value: x where f itself jumps (discontinuities).
        derivative: x where f' jumps (kinks), excluding ``value`` points.
        second: x where f'' jumps (f is C1 but not C2 there).
    """

    value: tuple[float, ...] = ()
    derivative: tuple[float, ...] = ()
    second: tuple[float, ...] = ()

    @property
    def all(self) -> tuple[float, ...]:
        """Every point where f, f' or f'' jumps (where quadrature should split)."""
        return tuple(sorted({*self.value, *self.derivative, *self.second}))


def _spikes(diffs: Array, floor: Array | float = 0.0, gap: int = 1) -> Array:
    """Indices i where |diffs[i]| stands out from its neighbours and from ``floor``.

    Neighbours are those at offsets ``gap`` and ``gap + 1`` on each side (``gap=2`` lets a
    jump spread over two adjacent differences; adjacent hits are merged, keeping the
    largest).
    """
    j = np.abs(diffs)
    k = gap + 1
    pad = np.pad(j, k, constant_values=np.inf)
    n = len(j)
    offs = [o for o in range(-k, k + 1) if abs(o) >= gap]
    neighbours = np.maximum.reduce([pad[k + o : k + o + n] for o in offs])
    ok = np.isfinite(j) & (j > JUMP_TOL) & (j > RATIO * neighbours) & (j > RATIO * floor)
    idx = np.flatnonzero(ok)
    if gap > 1 and len(idx) > 1:
        keep = [idx[0]]
        for i in idx[1:]:
            if i - keep[-1] <= gap:
                if j[i] > j[keep[-1]]:
                    keep[-1] = i
            else:
                keep.append(i)
        idx = np.array(keep)
    return idx


def _snap(x: float) -> float:
    r = round(x, 6)
    return (0.0 if r == 0 else r) if abs(x - r) < 1e-9 else x


def _bisect(g: Any, lo: Array, hi: Array, iters: int = 44) -> Array:
    """Locate jumps of g inside [lo, hi] (vectorised bisection on the nearer side)."""
    lo, hi = lo.copy(), hi.copy()
    gl, gh = g(lo), g(hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        gm = g(mid)
        right = np.abs(gm - gl) <= np.abs(gm - gh)  # mid is on the left side of the jump
        lo = np.where(right, mid, lo)
        hi = np.where(right, hi, mid)
    return 0.5 * (lo + hi)


def _scan(g: Any, dg: Any, lo: float, hi: float, step: float) -> Breaks:
    n = round((hi - lo) / step)
    x = lo + (np.arange(n) + _OFFSET) * step
    with np.errstate(all="ignore"):
        f, d = g(x), dg(x)
        # f jumps: much larger than the change the derivative explains
        expected = step * np.maximum(np.abs(d[:-1]), np.abs(d[1:]))
        iv = _spikes(np.diff(f), np.nan_to_num(expected, nan=np.inf))
        # f' jumps
        idd = _spikes(np.diff(d))
        # f'' jumps: spikes in the differences of the difference quotient, away from f' jumps
        q = np.diff(d) / step
        i2 = _spikes(np.diff(q), 1e-6, gap=2)
    value = _bisect(g, x[iv], x[iv + 1]) if len(iv) else np.array([])
    deriv = _bisect(dg, x[idd], x[idd + 1]) if len(idd) else np.array([])
    near = np.concatenate([x[iv], x[idd]])
    i2 = np.array(
        [
            i
            for i in i2
            if 0 < i < n - 3 and (not len(near) or np.min(np.abs(near - x[i + 1])) > 4 * step)
        ],
        dtype=int,
    )
    if len(i2):
        second = _bisect(lambda t: (dg(t + 1e-7) - dg(t - 1e-7)) / 2e-7, x[i2 - 1], x[i2 + 3], 30)
    else:
        second = np.array([])
    vs = sorted({_snap(float(v)) for v in value})
    ds = sorted({_snap(float(v)) for v in deriv} - set(vs))
    ss = sorted({round(float(v), 6) + 0.0 for v in second} - set(vs) - set(ds))
    return Breaks(tuple(vs), tuple(ds), tuple(ss))


@lru_cache(maxsize=256)
def _cached(act: Activation, axis: str, limit: float, step: float) -> Breaks:
    g, dg = Evaluator(act).line(axis)
    return _scan(g, dg, -limit, limit, step)


def find_breaks(
    activation: Any, axis: str = "diag", limit: float = LIMIT, step: float = STEP
) -> Breaks:
    """Measured jumps of f, f' and f'' of an activation on ``[-limit, limit]``.

    Args:
        activation: anything :func:`actlab.get` accepts.
        axis: for gated activations, the line to scan (see :meth:`Evaluator.line`).
        limit: half-width of the scanned interval.
        step: grid step; jumps are located to ~1e-12 afterwards.
    """
    return _cached(resolve(activation), axis, float(limit), float(step))


def split_points(activation: Any) -> tuple[float, ...]:
    """Where integration over the activation's input should split: declared + measured kinks.

    The union of the spec's declared kinks and the jumps of f and f' found numerically
    (for gated activations, along both inputs); used by the Gaussian quadrature.
    """
    act = resolve(activation)
    pts: set[float] = set()
    with contextlib.suppress(TypeError):  # a user spec whose kinks() takes other arguments
        pts.update(float(k) for k in act.spec.kinks(**act.params))
    axes = ("a", "b") if act.gated else ("diag",)
    for axis in axes:
        pts.update(find_breaks(act, axis).all)
    return tuple(sorted(p for p in pts if np.isfinite(p)))
