"""Every command follows one convention for lists, activations, formulas, tasks,
databases and output paths (cli/_args.py; the README's "Command line" section)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actlab.cli import run
from actlab.cli._args import split


def _out(capsys, argv: list[str]) -> str:
    assert run(argv) == 0, (argv, capsys.readouterr().err)
    return capsys.readouterr().out


def test_split_keeps_commas_inside_parentheses():
    assert split(["relu,gelu", " mish "]) == ["relu", "gelu", "mish"]
    assert split(["formula:max(x, 0),relu"]) == ["formula:max(x, 0)", "relu"]
    assert split(["formula:where(x > 0, x, min(x, 0)) , tanh"]) == [
        "formula:where(x > 0, x, min(x, 0))", "tanh"]
    assert split(None) == [] and split(["", ","]) == []


def _rows(text: str) -> list[str]:
    """The activation names that start table rows (the first word of each line)."""
    words = [line.split()[0] for line in text.splitlines() if line.strip()]
    return [w for w in words if re.fullmatch(r"[a-z_]+|formula:.*", w)]


# the activation arguments of every command that takes activations, spelled four ways
SPELLINGS = [
    ["relu", "tanh"],  # positional names
    ["-a", "relu,tanh"],  # one list option with commas
    ["-a", "relu", "--activations", "tanh"],  # the option repeated
    ["--activation", "tanh", "-a", "formula:relu(x)"],  # old singular spelling, a formula
]


@pytest.mark.parametrize(
    "command",
    [
        ["gain"],
        ["gradflow", "--depth", "3,4", "--width", "8", "--batch", "4", "--seeds", "1"],
        ["audit", "--dtype", "float64"],
    ],
    ids=lambda c: c[0],
)
def test_activation_lists_on_analysis_commands(capsys, command):
    outputs = []
    for spelling in SPELLINGS:
        text = _out(capsys, [*command, *spelling])
        outputs.append(text)
        assert "relu" in text and "tanh" in text
    # the first three name the same activations: the same table
    assert _rows(outputs[0]) == _rows(outputs[1]) == _rows(outputs[2])


def test_formula_option_is_the_same_as_a_formula_item(capsys):
    a = _out(capsys, ["gain", "-a", "formula:max(x, 0.1 * x)"])
    b = _out(capsys, ["gain", "--formula", "max(x, 0.1 * x)"])
    c = _out(capsys, ["gain", "-f", "formula:max(x, 0.1 * x)"])
    assert a == b == c and "max(x, 0.1 * x)" in a


def test_numbers_repeat_or_take_commas(capsys):
    args = ["gradflow", "relu", "--width", "8", "--batch", "4", "--seeds", "1"]
    a = _out(capsys, [*args, "--depth", "3,5"])
    b = _out(capsys, [*args, "--depth", "3", "--depth", "5"])
    c = _out(capsys, [*args, "--depth", "3", "5"])  # the older spelling
    for text in (a, b, c):
        assert "depth 3" in text and "depth 5" in text


def test_plot_and_report_and_bench_take_the_same_lists(capsys, tmp_path: Path):
    for i, spelling in enumerate(SPELLINGS[::3]):  # positional names; -a with a formula
        png = tmp_path / f"p{i}.png"
        assert "wrote" in _out(capsys, ["plot", *spelling, "-o", str(png)]) and png.exists()
        html = tmp_path / f"r{i}.html"
        args = ["report", *[s for s in spelling], "-o", str(html), "--no-analysis"]
        if spelling[0] == "relu":  # report takes activations only through -a
            args = ["report", "-a", ",".join(spelling), "-o", str(html), "--no-analysis"]
        _out(capsys, args)
        assert html.exists()
    out = tmp_path / "b.json"
    text = _out(capsys, ["bench", "-a", "relu,tanh", "--quick", "--size", "2**12",
                         "--no-backward", "--no-eager", "-o", str(out)])
    assert out.exists() and "relu" in text and "tanh" in text


def test_study_results_and_recommend_share_tasks_and_db(capsys, tmp_path: Path):
    db = tmp_path / "s.sqlite"
    base = ["--seeds", "1", "--quick", "--workers", "0", "--db", str(db), "--no-progress"]
    _out(capsys, ["study", "-t", "xor", "-a", "relu,tanh", *base])
    # the same grid spelled otherwise: everything is already in the database
    text = _out(capsys, ["study", "--task", "xor", "-a", "relu", "--activations", "tanh", *base])
    assert "2 already in the database" in text
    one = _out(capsys, ["results", "--db", str(db), "-t", "xor", "--format", "csv"])
    two = _out(capsys, ["results", "--db", str(db), "--task", "xor", "--format", "csv"])
    assert one == two and one.count("\n") == 3
    a = _out(capsys, ["recommend", "--db", str(db)])
    b = _out(capsys, ["recommend", "--from", str(db)])
    assert a == b


def test_recommend_problem_and_its_older_name(capsys):
    a = _out(capsys, ["recommend", "--arch", "cnn", "--problem", "binary"])
    b = _out(capsys, ["recommend", "--arch", "cnn", "--task", "binary"])
    assert a == b and "relu" in a
