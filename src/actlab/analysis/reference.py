"""High-precision reference values of activations, independent of their torch code.

A reference is a formula text (the same whitelisted language as :func:`actlab.formula`)
evaluated with mpmath at 40 significant digits, with exact exponent range (``exp(1000)`` is
finite), on second-order jets: each value carries its first and second derivatives with
respect to the inputs (forward-mode automatic differentiation), so f, f' and f'' are exact
to the working precision at every point.

* built-ins: :data:`REFERENCE_FORMULAS`, the textbook definition of each activation written
  from its paper (in forms that mpmath evaluates without cancellation at 40 digits, e.g.
  ``erfc`` rather than ``1 + erf``; these are still the plain mathematical definitions,
  none of the float tricks of the torch code);
* formula activations: their own text, evaluated exactly as written (a naive
  ``1 / (1 + exp(-x))`` is exact in mpmath, so instabilities of the float evaluation show).

``softplus`` in a formula follows ``torch.nn.functional.softplus`` (x itself above 20).
At non-smooth points met exactly (relu at 0, ``where`` at equality) the point is flagged,
so that derivative checks skip it (one-sided derivatives are a convention there).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from typing import Any

import mpmath
from mpmath import mp, mpf

from actlab.catalog import Activation

DPS = 40
NAN = mpf("nan")

#: textbook definitions of the built-in activations (variables x, or a and b when gated)
REFERENCE_FORMULAS: dict[str, str] = {
    "identity": "x",
    "sigmoid": "1 / (1 + exp(-x))",
    "tanh": "tanh(x)",
    "hardsigmoid": "min(max(x + 3, 0), 6) / 6",
    "logsigmoid": "-log1p(exp(-x))",
    "hardtanh": "min(max(x, min_val), max_val)",
    "softsign": "x / (1 + abs(x))",
    "arctan": "atan(x)",
    "isru": "x / sqrt(1 + alpha * x**2)",
    "relu": "max(x, 0)",
    "leaky_relu": "where(x > 0, x, alpha * x)",
    "prelu": "where(x > 0, x, alpha * x)",
    "rrelu": "where(x >= 0, x, (lower + upper) / 2 * x)",
    "relu6": "min(max(x, 0), 6)",
    "threshold": "where(x > threshold, x, value)",
    "squared_relu": "max(x, 0)**2",
    "elu": "where(x > 0, x, alpha * expm1(x))",
    "selu": "1.0507009873554804934193349852946 * where(x > 0, x, "
    "1.6732632423543772848170429916717 * expm1(x))",
    "celu": "where(x > 0, x, alpha * expm1(x / alpha))",
    "isrlu": "where(x >= 0, x, x / sqrt(1 + alpha * x**2))",
    "elish": "where(x >= 0, x, expm1(x)) / (1 + exp(-x))",
    "gelu": "x / 2 * erfc(-x / sqrt(2))",
    "gelu_tanh": "x / (1 + exp(-2 * sqrt(2 / pi) * (x + 0.044715 * x**3)))",
    "quick_gelu": "x / (1 + exp(-1.702 * x))",
    "silu": "x / (1 + exp(-beta * x))",
    "mish": "x * tanh(log1p(exp(x)))",
    "hardswish": "x * min(max(x + 3, 0), 6) / 6",
    "serf": "x * erf(log1p(exp(x)))",
    "tanhexp": "x * tanh(exp(x))",
    "lisht": "x * tanh(x)",
    "smelu": "where(x >= beta, x, where(x <= -beta, 0, (x + beta)**2 / (4 * beta)))",
    "softplus": "where(beta * x > threshold, x, log1p(exp(beta * x)) / beta)",
    "tanhshrink": "x - tanh(x)",
    "softshrink": "where(x > lambd, x - lambd, where(x < -lambd, x + lambd, 0))",
    "hardshrink": "where(abs(x) > lambd, x, 0)",
    "bent_identity": "(sqrt(x**2 + 1) - 1) / 2 + x",
    "gaussian": "exp(-x**2)",
    "sine": "sin(w0 * x)",
    "snake": "x + sin(alpha * x)**2 / alpha",
    "xielu": "where(x > 0, log1p(exp(a_p)) * x**2 + beta * x, "
    "(beta + log1p(exp(a_n))) * (expm1(min(x, eps)) - x) + beta * x)",
    "star_relu": "s * max(x, 0)**2 + b",
    "pau": "(a0 + a1 * x + a2 * x**2 + a3 * x**3 + a4 * x**4 + a5 * x**5) / (1 + abs(b1 * x) "
    "+ abs(b2 * x**2) + abs(b3 * x**3) + abs(b4 * x**4))",
    "dyt": "gamma * tanh(alpha * x) + beta",
    "glu": "a / (1 + exp(-b))",
    "reglu": "a * max(b, 0)",
    "geglu": "a * b / 2 * erfc(-b / sqrt(2))",
    "swiglu": "a * b / (1 + exp(-b))",
    "bilinear": "a * b",
}


class Jet:
    """A value with its gradient and Hessian with respect to n input variables."""

    __slots__ = ("g", "h", "v")

    def __init__(self, v: Any, g: Sequence[Any], h: Sequence[Sequence[Any]]) -> None:
        self.v, self.g, self.h = v, list(g), [list(r) for r in h]

    @staticmethod
    def const(c: Any, n: int) -> Jet:
        z = [mpf(0)] * n
        return Jet(mpf(c), z, [z] * n)

    @staticmethod
    def var(x: Any, i: int, n: int) -> Jet:
        z = [mpf(0)] * n
        g = list(z)
        g[i] = mpf(1)
        return Jet(mpf(x), g, [z] * n)

    def unary(self, f0: Any, f1: Any, f2: Any) -> Jet:
        """phi(self) given phi, phi', phi'' at self.v (the chain rule to second order)."""
        n = len(self.g)
        g = [f1 * gi for gi in self.g]
        h = [[f2 * self.g[i] * self.g[j] + f1 * self.h[i][j] for j in range(n)] for i in range(n)]
        return Jet(f0, g, h)

    def __add__(self, o: Jet) -> Jet:
        n = len(self.g)
        return Jet(
            self.v + o.v,
            [self.g[i] + o.g[i] for i in range(n)],
            [[self.h[i][j] + o.h[i][j] for j in range(n)] for i in range(n)],
        )

    def __neg__(self) -> Jet:
        return self.unary(-self.v, mpf(-1), mpf(0))

    def __sub__(self, o: Jet) -> Jet:
        return self + (-o)

    def __mul__(self, o: Jet) -> Jet:
        n = len(self.g)
        a, b = self, o
        return Jet(
            a.v * b.v,
            [a.g[i] * b.v + a.v * b.g[i] for i in range(n)],
            [
                [
                    a.h[i][j] * b.v + a.g[i] * b.g[j] + a.g[j] * b.g[i] + a.v * b.h[i][j]
                    for j in range(n)
                ]
                for i in range(n)
            ],
        )

    def is_const(self) -> bool:
        return all(gi == 0 for gi in self.g) and all(v == 0 for r in self.h for v in r)


class Flags:
    """Per-point evaluation state: whether a non-smooth point was hit exactly."""

    def __init__(self) -> None:
        self.kink = False


def _nan_jet(n: int) -> Jet:
    return Jet(NAN, [NAN] * n, [[NAN] * n] * n)


def _recip(u: Jet) -> Jet:
    if u.v == 0:
        return _nan_jet(len(u.g))
    r = 1 / u.v
    return u.unary(r, -r * r, 2 * r * r * r)


def _sig(u: Any) -> Any:
    return 1 / (1 + mp.exp(-u))


def _sig_prime(u: Any) -> Any:
    return _sig(u) * _sig(-u)


def _pow(a: Jet, b: Jet) -> Jet:
    n = len(a.g)
    if b.is_const():
        c = b.v
        integer = c == int(c)
        if a.v < 0 and not integer:
            return _nan_jet(n)
        if a.v == 0 and c < 2:
            return (
                _nan_jet(n)
                if c < 0 or (not integer and c < 1)
                else a.unary(a.v**c, c * a.v ** (c - 1) if c >= 1 else NAN, NAN)
            )
        return a.unary(a.v**c, c * a.v ** (c - 1), c * (c - 1) * a.v ** (c - 2))
    if a.v <= 0:
        return _nan_jet(n)
    return _exp(b * _log(a))


def _exp(u: Jet) -> Jet:
    e = mp.exp(u.v)
    return u.unary(e, e, e)


def _log(u: Jet) -> Jet:
    if u.v <= 0:
        return _nan_jet(len(u.g))
    return u.unary(mp.log(u.v), 1 / u.v, -1 / u.v**2)


def _fn_table(flags: Flags) -> dict[str, Callable[..., Jet]]:
    """The formula functions on jets (same names and semantics as the torch ones)."""

    def kink(cond: bool) -> None:
        if cond:
            flags.kink = True

    def expm1(u: Jet) -> Jet:
        e = mp.exp(u.v)
        return u.unary(mp.expm1(u.v), e, e)

    def log1p(u: Jet) -> Jet:
        if u.v <= -1:
            return _nan_jet(len(u.g))
        d = 1 / (1 + u.v)
        return u.unary(mp.log1p(u.v), d, -d * d)

    def sqrt(u: Jet) -> Jet:
        if u.v < 0:
            return _nan_jet(len(u.g))
        if u.v == 0:
            kink(True)
            return u.unary(mpf(0), mp.inf, -mp.inf)
        r = mp.sqrt(u.v)
        return u.unary(r, 1 / (2 * r), -1 / (4 * r * u.v))

    def absf(u: Jet) -> Jet:
        kink(u.v == 0)
        return u.unary(abs(u.v), mp.sign(u.v), mpf(0))

    def sign(u: Jet) -> Jet:
        kink(u.v == 0)
        return u.unary(mp.sign(u.v), mpf(0), mpf(0))

    def tanh(u: Jet) -> Jet:
        t, s2 = mp.tanh(u.v), mp.sech(u.v) ** 2
        return u.unary(t, s2, -2 * t * s2)

    def sigmoid(u: Jet) -> Jet:
        sp = _sig_prime(u.v)
        return u.unary(_sig(u.v), sp, -sp * mp.tanh(u.v / 2))

    def softplus(u: Jet) -> Jet:  # torch.nn.functional.softplus: beta=1, threshold=20
        if u.v > 20:
            return u.unary(u.v, mpf(1), mpf(0))
        kink(u.v == 20)
        sp = _sig_prime(u.v)
        return u.unary(mp.log1p(mp.exp(u.v)), _sig(u.v), sp)

    def relu(u: Jet) -> Jet:
        kink(u.v == 0)
        if u.v > 0:
            return u.unary(u.v, mpf(1), mpf(0))
        return u.unary(mpf(0), mpf(0), mpf(0))

    def erf(u: Jet) -> Jet:
        d = 2 / mp.sqrt(mp.pi) * mp.exp(-(u.v**2))
        return u.unary(mp.erf(u.v), d, -2 * u.v * d)

    def erfc(u: Jet) -> Jet:
        d = -2 / mp.sqrt(mp.pi) * mp.exp(-(u.v**2))
        return u.unary(mp.erfc(u.v), d, -2 * u.v * d)

    def sin(u: Jet) -> Jet:
        s, c = mp.sin(u.v), mp.cos(u.v)
        return u.unary(s, c, -s)

    def cos(u: Jet) -> Jet:
        s, c = mp.sin(u.v), mp.cos(u.v)
        return u.unary(c, -s, -c)

    def atan(u: Jet) -> Jet:
        d = 1 / (1 + u.v**2)
        return u.unary(mp.atan(u.v), d, -2 * u.v * d * d)

    def sinh(u: Jet) -> Jet:
        return u.unary(mp.sinh(u.v), mp.cosh(u.v), mp.sinh(u.v))

    def cosh(u: Jet) -> Jet:
        return u.unary(mp.cosh(u.v), mp.sinh(u.v), mp.cosh(u.v))

    def minf(a: Jet, b: Jet) -> Jet:
        kink(a.v == b.v)
        return a if a.v <= b.v else b

    def maxf(a: Jet, b: Jet) -> Jet:
        kink(a.v == b.v)
        return a if a.v >= b.v else b

    def where(c: Any, a: Jet, b: Jet) -> Jet:
        cond = c if isinstance(c, bool) else c.v != 0
        return a if cond else b

    def clamp(x: Jet, lo: Jet, hi: Jet) -> Jet:
        return minf(maxf(x, lo), hi)

    return {
        "exp": _exp, "expm1": expm1, "log": _log, "log1p": log1p, "sqrt": sqrt, "abs": absf,
        "sign": sign, "tanh": tanh, "sigmoid": sigmoid, "softplus": softplus, "relu": relu,
        "erf": erf, "erfc": erfc, "sin": sin, "cos": cos, "atan": atan, "sinh": sinh,
        "cosh": cosh, "min": minf, "max": maxf, "where": where, "clamp": clamp,
    }  # fmt: skip


_BIN = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a * _recip(b),
    ast.Pow: _pow,
}
_CMP = {
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
}


class ReferenceFormula:
    """A formula compiled for exact evaluation on jets.

    Args:
        text: the formula (``x``, or ``a`` and ``b`` for gated activations).
        variables: the input names, e.g. ``("x",)`` or ``("a", "b")``.
        params: parameter values.

    Example:
        >>> ReferenceFormula("x * tanh(softplus(x))").evaluate([1.0])[0]  # (f, f', f'')
    """

    def __init__(
        self, text: str, variables: Sequence[str] = ("x",), params: dict[str, float] | None = None
    ) -> None:
        src = text.strip()
        if src.lower().startswith("f(") and "=" in src:
            src = src.split("=", 1)[1].strip()
        self.text = src
        self.variables = tuple(variables)
        self.params = {k: float(v) for k, v in (params or {}).items()}
        self.tree = ast.parse(src, mode="eval").body
        self._check(self.tree)

    def _check(self, node: ast.AST) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and (
                not isinstance(sub.func, ast.Name) or sub.func.id not in _FUNCTION_NAMES
            ):
                raise ValueError(f"reference formula {self.text!r}: unsupported call")
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                ok = sub.id in self.variables or sub.id in self.params or sub.id in ("pi", "e")
                if not ok and sub.id not in _FUNCTION_NAMES:
                    raise ValueError(f"reference formula {self.text!r}: unknown name {sub.id!r}")

    def _eval(self, node: ast.AST, env: dict[str, Jet], fns: dict[str, Any], n: int) -> Any:
        if isinstance(node, ast.Constant):
            return Jet.const(mpf(float(node.value)), n)
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            if node.id in self.params:
                return Jet.const(mpf(self.params[node.id]), n)
            return Jet.const(mp.pi if node.id == "pi" else mp.e, n)
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, env, fns, n)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            a = self._eval(node.left, env, fns, n)
            b = self._eval(node.right, env, fns, n)
            return _BIN[type(node.op)](a, b)
        if isinstance(node, ast.Compare):
            a = self._eval(node.left, env, fns, n)
            b = self._eval(node.comparators[0], env, fns, n)
            if a.v == b.v:
                fns["__flags__"].kink = True
            return bool(_CMP[type(node.ops[0])](a.v, b.v))
        if isinstance(node, ast.Call):
            args = [self._eval(a, env, fns, n) for a in node.args]
            return fns[node.func.id](*args)
        raise ValueError(f"reference formula {self.text!r}: {type(node).__name__} not supported")

    def evaluate(self, point: Sequence[float]) -> tuple[Jet, bool]:
        """``(jet, at_kink)`` at one input point (one value per variable)."""
        n = len(self.variables)
        flags = Flags()
        fns: dict[str, Any] = _fn_table(flags)
        fns["__flags__"] = flags
        with mp.workdps(DPS):
            env = {
                v: Jet.var(mpf(float(p)), i, n)
                for i, (v, p) in enumerate(zip(self.variables, point, strict=True))
            }
            try:
                out = self._eval(self.tree, env, fns, n)
            except (
                ZeroDivisionError,
                ValueError,
                OverflowError,
                mpmath.libmp.libhyper.NoConvergence,
            ):
                out = _nan_jet(n)
        if isinstance(out, bool):
            out = Jet.const(mpf(int(out)), n)
        return out, flags.kink


_FUNCTION_NAMES = frozenset(_fn_table(Flags()))


def reference_for(act: Activation) -> ReferenceFormula | None:
    """The high-precision reference of an activation, or ``None`` if there is none
    (user callables, and built-ins added without a reference formula)."""
    variables = ("a", "b") if act.gated else ("x",)
    if act.spec.source is not None:
        if act.gated:
            return None
        try:
            return ReferenceFormula(act.spec.source, variables, act.params)
        except (ValueError, SyntaxError):
            return None
    if act.spec.builtin and act.name in REFERENCE_FORMULAS:
        return ReferenceFormula(REFERENCE_FORMULAS[act.name], variables, act.params)
    return None
