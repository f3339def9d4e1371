"""User activations from a formula string, parsed by a whitelist (never ``eval``).

The text is parsed with :func:`ast.parse` and every node is checked against a short
whitelist: the variable ``x``, named parameters, the constants ``pi`` and ``e``, numbers,
``+ - * / **``, unary minus, one comparison inside ``where(...)``, and calls of the
functions in :data:`FUNCTIONS`. The checked tree is turned into a closure over torch ops;
no user text is ever executed. The derivative is exact (autograd of that closure).

Example:
    >>> mish = actlab.formula("x * tanh(softplus(x))", name="my_mish")
    >>> swish = actlab.formula("x * sigmoid(beta * x)", beta=1.0)
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from actlab.catalog.activation import Activation, finite_float
from actlab.catalog.spec import ActivationSpec

MAX_LENGTH = 500
MAX_NODES = 200
MAX_DEPTH = 32
MAX_EXPONENT = 64.0
MAX_LITERAL = 1e6
CONSTANTS = {"pi": math.pi, "e": math.e}


def _scalar(v: Any) -> Tensor:
    """A number as a 0-dim float64 tensor.

    Every constant and parameter is a tensor, so that arithmetic follows torch rules
    (``1/0`` is inf, ``(-8) ** (1/3)`` is nan, overflow is inf) instead of raising
    Python exceptions or turning complex; 0-dim tensors never change x's dtype.
    """
    return v if isinstance(v, Tensor) else torch.tensor(float(v), dtype=torch.float64)


def _unary(fn: Callable[[Tensor], Tensor]) -> Callable[[Any], Tensor]:
    return lambda a: fn(_scalar(a))


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Any, Any], Tensor]:
    return lambda a, b: fn(_scalar(a), _scalar(b))


def _where(cond: Any, a: Any, b: Any) -> Tensor:
    return torch.where(_scalar(cond).bool(), _scalar(a), _scalar(b))


def _clamp(x: Any, lo: Any, hi: Any) -> Tensor:
    return torch.clamp(_scalar(x), float(lo), float(hi))


#: function name -> (arity, implementation)
FUNCTIONS: dict[str, tuple[int, Callable[..., Tensor]]] = {
    "exp": (1, _unary(torch.exp)),
    "expm1": (1, _unary(torch.expm1)),
    "log": (1, _unary(torch.log)),
    "log1p": (1, _unary(torch.log1p)),
    "sqrt": (1, _unary(torch.sqrt)),
    "abs": (1, _unary(torch.abs)),
    "sign": (1, _unary(torch.sign)),
    "tanh": (1, _unary(torch.tanh)),
    "sigmoid": (1, _unary(torch.sigmoid)),
    "softplus": (1, _unary(F.softplus)),
    "relu": (1, _unary(torch.relu)),
    "erf": (1, _unary(torch.erf)),
    "erfc": (1, _unary(torch.erfc)),
    "sin": (1, _unary(torch.sin)),
    "cos": (1, _unary(torch.cos)),
    "atan": (1, _unary(torch.atan)),
    "sinh": (1, _unary(torch.sinh)),
    "cosh": (1, _unary(torch.cosh)),
    "min": (2, _binary(torch.minimum)),
    "max": (2, _binary(torch.maximum)),
    "where": (3, _where),
    "clamp": (3, _clamp),
}

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
}

Node = Callable[[dict[str, Any]], Any]


def _level(op: ast.operator) -> int:
    """Precedence level of a binary operator (+ - : 0, * / : 1, ** : 2)."""
    if isinstance(op, ast.Add | ast.Sub):
        return 0
    return 1 if isinstance(op, ast.Mult | ast.Div) else 2


class _Compiler:
    def __init__(self, text: str, params: dict[str, float]) -> None:
        self.text = text
        self.params = params
        self.nodes = 0

    def fail(self, why: str) -> ValueError:
        return ValueError(f"invalid formula {_show(self.text)}: {why}")

    def compile(self, node: ast.AST, depth: int = 0, condition: bool = False) -> Node:
        """Check ``node`` and return its evaluator; ``condition``: where()'s first argument."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(f"it is too long (more than {MAX_NODES} terms)")
        if depth > MAX_DEPTH:
            raise self.fail(f"it nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise self.fail(f"only numbers are allowed as constants, got {v!r}")
            if not math.isfinite(v) or abs(v) > MAX_LITERAL:
                raise self.fail(f"the number {v!r} is outside [-{MAX_LITERAL:g}, {MAX_LITERAL:g}]")
            tv = _scalar(v)
            return lambda env: tv
        if isinstance(node, ast.Name):
            name = node.id
            if name == "x":
                return lambda env: env["x"]
            if name in self.params:
                return lambda env: env[name]
            if name in CONSTANTS:
                c = _scalar(CONSTANTS[name])
                return lambda env: c
            allowed = ", ".join(["x", *sorted(self.params), *CONSTANTS])
            raise self.fail(
                f"unknown name {name!r}; allowed names: {allowed} (pass parameters as "
                "keyword arguments, e.g. formula('x * sigmoid(beta * x)', beta=1.0))"
            )
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub | ast.UAdd):
                raise self.fail(f"operator {type(node.op).__name__} is not allowed")
            inner = self.compile(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return lambda env: -inner(env)
            return inner
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.fail(
                    f"operator {type(node.op).__name__} is not allowed; use + - * / **"
                )
            if isinstance(node.op, ast.Pow):
                self._check_exponent(node.right)
            # a flat chain (x + x + ... + x) is left-nested in the AST: not deeper nesting
            chain = isinstance(node.left, ast.BinOp) and _level(node.left.op) == _level(node.op)
            left = self.compile(node.left, depth if chain else depth + 1)
            right = self.compile(node.right, depth + 1)
            if isinstance(node.op, ast.Pow) and _is_constant(node.right):
                # a Python exponent: torch (and the compiled fast path) special-case
                # x ** 2, x ** 3, x ** 0.5 ... instead of the general exp(e * log x)
                e = float(_constant_value(node.right))
                return lambda env: torch.pow(_scalar(left(env)), e)
            return lambda env: op(left(env), right(env))
        if isinstance(node, ast.Compare):
            if not condition:
                raise self.fail(
                    "comparisons are allowed only as the condition of where(cond, a, b)"
                )
            if len(node.ops) != 1:
                raise self.fail("chained comparisons are not allowed")
            cop = _CMPOPS.get(type(node.ops[0]))
            if cop is None:
                raise self.fail(f"comparison {type(node.ops[0]).__name__} is not allowed")
            left = self.compile(node.left, depth + 1)
            right = self.compile(node.comparators[0], depth + 1)
            return lambda env: cop(left(env), right(env))
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise self.fail("only calls of plain function names are allowed")
            fname = node.func.id
            if fname not in FUNCTIONS:
                raise self.fail(
                    f"unknown function {fname!r}; allowed: {', '.join(sorted(FUNCTIONS))}"
                )
            if node.keywords:
                raise self.fail(f"{fname}() takes no keyword arguments")
            arity, fn = FUNCTIONS[fname]
            if any(isinstance(a, ast.Starred) for a in node.args):
                raise self.fail("argument unpacking is not allowed")
            if len(node.args) != arity:
                raise self.fail(f"{fname}() takes {arity} argument(s), got {len(node.args)}")
            args = [
                self.compile(a, depth + 1, condition=(fname == "where" and i == 0))
                for i, a in enumerate(node.args)
            ]
            if fname == "clamp":
                for a in node.args[1:]:
                    if not _is_constant(a):
                        raise self.fail("clamp() bounds must be numbers")
            return lambda env: fn(*(a(env) for a in args))
        raise self.fail(f"{type(node).__name__} is not allowed in a formula")

    def _check_exponent(self, node: ast.AST) -> None:
        if _is_constant(node):
            v = _constant_value(node)
            if abs(v) > MAX_EXPONENT:
                raise self.fail(f"exponent {v:g} is too large (at most {MAX_EXPONENT:g})")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            raise self.fail("nested powers (a ** b ** c) are not allowed")


def _show(text: str, limit: int = 60) -> str:
    """``repr`` of (the start of) a formula, for one-line error messages."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _is_constant(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return _is_constant(node.operand)
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )


def _constant_value(node: ast.AST) -> float:
    if isinstance(node, ast.UnaryOp):
        v = _constant_value(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    assert isinstance(node, ast.Constant)
    return float(node.value)


def compile_formula(text: str, params: dict[str, float] | None = None) -> Callable[..., Tensor]:
    """Check ``text`` against the whitelist and return ``f(x, **params)`` on tensors."""
    if not isinstance(text, str):
        raise ValueError(f"a formula must be a string, got {type(text).__name__}")
    params = dict(params or {})
    src = text.strip()
    if src.lower().startswith("f(x)") and "=" in src:
        src = src.split("=", 1)[1].strip()
    if not src:
        raise ValueError(
            "invalid formula '': it is empty; write an expression in x, e.g. 'x * sigmoid(x)'"
        )
    if len(src) > MAX_LENGTH:
        raise ValueError(
            f"invalid formula {_show(src)}: it is {len(src)} characters long "
            f"(at most {MAX_LENGTH})"
        )
    if not src.isascii():
        bad = next(c for c in src if not c.isascii())
        raise ValueError(
            f"invalid formula {_show(src)}: it contains the non-ASCII character {bad!r}; "
            "write it with ASCII letters, digits and + - * / ** ( ) ,"
        )
    for p in params:
        reserved = p == "x" or p in FUNCTIONS or p in CONSTANTS
        if not p.isidentifier() or p.startswith("_") or reserved:
            raise ValueError(
                f"invalid parameter name {p!r} for a formula; use an identifier that is not "
                "x, a function name or a constant (pi, e) and does not start with '_'"
            )
    try:
        with warnings.catch_warnings():  # e.g. SyntaxWarning for '1if x else 2': we explain
            warnings.simplefilter("ignore")
            tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(
            f"invalid formula {_show(text)}: it is not a valid Python-style expression "
            f"({exc.__class__.__name__})"
        ) from None
    compiled = _Compiler(text, params).compile(tree.body)

    def forward(x: Tensor, **kw: Any) -> Tensor:
        env = {k: _scalar(v) for k, v in kw.items()}
        env["x"] = x
        out = compiled(env)
        if out.shape != x.shape:  # a formula that does not use x: one value per input
            out = out + torch.zeros_like(x)
        return out if out.dtype == x.dtype else out.to(x.dtype)

    return forward


def _param_values(text: str, params: dict[str, Any]) -> dict[str, float]:
    values: dict[str, float] = {}
    for key, value in params.items():
        number = finite_float(value)
        if number is None:
            raise ValueError(
                f"formula {_show(str(text))}: parameter {key}={value!r} must be a finite number"
            )
        values[key] = number
    return values


def formula(
    text: str, name: str | None = None, *, learn: list[str] | None = None, **params: float
) -> Activation:
    """An activation from a formula in ``x``, e.g. ``"x * tanh(softplus(x))"``.

    Args:
        text: the expression; allowed: ``x``, parameters, ``pi``, ``e``, numbers,
            ``+ - * / **``, comparisons inside ``where``, and the functions in
            :data:`FUNCTIONS` (exp, log, log1p, sqrt, abs, tanh, sigmoid, softplus,
            erf, sin, cos, min, max, where, ...).
        name: a name for the registry and reports (default: the text).
        learn: parameters that ``module()`` makes learnable.
        **params: parameter values used in the text, e.g. ``beta=1.0``.

    Raises:
        ValueError: for anything outside the whitelist, naming what was wrong.
    """
    values = _param_values(text, params)
    fn = compile_formula(text, values)
    # check that it evaluates, and to a floating tensor of the input's shape
    probe = torch.linspace(-3.0, 3.0, 7, dtype=torch.float64)
    try:
        out = fn(probe, **values)
    except (RuntimeError, TypeError, ArithmeticError) as exc:
        raise ValueError(
            f"invalid formula {_show(text)}: it does not evaluate ({str(exc).splitlines()[0]})"
        ) from None
    if not isinstance(out, Tensor) or out.shape != probe.shape or not out.is_floating_point():
        raise ValueError(f"invalid formula {_show(text)}: it must give one number per input")
    spec = ActivationSpec(
        name=name or text.strip(),
        forward=fn,
        derivative=None,
        family="custom",
        formula=f"f(x) = {text.strip()}",
        reference="user formula",
        params=values,
        learnable=tuple(params),
        builtin=False,
        source=text.strip(),
    )
    return Activation(spec, learn=learn or ())
