"""Error figures of each path of an activation: native op, modules, fast path.

:func:`path_errors` evaluates f and f' (through autograd, with a unit output gradient)
in float32 on a dense sweep and compares them with the catalog's float64 values (which
``tests/catalog/test_derivatives.py`` checks against a 40-digit mpmath reference).

The relative error is measured beyond the inputs' own rounding, as the catalog's tests
do: ``|got - ref| / (|ref| + A)``, where ``A`` is how much the float64 value changes when
``x`` moves by 4 float32 epsilons (relative), the catalog's allowance. Near a root of f'
the inputs' rounding alone makes a relative error of order 1, which says nothing about
the kernel; ``A`` removes it there and is negligible elsewhere.

Example:
    >>> e = path_errors("gelu", "native", lo=-3.0, hi=3.0, n=1001)
    >>> e.f < 1e-3
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from actlab.catalog import Activation, get

PATHS = ("native", "module", "precise", "fast", "fast_precise")


@dataclass
class PathError:
    """Largest relative errors (beyond input rounding) of f and f' on ``[lo, hi]``, and
    where they occur; ``abs_f``/``abs_d``: largest absolute errors."""

    name: str
    path: str
    lo: float
    hi: float
    f: float
    f_at: float
    d: float
    d_at: float
    abs_f: float
    abs_d: float


def _callable(act: Activation, path: str) -> Callable[[Tensor], Tensor] | None:
    if path == "native":
        return act.native_fn
    if path == "module":
        return act.module()
    if path == "precise":
        return act.module(precise=True)
    if path == "fast":
        return act.module(fast=True)
    if path == "fast_precise":
        return act.module(fast=True, precise=True)
    raise ValueError(f"unknown path {path!r}; accepted: {', '.join(PATHS)}")


def _allowance(fn: Callable[[Tensor], Tensor], x: Tensor, ref: Tensor) -> Tensor:
    delta = 4 * torch.finfo(torch.float32).eps
    return torch.maximum((fn(x * (1 + delta)) - ref).abs(), (fn(x * (1 - delta)) - ref).abs())


def path_errors(
    activation: str | Activation, path: str, *, lo: float = -10.0, hi: float = 10.0,
    n: int = 200_001,
) -> PathError | None:
    """Errors of one path of a (non-gated) activation on ``n`` float32 points in
    ``[lo, hi]``; ``None`` when the activation has no such path (no native op)."""
    act = get(activation)
    if act.gated:
        raise ValueError(f"{act.name} is gated; path_errors takes element-wise activations")
    fn = _callable(act, path)
    if fn is None:
        return None
    x = torch.linspace(lo, hi, n, dtype=torch.float32)
    x64 = x.double()
    ref_f, ref_d = act(x64), act.derivative(x64)
    xr = x.clone().requires_grad_(True)
    y = fn(xr)
    (g,) = torch.autograd.grad(y, xr, torch.ones_like(y))
    out = []
    for got, ref, exact in ((y.detach(), ref_f, act), (g, ref_d, act.derivative)):
        err = (got.double() - ref).abs()
        rel = err / (ref.abs() + _allowance(exact, x64, ref))
        rel = torch.where(torch.isfinite(rel), rel, torch.zeros_like(rel))
        i = int(rel.argmax())
        out.append((float(rel[i]), float(x[i]), float(err.max())))
    (f, f_at, abs_f), (d, d_at, abs_d) = out
    return PathError(act.name, path, lo, hi, f, f_at, d, d_at, abs_f, abs_d)
