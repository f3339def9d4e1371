"""The registry: names, lookup (case, aliases, close-name errors), user activations,
parameters, and NumPy / integer input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import actlab
from actlab.catalog import spec_of

REQUIRED = {
    # the article
    "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "gelu", "gelu_tanh", "silu", "mish",
    # the rest of PyTorch's element-wise activations
    "selu", "celu", "softplus", "softsign", "hardtanh", "relu6", "hardsigmoid", "hardswish",
    "logsigmoid", "tanhshrink", "softshrink", "hardshrink", "identity",
    # the GLU family
    "glu", "reglu", "geglu", "swiglu", "bilinear",
    # others with a published reference
    "squared_relu", "serf", "tanhexp", "smelu", "snake", "lisht", "bent_identity", "isru",
    "isrlu", "gaussian", "sine",
    # recent and learnable (issue 15)
    "xielu", "star_relu", "pau", "dyt",
}


def test_names_sorted_complete_and_metadata():
    names = actlab.names()
    assert names == sorted(names)
    assert len(names) >= 35
    assert set(names) >= REQUIRED
    assert "swish" not in names and "swish" in actlab.names(include_aliases=True)
    for n in names:
        a = actlab.get(n)
        assert a.name == n
        assert a.family and a.formula and a.reference
        assert isinstance(a.params, dict)
        assert a.spec.derivative is not None  # every built-in has an analytic f'
        assert set(a.learn) <= set(a.spec.learnable) <= set(a.params)


@pytest.mark.parametrize(
    ("query", "name"),
    [("SiLU", "silu"), ("  Swish ", "silu"), ("swish", "silu"), ("leaky-relu", "leaky_relu"),
     ("LeakyReLU", "leaky_relu"), ("GELU_TANH", "gelu_tanh"), ("gelu_new", "gelu_tanh"),
     ("Logistic", "sigmoid"), ("linear", "identity"), ("hard swish", "hardswish")],
)
def test_lookup_is_case_insensitive_with_aliases(query, name):
    assert actlab.get(query).name == name
    assert actlab.get(query).spec is actlab.get(name).spec


def test_swish_equals_silu():
    x = torch.linspace(-5, 5, 11)
    assert actlab.get("swish") == actlab.get("silu")
    torch.testing.assert_close(actlab.get("swish")(x), actlab.get("silu")(x))


@pytest.mark.parametrize(
    ("query", "close"),
    [("sigmod", "sigmoid"), ("relu7", "relu6"), ("gelu_tan", "gelu_tanh"), ("swissh", "swish"),
     ("mysh", "mish")],
)
def test_unknown_name_lists_closest(query, close):
    with pytest.raises(KeyError) as info:
        actlab.get(query)
    msg = info.value.args[0]
    assert repr(query) in msg and close in msg and "closest" in msg


def test_unknown_name_without_close_match():
    with pytest.raises(KeyError, match="actlab list"):
        actlab.get("qqqqzzzz")
    with pytest.raises(TypeError, match="string"):
        spec_of(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name, an Activation"):
        actlab.get(3.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("elu", {"beta": 1.0}, "elu has no parameter beta; accepted parameters: alpha"),
        ("relu", {"alpha": 0.1}, "accepted parameters: none"),
        ("softplus", {"beta": 0.0}, r"beta=0.0 is out of range; accepted: \[1e-12, inf\]"),
        ("smelu", {"beta": -1.0}, "out of range"),
        ("softshrink", {"lambd": -0.5}, "out of range"),
        ("elu", {"alpha": "abc"}, "alpha must be a finite number, got 'abc'"),
        ("elu", {"alpha": None}, "finite number"),
        ("elu", {"alpha": float("nan")}, "finite number"),
        ("leaky_relu", {"alpha": float("inf")}, "finite number"),
        ("hardtanh", {"min_val": 2.0}, "min_val=2 must be less than max_val=1"),
        ("rrelu", {"lower": 0.5, "upper": 0.1}, "must not exceed"),
    ],
)
def test_bad_parameters_raise_value_error(name, params, match):
    with pytest.raises(ValueError, match=match):
        actlab.get(name, **params)


def test_learn_only_learnable_parameters():
    with pytest.raises(ValueError, match="elu cannot learn alpha; learnable: none"):
        actlab.get("elu", learn=["alpha"])
    with pytest.raises(ValueError, match="learnable: beta"):
        actlab.get("silu", learn=["gamma"])
    assert actlab.get("silu").learn == ()
    assert actlab.get("silu", learn=["beta"]).learn == ("beta",)
    assert actlab.get("prelu").learn == ("alpha",)


def test_get_passes_activations_and_applies_params():
    act = actlab.get("elu", alpha=0.5)
    assert actlab.get(act) is act
    assert actlab.get(act, alpha=2.0).params == {"alpha": 2.0}
    assert actlab.get(act.spec).params == {"alpha": 1.0}
    assert act.with_params(alpha=0.3).params["alpha"] == 0.3
    assert actlab.get("elu", alpha=1) == actlab.get("elu")  # ints are numbers too


def test_register_callable_and_get_by_name(clean_registry):
    def my_swish(x):
        return x * torch.sigmoid(x)

    act = actlab.register(actlab.from_callable(my_swish))
    assert act.name == "my_swish" and "my_swish" in actlab.names()
    assert "my_swish" not in actlab.names(builtin_only=True)
    got = actlab.get("MY_SWISH")
    x = torch.linspace(-30, 30, 61, dtype=torch.float64)
    torch.testing.assert_close(got(x), actlab.get("silu")(x))
    # a user callable's derivative is autograd of it (exact, not finite differences)
    torch.testing.assert_close(got.derivative(x), actlab.get("silu").derivative(x))
    xr = x.clone().requires_grad_(True)
    got.module()(xr).sum().backward()
    torch.testing.assert_close(xr.grad, actlab.get("silu").derivative(x))
    actlab.unregister("my_swish")
    with pytest.raises(KeyError):
        actlab.get("my_swish")


def test_register_formula_and_lambda(clean_registry):
    actlab.register(actlab.formula("x * tanh(softplus(x))", name="my_mish"))
    x = torch.linspace(-5, 5, 11, dtype=torch.float64)
    torch.testing.assert_close(actlab.get("my_mish")(x), actlab.get("mish")(x))
    lam = actlab.from_callable(lambda x: 2 * x)
    assert lam.name == "custom"
    actlab.register(actlab.from_callable(lambda x: 2 * x, name="double_it"))
    assert actlab.get("double_it").derivative(torch.ones(3)).tolist() == [2.0, 2.0, 2.0]


def test_register_gated_callable(clean_registry):
    act = actlab.register(
        actlab.from_callable(lambda a, b: a * torch.tanh(b), name="tanh_glu", gated=True)
    )
    x = torch.randn(4, 6, dtype=torch.float64)
    a, b = x.chunk(2, -1)
    torch.testing.assert_close(act(x), a * torch.tanh(b))
    d = act.derivative(x)
    torch.testing.assert_close(d, torch.cat([torch.tanh(b), a / torch.cosh(b) ** 2], -1))
    with pytest.raises(ValueError, match="even"):
        act(torch.randn(3))


def test_duplicate_registration_errors(clean_registry):
    actlab.register(actlab.formula("x * 2", name="twice"))
    with pytest.raises(ValueError, match="'twice' is already registered; pass overwrite=True"):
        actlab.register(actlab.formula("x * 3", name="twice"))
    actlab.register(actlab.formula("x * 3", name="twice"), overwrite=True)
    assert actlab.get("twice")(torch.ones(1)).item() == 3.0
    for taken in ("relu", "Swish", "logistic"):
        with pytest.raises(ValueError, match="already registered"):
            actlab.register(actlab.formula("x", name=taken))


def test_builtins_cannot_be_unregistered():
    with pytest.raises(ValueError, match="built in"):
        actlab.unregister("relu")
    with pytest.raises(KeyError):
        actlab.unregister("never_registered_xyz")
    with pytest.raises(TypeError, match="register expects"):
        actlab.register("relu")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        actlab.from_callable(3)  # type: ignore[arg-type]


def test_numpy_in_numpy_out_and_int_input():
    act = actlab.get("relu")
    for dtype in (np.float32, np.float64, np.float16):
        x = np.array([-1.5, 0.0, 2.5], dtype=dtype)
        y = act(x)
        assert isinstance(y, np.ndarray) and y.dtype == dtype
        np.testing.assert_array_equal(y, np.array([0.0, 0.0, 2.5], dtype=dtype))
        assert isinstance(act.derivative(x), np.ndarray)
    xi = np.array([-2, 0, 3])
    y = act(xi)
    assert isinstance(y, np.ndarray) and y.dtype == np.float64
    assert y.tolist() == [0.0, 0.0, 3.0]
    assert actlab.get("sigmoid").derivative(np.array([0])).tolist() == [0.25]
    yt = act(torch.tensor([-2, 3]))  # integer tensor -> default float dtype
    assert yt.dtype == torch.get_default_dtype() and yt.tolist() == [0.0, 3.0]
    assert actlab.get("tanh")(np.float64(0.5)) == pytest.approx(np.tanh(0.5))
    with pytest.raises(TypeError, match=r"torch\.Tensor or a NumPy array"):
        act("1.0")


def test_tensor_dtype_and_shape_preserved():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        x = torch.randn(2, 3, 4).to(dtype)
        for n in ("gelu", "softplus", "mish"):
            assert actlab.get(n)(x).dtype == dtype
            assert actlab.get(n)(x).shape == x.shape
            assert actlab.get(n).derivative(x).dtype == dtype


def test_activation_pickles_and_hashes():
    import pickle

    for act in (actlab.get("elu", alpha=0.5), actlab.get("silu", learn=["beta"])):
        back = pickle.loads(pickle.dumps(act))
        assert back == act and hash(back) == hash(act)
        assert back.key == act.name
    assert repr(actlab.get("elu", alpha=0.5)) == "Activation(elu, alpha=0.5)"


def _cubic(x):
    return x**3


def test_user_activations_export_and_import(clean_registry):
    from actlab.catalog.registry import export_user, import_user

    actlab.register(actlab.from_callable(_cubic, name="cubic_e"))
    actlab.register(actlab.formula("x * tanh(b * x)", name="xtanh_e", b=2.0))
    blob = export_user(["cubic_e", "XTANH_E", "relu", "formula:x*x", "nosuch", "cubic_e"])
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    before = {n: actlab.get(n)(x) for n in ("cubic_e", "xtanh_e")}
    assert import_user(blob) == []  # both present already: left as they are
    for n in before:
        actlab.unregister(n)
    assert sorted(import_user(blob)) == ["cubic_e", "xtanh_e"]  # what a worker does
    for n, y in before.items():
        torch.testing.assert_close(actlab.get(n)(x), y)
    assert spec_of("xtanh_e").params == {"b": 2.0}
    assert import_user(export_user(["relu"])) == [] and import_user(b"") == []
