"""``actlab list``, ``actlab show``, ``actlab plot``, and how they treat bad arguments."""

from __future__ import annotations

import matplotlib.image
import matplotlib.pyplot as plt
import pytest

import actlab
from actlab.cli import run
from actlab.report.figures import plot_activations


def test_list(capsys):
    assert run(["list"]) == 0
    out = capsys.readouterr().out
    assert f"{len(actlab.names())} activations" in out
    for word in ("sigmoid", "tanh", "mish", "F.silu", "F.gelu", "family", "native"):
        assert word in out


def test_list_family(capsys):
    assert run(["list", "--family", "gated"]) == 0
    out = capsys.readouterr().out
    assert "swiglu" in out and "5 activations" in out and "sigmoid(x)" not in out


def test_show(capsys):
    assert run(["show", "sigmoid"]) == 0
    out = capsys.readouterr().out
    assert "1 / (1 + e^-x)" in out and "Rumelhart" in out and "torch.sigmoid" in out
    assert "0.5 " in out and "0.25 " in out  # f(0), f'(0)
    assert "0.731059" in out and "0.196612" in out  # f(1), f'(1)


def test_show_params_alias_and_formula(capsys):
    assert run(["show", "Leaky-ReLU", "--param", "alpha=0.2"]) == 0
    out = capsys.readouterr().out
    assert "leaky_relu" in out and "alpha=0.2" in out and "-0.6 " in out  # f(-3)
    assert run(["show", "swish", "-p", "beta=2"]) == 0
    out = capsys.readouterr().out
    assert "silu" in out and "beta=2" in out and "native:    none" in out
    assert run(["show", "formula:x * sigmoid(x)"]) == 0
    assert "user formula" in capsys.readouterr().out
    assert run(["show", "glu"]) == 0
    assert "gated" in capsys.readouterr().out


def test_plot_writes_the_2x2_figure(tmp_path, capsys):
    out = tmp_path / "f.png"
    assert run(["plot", "sigmoid", "tanh", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    image = matplotlib.image.imread(out)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # not blank
    fig = plot_activations(["sigmoid", "tanh"])
    try:
        assert len(fig.axes) == 4
        titles = [ax.get_title() for ax in fig.axes]
        assert titles == ["sigmoid", "sigmoid derivative", "tanh", "tanh derivative"]
        assert [ax.get_ylabel() for ax in fig.axes] == ["f(x)", "f'(x)"] * 2
        # the curves are the functions: sigmoid'(0) = 1/4 is the peak of the top-right line
        x, y = fig.axes[1].lines[0].get_data()
        assert max(y) == pytest.approx(0.25, abs=1e-4)
        assert min(x) == -6.0 and max(x) == 6.0
    finally:
        plt.close(fig)


def test_plot_formula_range_and_svg(tmp_path):
    out = tmp_path / "g.svg"
    args = ["plot", "relu", "--formula", "x * tanh(softplus(x))", "--range", "-3", "3"]
    assert run([*args, "--out", str(out)]) == 0
    assert out.read_text().lstrip().startswith("<?xml")
    fig = plot_activations(["relu", actlab.formula("x * tanh(softplus(x))")], x_range=(-3, 3))
    try:
        assert len(fig.axes) == 4
        x, _ = fig.axes[2].lines[0].get_data()
        assert (min(x), max(x)) == (-3.0, 3.0)
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "sigmod"], "unknown activation 'sigmod'; closest: sigmoid"),
        (["plot", "nosuch", "--out", "{tmp}/f.png"], "unknown activation 'nosuch'"),
        (["plot", "sigmoid", "--range", "5", "1", "--out", "{tmp}/f.png"], "LOW below HIGH"),
        (["plot", "sigmoid", "--range", "nan", "1", "--out", "{tmp}/f.png"], "finite"),
        (["plot", "sigmoid", "--range", "a", "b"], "--range"),
        (["plot", "sigmoid", "--range", "1"], "--range"),
        (["plot", "sigmoid", "--bogus"], "No such option: --bogus"),
        (["show", "elu", "--param", "alpha"], "must look like NAME=VALUE"),
        (["show", "elu", "--param", "alpha=abc"], "'abc' is not a number"),
        (["show", "elu", "--param", "beta=1"], "elu has no parameter beta"),
        (["show", "softplus", "--param", "beta=0"], "out of range"),
        (["show", "formula:x.__class__"], "invalid formula"),
        (["plot", "--formula", "__import__('os')", "--out", "{tmp}/f.png"], "invalid formula"),
        (["plot", "--out", "{tmp}/f.png"], "name at least one activation"),
        (["plot", "sigmoid", "--out", "{tmp}/f.txt"], "use a .png, .svg, .pdf, .jpg, .jpeg"),
        (["plot", "sigmoid", "--out", "{tmp}/no/such/dir/f.png"], "does not exist"),
        (["list", "--family", "nope"], "no activation in family 'nope'; families:"),
        (["show"], "show takes one activation, got 0"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, message, tmp_path, capsys):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert run(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("actlab: error:") and message in err, err
    assert "\n" not in err and "Traceback" not in captured.err + captured.out
    assert not list(tmp_path.glob("**/*.png"))
