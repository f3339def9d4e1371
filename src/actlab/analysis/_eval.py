"""Float64 NumPy views of an activation: f and f' on arrays, for every kind of activation.

Gated activations (GLU family) take two inputs ``(a, b)``: :class:`Evaluator` gives
``f(a, b)`` and the two partials; for one-dimensional scans it restricts them to a line
(``"diag"``: a = b = x, as in the plots; ``"a"``: b = 1; ``"b"``: a = 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from actlab.catalog import Activation, get

Array = np.ndarray


def resolve(activation: Any) -> Activation:
    """Anything :func:`actlab.get` accepts -> an :class:`Activation` (learning nothing)."""
    act = get(activation)
    return get(act, learn=()) if act.learn else act


class Evaluator:
    """f and f' of one activation on float64 NumPy arrays (computed with torch on CPU)."""

    def __init__(self, activation: Any) -> None:
        self.act = resolve(activation)
        self.gated = self.act.gated

    # ------------------------------------------------------------------ scalar activations
    def f(self, x: Array) -> Array:
        """f(x) element-wise (non-gated)."""
        t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        with torch.no_grad():
            return self.act(t).numpy()

    def df(self, x: Array) -> Array:
        """f'(x) element-wise (non-gated)."""
        t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        return self.act.derivative(t).numpy()

    # ------------------------------------------------------------------ gated activations
    def f2(self, a: Array, b: Array) -> Array:
        """f(a, b) element-wise (gated)."""
        t = torch.as_tensor(np.stack(np.broadcast_arrays(a, b), axis=-1).astype(np.float64))
        with torch.no_grad():
            return self.act(t)[..., 0].numpy()

    def df2(self, a: Array, b: Array) -> tuple[Array, Array]:
        """(df/da, df/db) element-wise (gated)."""
        t = torch.as_tensor(np.stack(np.broadcast_arrays(a, b), axis=-1).astype(np.float64))
        d = self.act.derivative(t).numpy()
        return d[..., 0], d[..., 1]

    # ------------------------------------------------------------------ 1-D restrictions
    def line(self, axis: str = "diag") -> tuple[Callable[[Array], Array], Callable[[Array], Array]]:
        """``(g, g')``: the activation restricted to a line, as functions of one variable.

        Non-gated activations ignore ``axis``. Gated ones: ``"diag"`` is x -> f(x, x) with
        the total derivative; ``"a"`` is x -> f(x, 1); ``"b"`` is x -> f(1, x).
        """
        if not self.gated:
            return self.f, self.df
        if axis == "diag":
            return (lambda x: self.f2(x, x)), (lambda x: sum(self.df2(x, x)))
        if axis == "a":
            return (lambda x: self.f2(x, np.ones_like(x))), (
                lambda x: self.df2(x, np.ones_like(x))[0]
            )
        if axis == "b":
            return (lambda x: self.f2(np.ones_like(x), x)), (
                lambda x: self.df2(np.ones_like(x), x)[1]
            )
        raise ValueError(f"axis must be 'diag', 'a' or 'b', got {axis!r}")
