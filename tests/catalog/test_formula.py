"""The formula parser: hostile or malformed text is rejected with a clear ``ValueError``
and nothing in it is executed; valid formulas match the built-in activations."""

from __future__ import annotations

import ast
import pickle

import pytest
import torch
from catalog_cases import nothing_executes

import actlab
from actlab.catalog.formula import MAX_LENGTH


def hostile(sentinel: str) -> list[str]:
    s = sentinel
    return [
        "import os",
        f"__import__('os').system('touch {s}')",
        "x.__class__",
        "x.__class__.__mro__[1].__subclasses__()",
        "__builtins__",
        "__import__",
        "lambda: 1",
        "(lambda y: y)(x)",
        "[y for y in range(3)]",
        "{y for y in x}",
        "sum(y for y in x)",
        "system(x)",
        "eval('1')",
        "exec('x = 1')",
        f"open('{s}', 'w')",
        "getattr(x, 'abs')()",
        "9**9**9",
        "x ** 9 ** 9",
        "x**1e9",
        "2 ** 1000",
        "",
        "   ",
        "'hello'",
        "b'bytes'",
        "f'{x}'",
        "(y := x)",
        "x[0]",
        "exp(x=1)",
        "exp(*x)",
        "max(**x)",
        "x; import os",
        "x\nimport os",
        f"x; open('{s}', 'w')",
        "x & 1",
        "x | 1",
        "~x",
        "x ^ 2",
        "x << 2",
        "x // 2",
        "x % 2",
        "x @ x",
        "not x",
        "x and 1",
        "x if x > 0 else 0",
        "x > 0",
        "where(x > 0 > -1, x, 0)",
        "where(x == 0, 1, x)",
        "True * x",
        "None",
        "1e400 * x",
        "1e7 * x",
        "1j * x",
        "(x, x)",
        "[x]",
        "{'a': x}",
        "await x",
        "yield x",
        "x.abs()",
        "sin(x, x)",
        "sin()",
        "pi(x)",
        "beta * x",
        "y",
        "e2",
        "clamp(x, x, 1)",
        "x +",
        "x \x00",
        "\uff58 * 2",  # fullwidth x: Python would normalise it to x
        "\u0445 + 1",  # Cyrillic x
        "x " + "+ x " * (MAX_LENGTH // 3),
        "-" * 100 + "x",
        "sin(" * 40 + "x" + ")" * 40,
        "(" * 240 + "x" + ")" * 240,
        "x" + "+x" * 240,
        "+".join(["(" + "+".join(["x"] * 16) + ")"] * 8),
    ]


HOSTILE = hostile("/nonexistent-sentinel")


def test_at_least_twenty_hostile_inputs():
    assert len(HOSTILE) >= 20


@pytest.mark.parametrize("text", HOSTILE, ids=[repr(t)[:40] for t in HOSTILE])
def test_hostile_or_malformed_formula_rejected(text):
    calls: list[str] = []
    with pytest.raises(ValueError) as info, nothing_executes(calls):
        actlab.formula(text)
    assert not calls
    msg = str(info.value)
    assert msg.startswith("invalid formula"), msg
    assert "\n" not in msg and len(msg) < 400, msg


def test_hostile_formulas_run_nothing(tmp_path):
    """A sentinel file that the hostile text would create is never created."""
    sentinel = tmp_path / "pwned"
    for text in hostile(str(sentinel)):
        with pytest.raises(ValueError):
            actlab.formula(text)
        with pytest.raises(ValueError):
            actlab.get("formula:" + text)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x.__class__", "Attribute is not allowed"),
        ("foo(x)", "unknown function 'foo'; allowed: abs, atan"),
        ("beta * x", "unknown name 'beta'; allowed names: x, pi, e"),
        ("x**1e9", "exponent 1e+09 is too large (at most 64)"),
        ("9**9**9", "nested powers"),
        ("", "it is empty"),
        ("'s'", "only numbers are allowed as constants"),
        ("x & 1", "operator BitAnd is not allowed; use + - * / **"),
        ("lambda: 1", "Lambda is not allowed"),
        ("x > 0", "comparisons are allowed only as the condition of where"),
        ("sin(x, x)", "sin() takes 1 argument(s), got 2"),
        ("exp(x=1)", "takes no keyword arguments"),
        ("x; import os", "not a valid Python-style expression"),
        ("\u0445 + 1", "non-ASCII character"),
        ("-" * 100 + "x", "nests deeper than 32 levels"),
        ("+".join(["(" + "+".join(["x"] * 16) + ")"] * 8), "too long (more than 200 terms)"),
        ("x " + "+ x " * 200, "characters long (at most 500)"),
    ],
)
def test_error_messages_say_what_is_wrong(text, fragment):
    with pytest.raises(ValueError) as info:
        actlab.formula(text)
    assert fragment in str(info.value)


def test_bad_formula_arguments():
    with pytest.raises(ValueError, match="must be a string"):
        actlab.formula(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid parameter name 'exp'"):
        actlab.formula("x * exp", exp=1.0)
    with pytest.raises(ValueError, match="invalid parameter name '_b'"):
        actlab.formula("x * _b", _b=1.0)
    with pytest.raises(ValueError, match=r"parameter beta='a' must be a finite number"):
        actlab.formula("x * beta", beta="a")
    with pytest.raises(ValueError, match="finite number"):
        actlab.formula("x * beta", beta=float("inf"))
    with pytest.raises(ValueError, match="cannot learn gamma"):
        actlab.formula("x * beta", beta=1.0, learn=["gamma"])


# ------------------------------------------------------------------------------ valid formulas
X = torch.cat([torch.linspace(-20, 20, 81), torch.tensor([-1e-8, 1e-8, 0.0])]).double()


@pytest.mark.parametrize(
    ("text", "params", "builtin", "builtin_params"),
    [
        ("x * tanh(softplus(x))", {}, "mish", {}),
        ("x * sigmoid(beta * x)", {"beta": 1.0}, "silu", {}),
        ("x * sigmoid(beta * x)", {"beta": 1.7}, "silu", {"beta": 1.7}),
        ("f(x) = x / (1 + abs(x))", {}, "softsign", {}),
        ("max(x, 0)", {}, "relu", {}),
        ("min(max(x, lo), hi)", {"lo": -2.0, "hi": 0.5}, "hardtanh",
         {"min_val": -2.0, "max_val": 0.5}),
        ("clamp(x, 0, 6)", {}, "relu6", {}),
        ("where(x > 0, x, alpha * x)", {"alpha": 0.2}, "leaky_relu", {"alpha": 0.2}),
        ("where(x > 0, x, alpha * expm1(x))", {"alpha": 0.5}, "elu", {"alpha": 0.5}),
        ("x * 0.5 * (1 + erf(x / sqrt(2)))", {}, "gelu", {}),
        ("x * tanh(x)", {}, "lisht", {}),
        ("exp(-x ** 2)", {}, "gaussian", {}),
        ("x + sin(a * x) ** 2 / a", {"a": 0.5}, "snake", {"alpha": 0.5}),
        ("atan(x)", {}, "arctan", {}),
        ("x - tanh(x)", {}, "tanhshrink", {}),
        ("x * sigmoid(1.702 * x)", {}, "quick_gelu", {}),
    ],
)
def test_formula_matches_builtin(text, params, builtin, builtin_params):
    act = actlab.formula(text, **params)
    ref = actlab.get(builtin, **builtin_params)
    torch.testing.assert_close(act(X), ref(X), rtol=1e-9, atol=1e-12)
    keep = torch.ones_like(X, dtype=torch.bool)
    for k in ref.spec.kinks(**ref.params):  # autograd's and the spec's conventions differ there
        keep &= k != X
    torch.testing.assert_close(act.derivative(X)[keep], ref.derivative(X)[keep], rtol=1e-7,
                               atol=1e-9)
    assert act.family == "custom" and act.params == params
    assert act.formula.startswith("f(x) = ")


def test_formula_constants_and_edge_values():
    assert actlab.formula("pi * x")(torch.ones(1)).item() == pytest.approx(3.141592653589793)
    assert actlab.formula("e + 0 * x")(torch.zeros(1)).item() == pytest.approx(2.718281828459045)
    const = actlab.formula("2")
    assert const(torch.zeros(3)).tolist() == [2.0, 2.0, 2.0]
    assert const.derivative(torch.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    step = actlab.formula("where(x > 0, 1, 0)")
    assert step(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 1.0]
    assert step.derivative(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 0.0]
    # Python would raise (1/0) or go complex ((-8)**(1/3)); torch gives inf and nan
    assert actlab.formula("x + 1 / 0")(torch.zeros(1)).item() == float("inf")
    assert torch.isnan(actlab.formula("x + (-8) ** (1 / 3)")(torch.zeros(1))).all()
    assert actlab.formula("sqrt(2) * x")(torch.ones(1)).item() == pytest.approx(2**0.5)
    assert actlab.formula("max(1, x)")(torch.tensor([0.0, 3.0])).tolist() == [1.0, 3.0]


def test_formula_keeps_dtype():
    act = actlab.formula("x * sigmoid(beta * x)", beta=1.5)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        x = torch.linspace(-3, 3, 7).to(dtype)
        assert act(x).dtype == dtype and act.derivative(x).dtype == dtype


def test_learnable_formula_parameter_gets_gradient():
    act = actlab.formula("x * sigmoid(beta * x)", name="swish_b", beta=1.5, learn=["beta"])
    m = act.module().double()
    x = torch.linspace(-4, 4, 17, dtype=torch.float64, requires_grad=True)
    m(x).sum().backward()
    s = torch.sigmoid(1.5 * x.detach())
    torch.testing.assert_close(m.beta.grad, (x.detach() ** 2 * s * (1 - s)).sum())
    torch.testing.assert_close(x.grad, actlab.get("silu", beta=1.5).derivative(x.detach()))
    assert torch.autograd.gradcheck(
        lambda inp, b: torch.func.functional_call(m, {"beta": b}, (inp,)),
        (x.detach()[::3].clone().requires_grad_(True),
         torch.tensor(1.5, dtype=torch.float64, requires_grad=True)),
    )


def test_formula_pickles_and_rebuilds_by_key():
    act = actlab.formula("x * tanh(softplus(beta * x))", name="mish_b", beta=2.0, learn=["beta"])
    back = pickle.loads(pickle.dumps(act))
    assert back.name == "mish_b" and back.params == {"beta": 2.0} and back.learn == ("beta",)
    assert back.key == act.key == "formula:x * tanh(softplus(beta * x))"
    x = torch.linspace(-5, 5, 11)
    torch.testing.assert_close(back(x), act(x))
    module = pickle.loads(pickle.dumps(act.module()))
    torch.testing.assert_close(module(x).detach(), act(x))


def test_get_formula_prefix():
    act = actlab.get("formula: x * sigmoid(x)")
    x = torch.linspace(-5, 5, 11, dtype=torch.float64)
    torch.testing.assert_close(act(x), actlab.get("silu")(x))
    swish = actlab.get("FORMULA:x * sigmoid(beta * x)", beta=2.0)
    torch.testing.assert_close(swish(x), actlab.get("silu", beta=2.0)(x))


def test_the_execution_guard_works():
    """The guard used above does catch execution (so the tests above can fail)."""
    calls: list[str] = []
    with pytest.raises(AssertionError), nothing_executes(calls):
        eval("1 + 1")
    with pytest.raises(AssertionError), nothing_executes(calls):
        __import__("os")
    assert calls == ["eval", "__import__"]
    assert ast.parse("x + 1", mode="eval")  # restored afterwards


def test_long_flat_sums_and_products_are_not_too_deep():
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    torch.testing.assert_close(actlab.formula("+".join(["x"] * 60))(x), 60 * x)
    torch.testing.assert_close(actlab.formula("x" + "*0.99" * 50)(x), x * 0.99**50)
    torch.testing.assert_close(actlab.formula("x" + "-x/2" * 40)(x), x - 20 * x)
    with pytest.raises(ValueError, match="nests deeper than 32 levels"):
        actlab.formula("tanh(" * 33 + "x" + ")" * 33)


@pytest.mark.parametrize("e", [2, 3, 0.5, -1, -2.5])
def test_constant_exponents_match_float64_powers(e):
    # x ** <number> uses torch.pow with a Python exponent (x*x for 2, ...): same values
    x = torch.linspace(0.1, 3.0, 31, dtype=torch.float64)
    torch.testing.assert_close(actlab.formula(f"x ** {e}")(x), x**e)
    torch.testing.assert_close(
        actlab.formula(f"x ** {e}").derivative(x), e * x ** (e - 1), rtol=1e-10, atol=1e-12
    )
    assert torch.isnan(actlab.formula("x ** 0.5")(torch.tensor([-4.0]))).all()
    half = torch.tensor([-2.0], dtype=torch.float16)
    assert actlab.formula("x ** 3")(half).dtype == torch.float16
