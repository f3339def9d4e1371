"""Numerical stability audit: f and f' in float64, float32, float16 and bfloat16 against a
high-precision reference, on inputs swept up to +-1e4.

Inputs: about 700 points, ``0``, a fine grid on ``[-12, 12]`` and log-spaced magnitudes
from 1e-4 to 1e4 (both signs), all exactly representable in every audited dtype, so input
rounding plays no part: each dtype is judged on the same numbers.

Reference (:mod:`actlab.analysis.reference`): mpmath at 40 digits for built-ins (their
textbook formulas) and for formula activations (their own text); for user callables, and
built-ins without a reference formula, the float64 evaluation of the same function (then
the float64 row is not judged, and "true value finite" means "finite in float64").

Error measure at each point, for a quantity g (f, or f' for the derivative rows)::

    err = |computed - g(x)| / max(|g(x)| + |x g'(x)|, floor(dtype))

the relative error, widened near zeros of g by ``|x g'(x)|``: the change of g when its input
moves by one relative unit. An implementation is not blamed for a zero that the function
itself has (silu' crosses zero at x = -1.28: a relative error there would be unbounded
for any float evaluation), but the naive ``log(1 + exp(x))`` at x = -20 in float32 (0
instead of 2e-9) still shows an error of 5%. The absolute floor keeps denormal tails out:
``floor = max(tiny / eps, 1024 tiny_c / eps_c)`` (``tiny``: smallest normal number; ``_c``:
the compute dtype, float32 for float16/bfloat16, which actlab computes in float32), so that
results that underflow, or pass through a subnormal intermediate later multiplied by up to
~1000 (``x^2 sigmoid(x)`` at x = -89 in float32), are not blamed: absolute errors below
about ``1000 tiny_c`` do not count. For gated activations ``|x g'|`` is
``|a dg/da| + |b dg/db|``.

NaN and inf are counted where the true value is finite and representable in the dtype
(overflow to inf of a true value beyond the dtype's range is correct rounding).

Verdict per dtype: no NaN/inf where the truth is finite, and the largest error of f and of
f' within :data:`TOLERANCE` (in units of the dtype's machine epsilon).

Example:
    >>> audit("formula:1/(1+exp(-x))").passed
    False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from actlab.analysis._eval import resolve
from actlab.catalog import Activation

DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

#: tolerance in machine epsilons of the dtype. float16/bfloat16 are computed in float32 and
#: rounded once (<= 0.5 eps), so 2 eps; float32/float64 evaluate elementary functions with
#: a few ulps of error each, composed a few times: 64 eps.
TOLERANCE: dict[str, float] = {"float64": 64.0, "float32": 64.0, "float16": 2.0, "bfloat16": 2.0}


def sweep() -> np.ndarray:
    """The audited inputs (float64 values exactly representable in bfloat16 and float16)."""
    mags = np.logspace(-4, 4, 8 * 24 + 1)
    specials = np.array([0.5, 1, 2, 3, 5, 6, 10, 20, 30, 40, 50, 88, 89, 100, 700, 710, 1000])
    lin = np.arange(-12.0, 12.0 + 1e-9, 1.0 / 16.0)
    x = np.concatenate([lin, mags, -mags, specials, -specials, [0.0]])
    x = torch.tensor(x).to(torch.bfloat16).double().numpy()
    x = x[np.abs(x) <= 1e4]
    return np.unique(x)


@dataclass(frozen=True)
class _Reference:
    """Reference arrays on the sweep (float64; NaN where not finite/defined)."""

    kind: str
    inputs: np.ndarray  # (N, k): k = 1, or 2 (a, b) for gated activations
    f: np.ndarray  # (N,)
    f_scale: np.ndarray  # (N,)  |f| + sum |x_i df/dx_i|
    d: np.ndarray  # (N, k) partial derivatives
    d_scale: np.ndarray  # (N, k)
    kink: np.ndarray  # (N,) bool: a non-smooth point was hit exactly


def _inputs(gated: bool) -> np.ndarray:
    x = sweep()
    if not gated:
        return x[:, None]
    ones = np.ones_like(x)
    return np.concatenate(
        [np.stack([x, x], 1), np.stack([ones, x], 1), np.stack([x, ones], 1)], axis=0
    )


def _to_float(v: Any) -> float:
    try:
        out = float(v)
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return out


@lru_cache(maxsize=128)
def _reference(act: Activation) -> _Reference:
    from actlab.analysis.reference import reference_for  # mpmath: imported when needed

    pts = _inputs(act.gated)
    n, k = pts.shape
    ref = reference_for(act)
    if ref is None:
        return _float64_reference(act, pts)
    f = np.empty(n)
    fs = np.empty(n)
    d = np.empty((n, k))
    ds = np.empty((n, k))
    kink = np.zeros(n, dtype=bool)
    for i, p in enumerate(pts):
        jet, at_kink = ref.evaluate(p)
        kink[i] = at_kink
        f[i] = _to_float(jet.v)
        fs[i] = _to_float(abs(jet.v) + sum(abs(p[j] * jet.g[j]) for j in range(k)))
        for j in range(k):
            d[i, j] = _to_float(jet.g[j])
            ds[i, j] = _to_float(abs(jet.g[j]) + sum(abs(p[m] * jet.h[j][m]) for m in range(k)))
    return _Reference("mpmath (40 digits)", pts, f, fs, d, ds, kink)


def _float64_reference(act: Activation, pts: np.ndarray) -> _Reference:
    t = torch.as_tensor(pts)
    x = t if act.gated else t[:, 0]
    with torch.no_grad():
        f = act(x).reshape(len(pts)).numpy()
    d = act.derivative(x).reshape(len(pts), -1).numpy()
    h = 1e-6 * np.maximum(1.0, np.abs(pts))
    k = pts.shape[1]
    d2 = np.empty_like(d)
    for j in range(k):
        e = np.zeros_like(pts)
        e[:, j] = h[:, j]
        xp, xm = torch.as_tensor(pts + e), torch.as_tensor(pts - e)
        if not act.gated:
            xp, xm = xp[:, 0], xm[:, 0]
        dp = act.derivative(xp).reshape(len(pts), -1).numpy()
        dm = act.derivative(xm).reshape(len(pts), -1).numpy()
        d2[:, j] = (dp[:, j] - dm[:, j]) / (2 * h[:, j])
    with np.errstate(all="ignore"):
        fs = np.abs(f) + np.sum(np.abs(pts * d), axis=1)
        ds = np.abs(d) + np.abs(pts * d2)
    return _Reference("float64 (same function)", pts, f, fs, d, ds, np.zeros(len(pts), bool))


@dataclass(frozen=True)
class AuditResult:
    """Result of :func:`audit`.

    Attributes:
        activation: the activation's name.
        reference: what the values were compared with.
        frame: ``pandas.DataFrame``, one row per (dtype, quantity): max error (in the
            measure of the module docstring), the input where it occurs, NaN and inf counts,
            the tolerance, and whether the row passed.
    """

    activation: str
    reference: str
    frame: Any

    @property
    def passed(self) -> bool:
        """True when every judged row passed."""
        judged = self.frame[self.frame["judged"]]
        return bool(judged["passed"].all())

    def verdicts(self) -> dict[str, bool]:
        """dtype -> passed (forward and derivative together)."""
        out = {}
        for dt, rows in self.frame.groupby("dtype", sort=False):
            judged = rows[rows["judged"]]
            out[str(dt)] = bool(judged["passed"].all()) if len(judged) else True
        return out


def _evaluate(
    act: Activation, pts: np.ndarray, dtype: torch.dtype
) -> tuple[np.ndarray, np.ndarray]:
    t = torch.as_tensor(pts).to(dtype)
    x = t if act.gated else t[:, 0]
    with torch.no_grad():
        y = act(x).double().reshape(len(pts)).numpy()
    d = act.derivative(x).double().reshape(len(pts), -1).numpy()
    return y, d


def _row(
    dtype_name: str,
    quantity: str,
    computed: np.ndarray,
    truth: np.ndarray,
    scale: np.ndarray,
    where: np.ndarray,
    mask: np.ndarray,
    judged: bool,
) -> dict[str, Any]:
    fi = torch.finfo(DTYPES[dtype_name])
    fc = torch.finfo(torch.float32) if fi.bits == 16 else fi
    floor = max(fi.tiny / fi.eps, 1024.0 * fc.tiny / fc.eps)
    with np.errstate(all="ignore"):
        representable = mask & np.isfinite(truth) & (np.abs(truth) < fi.max * (1 + fi.eps / 2))
        nan = int(np.sum(representable & np.isnan(computed)))
        inf = int(np.sum(representable & np.isinf(computed)))
        ok = representable & np.isfinite(computed) & np.isfinite(scale)
        err = np.abs(computed - truth) / np.maximum(scale, floor)
        err = np.where(ok, err, 0.0)
    i = int(np.argmax(err)) if len(err) else 0
    max_err = float(err[i]) if len(err) else 0.0
    tol = TOLERANCE[dtype_name] * fi.eps
    return {
        "dtype": dtype_name,
        "quantity": quantity,
        "max_error": max_err,
        "error_in_eps": max_err / fi.eps,
        "worst_x": float(where[i]) if len(where) else math.nan,
        "nan": nan,
        "inf": inf,
        "tolerance": tol,
        "judged": judged,
        "passed": bool(nan == 0 and inf == 0 and max_err <= tol) if judged else True,
        "points": int(representable.sum()),
    }


def audit(activation: Any, dtypes: Sequence[str] = tuple(DTYPES)) -> AuditResult:
    """Audit an activation's forward and derivative in each dtype (see module docstring).

    Args:
        activation: anything :func:`actlab.get` accepts.
        dtypes: names among ``float64``, ``float32``, ``float16``, ``bfloat16``.

    Example:
        >>> r = audit("mish")
        >>> r.passed, r.frame[["dtype", "quantity", "error_in_eps", "nan"]]
    """
    import pandas as pd

    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        raise ValueError(
            f"unknown dtype {bad[0] if bad else '(none)'}; accepted: {', '.join(DTYPES)}"
        )
    act = resolve(activation)
    ref = _reference(act)
    pts = ref.inputs
    where = pts[:, -1]  # the varying input (b, or x)
    if act.gated:  # on the (a = x, b = 1) line the varying input is a
        third = len(pts) // 3
        where = np.concatenate([pts[: 2 * third, 1], pts[2 * third :, 0]])
    rows = []
    for name in dtypes:
        y, d = _evaluate(act, pts, DTYPES[name])
        judged = not (name == "float64" and ref.kind.startswith("float64"))
        all_pts = np.ones(len(pts), dtype=bool)
        rows.append(_row(name, "f", y, ref.f, ref.f_scale, where, all_pts, judged))
        smooth = ~ref.kink
        if act.gated:
            dd = np.concatenate([d[:, 0], d[:, 1]])
            rd = np.concatenate([ref.d[:, 0], ref.d[:, 1]])
            rs = np.concatenate([ref.d_scale[:, 0], ref.d_scale[:, 1]])
            rows.append(_row(name, "f'", dd, rd, rs, np.tile(where, 2), np.tile(smooth, 2), judged))
        else:
            rows.append(
                _row(name, "f'", d[:, 0], ref.d[:, 0], ref.d_scale[:, 0], where, smooth, judged)
            )
    return AuditResult(act.name, ref.kind, pd.DataFrame(rows))
