"""`actlab gain`, `actlab gradflow`, `actlab audit`."""

from __future__ import annotations

from actlab.cli import run


def test_gain_table(capsys):
    assert run(["gain", "relu", "tanh", "--sigma-b2", "0", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "1.414" in out and "1.593" in out and "1.667" in out  # ours and PyTorch's tanh
    assert "σb²=0.1" in out


def test_gain_formula_and_errors(capsys):
    assert run(["gain", "--formula", "x * sigmoid(x)"]) == 0
    assert "1.677" in capsys.readouterr().out
    assert run(["gain", "nosuch"]) == 2
    assert run(["gain", "relu", "--sigma-b2", "-1"]) == 2


def test_gradflow_table_and_plot(capsys, tmp_path):
    out = tmp_path / "g.png"
    code = run(["gradflow", "sigmoid", "relu", "--depth", "3", "6", "--seeds", "1",
                "--width", "16", "--batch", "8", "--out", str(out)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "depth 3" in text and "depth 6" in text and "sigmoid" in text
    assert out.stat().st_size > 1000


def test_gradflow_bad_arguments(capsys):
    assert run(["gradflow", "relu", "--init", "xavier"]) == 2
    assert run(["gradflow", "relu", "--depth", "0"]) == 2
    assert run(["gradflow", "relu", "--out", "x.txt"]) == 2
    assert "xavier" in capsys.readouterr().err


def test_audit_exit_status(capsys):
    assert run(["audit", "relu", "gelu"]) == 0
    assert "all 2 passed" in capsys.readouterr().out
    assert run(["audit", "--formula", "1/(1+exp(-x))"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert run(["audit", "relu", "--dtype", "float8"]) == 2
