"""Measured properties of an activation: computed from f and f' on grids, never typed by hand.

* range and boundedness on ``[-1e4, 1e4]``: the extremes, and whether they keep growing
  decade after decade (x, log x: unbounded) or settle (softsign's 1 - 1/x: bounded);
* monotonicity from the signs of f's differences on a fine grid (and where the minimum is,
  when it is not monotonic);
* zero-centring: ``E[f(z)]`` for z ~ N(0, 1), by quadrature;
* smoothness: where f, f' or f'' jumps (:mod:`actlab.analysis.kinks`);
* saturation: the intervals on ``[-50, 50]`` where ``|f'(x)| < 1e-3``;
* dying risk: ``P(f'(z) = 0)`` and ``P(|f'(z)| < 1e-3)`` for z ~ N(0, 1), on 200 000
  normal quantiles.

Gated activations (GLU family) are measured along the diagonal a = b = x (as they are
plotted); their Gaussian moments use independent a, b ~ N(0, 1), as in the gain.

Example:
    >>> actlab.analysis.properties("relu").as_dict()["P(f'(z) = 0), dying risk"]
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtri

from actlab.analysis._eval import Evaluator, resolve
from actlab.analysis.kinks import find_breaks
from actlab.analysis.quadrature import act_moments

RANGE = 1e4
SATURATION = 1e-3
SATURATION_RANGE = 50.0
QUANTILES = 200_000  # even: no quantile falls exactly on z = 0


def _fmt(v: float) -> str:
    if v == float("inf"):
        return "inf"
    if v == float("-inf"):
        return "-inf"
    return f"{v + 0.0:.4g}"


def _points(xs: tuple[float, ...]) -> str:
    return ", ".join(_fmt(x) for x in xs)


@dataclass(frozen=True)
class Properties:
    """What :func:`properties` measured (see the module docstring).

    ``out_min``/``out_max`` are the extremes on ``[-1e4, 1e4]``, replaced by -inf/inf
    when the function is unbounded on that side.
    """

    name: str
    out_min: float
    out_max: float
    bounded_below: bool
    bounded_above: bool
    monotonic: str
    extremum: tuple[str, float, float] | None
    mean: float
    second_moment: float
    value_jumps: tuple[float, ...]
    derivative_jumps: tuple[float, ...]
    second_jumps: tuple[float, ...]
    saturation: tuple[tuple[float, float], ...]
    p_zero_grad: float
    p_saturated: float
    nonfinite: int
    gated: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def zero_centred(self) -> bool:
        """|E[f(z)]| < 1e-3."""
        return abs(self.mean) < 1e-3

    @property
    def smoothness(self) -> str:
        if self.value_jumps:
            return f"discontinuous: f jumps at x = {_points(self.value_jumps)}"
        if self.derivative_jumps:
            return f"C0: f' jumps at x = {_points(self.derivative_jumps)}"
        if self.second_jumps:
            return f"C1: f'' jumps at x = {_points(self.second_jumps)}"
        return "C2 or smoother (no jump in f, f', f'' found)"

    def saturation_text(self) -> str:
        if not self.saturation:
            return f"nowhere on [-{SATURATION_RANGE:g}, {SATURATION_RANGE:g}]"
        parts = []
        for lo, hi in self.saturation[:4]:
            if lo == float("-inf") and hi == float("inf"):
                parts.append("everywhere")
            elif lo == float("-inf"):
                parts.append(f"x < {_fmt(hi)}")
            elif hi == float("inf"):
                parts.append(f"x > {_fmt(lo)}")
            elif hi - lo < 1e-2:
                parts.append(f"x ~ {_fmt(0.5 * (lo + hi))}")
            else:
                parts.append(f"{_fmt(lo)} < x < {_fmt(hi)}")
        more = len(self.saturation) - 4
        return ", ".join(parts) + (f" (+{more} more intervals)" if more > 0 else "")

    def as_dict(self) -> dict[str, Any]:
        """Human-readable keys -> short strings / floats (the ``actlab show`` table).

        Keys avoid square brackets, which rich would read as markup."""
        mono = self.monotonic
        if self.extremum is not None:
            kind, x, f = self.extremum
            mono += f" ({kind} f = {_fmt(f)} at x = {_fmt(x)})"
        d: dict[str, Any] = {
            f"range for |x| <= {RANGE:g}": f"[{_fmt(self.out_min)}, {_fmt(self.out_max)}]",
            "bounded below": "yes" if self.bounded_below else "no",
            "bounded above": "yes" if self.bounded_above else "no",
            "monotonic": mono,
            "mean f(z), z ~ N(0,1)": round(self.mean, 6) + 0.0,
            "zero-centred": "yes" if self.zero_centred else "no",
            "mean f(z)^2": round(self.second_moment, 6),
            "smoothness": self.smoothness,
            "saturates (|f'| < 1e-3)": self.saturation_text(),
            "P(f'(z) = 0), dying risk": round(self.p_zero_grad, 6),
            "P(|f'(z)| < 1e-3)": round(self.p_saturated, 6),
        }
        if self.nonfinite:
            d["non-finite outputs"] = f"at {self.nonfinite} points with |x| <= {RANGE:g}"
        for note in self.notes:
            d["note"] = note
        return d


def _grid() -> np.ndarray:
    lin = np.linspace(-20.0, 20.0, 40_001)
    mag = np.logspace(-6, np.log10(RANGE), 3_000)
    return np.unique(np.concatenate([lin, mag, -mag, [0.0]]))


def _bounded(x: np.ndarray, y: np.ndarray, sign: float) -> tuple[bool, float]:
    """Is sign * f bounded above on [-1e4, 1e4]? Its running maximum over decades 10..1e4
    must stop growing, or grow by less each decade (geometric convergence)."""
    v = sign * y
    ok = np.isfinite(v)
    m = [np.max(v[ok & (np.abs(x) <= r)]) for r in (1e1, 1e2, 1e3, 1e4)]
    d2, d3 = m[2] - m[1], m[3] - m[2]
    bounded = d3 <= 1e-9 * (1.0 + abs(m[3])) or d3 <= 0.5 * d2
    return bool(bounded), float(sign * m[3])


def _extremum(x: np.ndarray, y: np.ndarray) -> tuple[str, float, float] | None:
    """The lowest interior local minimum on [-20, 20] (else the highest local maximum)."""
    near = np.abs(x) <= 20.0
    xs, ys = x[near], y[near]
    inner = np.isfinite(ys[1:-1]) & np.isfinite(ys[:-2]) & np.isfinite(ys[2:])
    mins = np.flatnonzero(inner & (ys[1:-1] < ys[:-2]) & (ys[1:-1] <= ys[2:])) + 1
    if len(mins):
        i = mins[np.argmin(ys[mins])]
        return "min", float(xs[i]), float(ys[i])
    maxs = np.flatnonzero(inner & (ys[1:-1] > ys[:-2]) & (ys[1:-1] >= ys[2:])) + 1
    if len(maxs):
        i = maxs[np.argmax(ys[maxs])]
        return "max", float(xs[i]), float(ys[i])
    return None


def _intervals(x: np.ndarray, mask: np.ndarray) -> tuple[tuple[float, float], ...]:
    if not mask.any():
        return ()
    edges = np.diff(mask.astype(np.int8))
    starts = list(np.flatnonzero(edges == 1) + 1)
    ends = list(np.flatnonzero(edges == -1))
    if mask[0]:
        starts.insert(0, 0)
    if mask[-1]:
        ends.append(len(mask) - 1)
    out = []
    for s, e in zip(starts, ends, strict=True):
        lo = float("-inf") if s == 0 else float(x[s])
        hi = float("inf") if e == len(mask) - 1 else float(x[e])
        out.append((lo, hi))
    return tuple(out)


def properties(activation: Any) -> Properties:
    """Measure an activation's properties (see the module docstring).

    Args:
        activation: anything :func:`actlab.get` accepts.

    Returns:
        :class:`Properties`; ``.as_dict()`` is what ``actlab show`` prints.
    """
    act = resolve(activation)
    g, dg = Evaluator(act).line("diag")
    x = _grid()
    with np.errstate(all="ignore"):
        y = g(x)
        finite = np.isfinite(y)
        nonfinite = int((~finite).sum())
        if not finite.any():
            raise ValueError(f"{act.name} gives no finite output on [-{RANGE:g}, {RANGE:g}]")
        bb, lo = _bounded(x, y, -1.0)
        ba, hi = _bounded(x, y, 1.0)
        diffs = np.diff(y[finite])
        tol = 1e-12 * max(1.0, float(np.max(np.abs(y[finite]))))
        if np.all(np.abs(diffs) <= tol):
            mono = "constant"
        elif np.all(diffs >= -tol):
            mono = "increasing"
        elif np.all(diffs <= tol):
            mono = "decreasing"
        else:
            mono = "no"
        extremum = _extremum(x, y) if mono == "no" else None
        xs = np.linspace(-SATURATION_RANGE, SATURATION_RANGE, 100_001)
        sat = np.abs(dg(xs)) < SATURATION
        z = ndtri((np.arange(QUANTILES) + 0.5) / QUANTILES)
        dz = dg(z)
    breaks = find_breaks(act, "diag")
    try:
        m = act_moments(act)
        mean, second = m.mean, m.second
    except ValueError:
        mean = second = float("nan")
    notes = ()
    if act.gated:
        notes = ("gated: measured along a = b = x; E[f], E[f^2] over independent a, b ~ N(0, 1)",)
    return Properties(
        name=act.name,
        out_min=lo if bb else float("-inf"),
        out_max=hi if ba else float("inf"),
        bounded_below=bb,
        bounded_above=ba,
        monotonic=mono,
        extremum=extremum,
        mean=mean,
        second_moment=second,
        value_jumps=breaks.value,
        derivative_jumps=breaks.derivative,
        second_jumps=breaks.second,
        saturation=_intervals(xs, sat),
        p_zero_grad=float(np.mean(dz == 0)),
        p_saturated=float(np.mean(np.abs(dz) < SATURATION)),
        nonfinite=nonfinite,
        gated=act.gated,
        notes=notes,
    )
