"""Shared data and helpers for the catalog tests: the activations x hyper-parameters to
test, the test points, precision tolerances, and a guard that proves nothing executes."""

from __future__ import annotations

import ast
import builtins
import contextlib
import os
import subprocess
from typing import Any

import pytest
import torch

import actlab

#: every built-in activation with its default parameters
BUILTINS: list[str] = actlab.names(builtin_only=True)

#: non-default hyper-parameters (each also tested everywhere the defaults are)
NON_DEFAULT: list[tuple[str, dict[str, float]]] = [
    ("leaky_relu", {"alpha": 0.2}),
    ("prelu", {"alpha": 0.1}),
    ("elu", {"alpha": 0.5}),
    ("elu", {"alpha": 2.0}),
    ("celu", {"alpha": 2.0}),
    ("softplus", {"beta": 2.0}),
    ("softplus", {"beta": 0.5, "threshold": 5.0}),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}),
    ("silu", {"beta": 1.7}),
    ("snake", {"alpha": 0.5}),
    ("sine", {"w0": 30.0}),
    ("smelu", {"beta": 0.5}),
    ("isru", {"alpha": 0.3}),
    ("isrlu", {"alpha": 2.0}),
    ("rrelu", {"lower": 0.1, "upper": 0.2}),
    ("threshold", {"threshold": 0.5, "value": -1.0}),
    ("softshrink", {"lambd": 1.0}),
    ("hardshrink", {"lambd": 0.25}),
    # the recent learnable ones away from their initial values
    ("xielu", {"a_p": 1.0, "a_n": 0.0, "beta": 0.25, "eps": 0.0}),
    ("star_relu", {"s": 1.0, "b": 0.0}),  # the MetaFormer code's defaults
    # PAU initialised to leaky ReLU with slope 0.1 (rational_activations' version A 5/4 fit,
    # github.com/ml-research/rational_activations, rational/rationals_config.json)
    ("pau", {"a0": 0.028001623256966722, "a1": 0.6356606448768645, "a2": 1.9230178392192485,
             "a3": 2.96752700768763, "a4": 1.1911336843997844, "a5": 0.23922607056505849,
             "b1": -0.7802079437303349, "b2": 4.278190623059944, "b3": 0.5865922075979962,
             "b4": 0.33447021316466974}),
    ("dyt", {"alpha": 2.0, "gamma": 0.5, "beta": 0.1}),
]

CASES: list[tuple[str, dict[str, float]]] = [(n, {}) for n in BUILTINS] + NON_DEFAULT


def case_id(case: tuple[str, dict[str, float]]) -> str:
    name, params = case
    return name + ("[" + ",".join(f"{k}={v:g}" for k, v in params.items()) + "]" if params else "")


def cases(gated: bool | None = None) -> list[Any]:
    """``pytest.param`` s of (name, params), optionally only (non-)gated ones."""
    out = []
    for c in CASES:
        if gated is None or actlab.get(c[0]).gated == gated:
            out.append(pytest.param(c, id=case_id(c)))
    return out


#: the points the issue names, then seeded random ones (normal, wide uniform, log-uniform)
EXTREMES: list[float] = [0.0, 1e-8, -1e-8, 1.0, -1.0, 3.0, -3.0, 30.0, -30.0, 88.0, -88.0]
EXTREMES += [1e4, -1e4]


def _random_points(n: int = 16) -> list[float]:
    g = torch.Generator().manual_seed(20240611)
    normal = torch.randn(n, generator=g, dtype=torch.float64) * 4.0
    wide = (torch.rand(n // 2, generator=g, dtype=torch.float64) - 0.5) * 200.0
    mag = 10.0 ** (torch.rand(n // 2, generator=g, dtype=torch.float64) * 9.0 - 6.0)
    sign = torch.where(torch.rand(n // 2, generator=g) < 0.5, -1.0, 1.0).double()
    return (normal.tolist() + wide.tolist() + (mag * sign).tolist())


POINTS: list[float] = EXTREMES + _random_points()


def points(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(POINTS, dtype=torch.float64).to(dtype)


def gated_halves(x: torch.Tensor, shift: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Value half ``a`` = the points, gate half ``b`` = the points rotated (all pairs vary)."""
    return x, x.roll(shift)


def gated_input(x: torch.Tensor, shift: int = 7) -> torch.Tensor:
    """Rows ``[a_i, b_i]`` for a gated activation (last dimension 2)."""
    a, b = gated_halves(x, shift)
    return torch.stack([a, b], dim=-1)


def near_kink(act: actlab.Activation, x: torch.Tensor, width: torch.Tensor | float) -> torch.Tensor:
    """Mask of the points within ``width`` of a point where f' jumps."""
    mask = torch.zeros_like(x, dtype=torch.bool)
    for k in act.spec.kinks(**act.params):
        mask |= (x - k).abs() <= width
    return mask


def finite_within(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Mask of reference values that are finite and representable in ``dtype``."""
    return torch.isfinite(values) & (values.abs() <= torch.finfo(dtype).max)


def get(case: tuple[str, dict[str, float]]) -> actlab.Activation:
    return actlab.get(case[0], **case[1])


def allowance(fn, x: torch.Tensor, gated: bool, delta: float) -> torch.Tensor:
    """How much ``fn`` (float64) changes when its inputs move by a relative ``delta``.

    An answer computed in a lower precision is as good as possible when it is within
    this of the float64 value: it is the error of rounding the inputs themselves
    (large near a root of f' or a kink, tiny in smooth tails).
    """
    ref = fn(x)
    total = torch.zeros_like(ref)
    groups = [[0], [1]] if gated else [None]
    for cols in groups:
        worst = torch.zeros_like(ref)
        for sign in (1.0, -1.0):
            scale = torch.ones_like(x)
            if cols is None:
                scale += sign * delta
            else:
                scale[..., cols] += sign * delta
            worst = torch.maximum(worst, (fn(x * scale) - ref).abs())
        total += worst
    return total


def underflow_floor(dtype: torch.dtype) -> float:
    """Results this small may be lost to gradual underflow of an intermediate value.

    E.g. in float32 ``sigmoid(-89)`` (2e-39) is subnormal or 0, so ``silu(-89)`` (-2e-37)
    comes out as 0; harmless, and the same as the native op. (Times max(1, |x|): such a
    value may then be multiplied by x, or by the value half of a gated activation.)
    """
    tiny = torch.finfo(dtype).tiny
    return 4 * tiny if dtype == torch.float16 else 1e3 * tiny


def assert_accurate(act, x: torch.Tensor, rtol: float) -> None:
    """``act`` in ``x.dtype`` is within ``rtol`` of float64, beyond the inputs' rounding."""
    dtype = x.dtype
    x64 = x.double()
    eps32 = torch.finfo(torch.float32).eps
    for label, fn in (("f", act), ("f'", act.derivative)):
        ref = fn(x64)
        got = fn(x).double()
        keep = finite_within(ref, dtype)
        # half precision is computed in float32 and rounded: eps32 input noise, eps(dtype) output
        tol = rtol * ref.abs() + allowance(fn, x64, act.gated, 4 * eps32)
        scale = x64.abs().amax(-1, keepdim=True) if act.gated else x64.abs()
        tol += underflow_floor(dtype) * scale.clamp(min=1.0)
        err = (got - ref).abs()
        bad = keep & (err > tol)
        assert not bad.any(), (
            f"{act.name} {label} {dtype}: x={x64[bad.any(-1) if act.gated else bad].tolist()} "
            f"got={got[bad].tolist()} ref={ref[bad].tolist()}"
        )


@contextlib.contextmanager
def nothing_executes(calls: list[str]):
    """Record (and stop) any call of eval, exec, open, __import__, os.system, a subprocess,
    or a compilation to code while the block runs.

    ``ast.parse`` is allowed: it calls ``compile`` with ``PyCF_ONLY_AST``, which builds a
    tree and runs nothing.
    """
    real_compile = builtins.compile

    def spy(name):
        def call(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called")

        return call

    def checked_compile(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            calls.append("compile")
            raise AssertionError("compile to code was called")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    # patched by hand: pytest's MonkeyPatch itself imports modules while patching
    patches = [(builtins, n, spy(n)) for n in ("eval", "exec", "open", "__import__")]
    patches += [(builtins, "compile", checked_compile), (os, "system", spy("os.system"))]
    patches += [(subprocess, "Popen", spy("subprocess.Popen"))]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)
