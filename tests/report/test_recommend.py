"""The decision framework (actlab.recommend) and `actlab recommend --arch/--task`."""

from __future__ import annotations

import pytest

import actlab
from actlab.cli import run
from actlab.recommend import ARCHITECTURES, DEAD_THRESHOLD, TASKS, recommend

# The seed article's framework, written out independently of the implementation.
ARTICLE_HIDDEN = {"cnn": "relu", "transformer": "gelu", "rnn": "tanh"}
ARTICLE_OUTPUT = {
    "binary": "sigmoid",
    "multiclass": "softmax",
    "regression": "identity",
    "bounded": "tanh",
}


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("task", TASKS)
def test_framework_grid(arch: str, task: str) -> None:
    r = recommend(arch, task)
    assert r.architecture == arch and r.task == task
    if arch in ARTICLE_HIDDEN:
        assert r.hidden == ARTICLE_HIDDEN[arch]
        assert "article" in r.source
    else:  # mlp: actlab's own reasoned choice, and it says so
        assert "actlab" in r.source
        assert any("actlab's choice" in reason for reason in r.reasons)
    assert r.output == ARTICLE_OUTPUT[task]
    assert r.gate == ("sigmoid" if arch == "rnn" else None)
    assert r.reasons and r.watch_for and r.alternatives
    # every activation it names exists in the catalog (softmax is not element-wise)
    for name in [r.hidden, r.output, *(a.activation for a in r.alternatives)]:
        if name != "softmax":
            actlab.get(name)
    assert r.hidden in str(r) and r.output in str(r)
    assert r.as_dict()["hidden"] == r.hidden


def test_exported_from_package() -> None:
    assert actlab.recommend("transformer", "multiclass").hidden == "gelu"


def test_case_and_aliases() -> None:
    assert recommend("CNN", " Binary ").hidden == "relu"
    assert recommend("lstm", "regression").hidden == "tanh"


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_many_dead_units_switch_relu_to_leaky(arch: str) -> None:
    above = recommend(arch, "multiclass", dead_fraction=DEAD_THRESHOLD + 0.15)
    assert above.hidden == "leaky_relu"
    assert {a.activation for a in above.alternatives} >= {"elu"}
    assert any("25%" in reason for reason in above.reasons)
    below = recommend(arch, "multiclass", dead_fraction=DEAD_THRESHOLD / 2)
    assert below.hidden == "relu"
    assert recommend(arch, "multiclass", dead_fraction=DEAD_THRESHOLD).hidden == "relu"


def test_dead_units_with_gelu_keep_gelu_and_warn() -> None:
    r = recommend("transformer", "multiclass", dead_fraction=0.5)
    assert r.hidden == "gelu"
    assert any("not dying ReLU" in w for w in r.watch_for)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"architecture": "gan", "task": "binary"}, "cnn, transformer, rnn, mlp"),
        ({"architecture": "cnn", "task": "ranking"}, "binary, multiclass, regression, bounded"),
        ({"architecture": 3, "task": "binary"}, "cnn, transformer, rnn, mlp"),
        ({"architecture": "cnn", "task": "binary", "dead_fraction": 1.5}, "between 0 and 1"),
        ({"architecture": "cnn", "task": "binary", "dead_fraction": -0.1}, "between 0 and 1"),
        ({"architecture": "cnn", "task": "binary", "dead_fraction": float("nan")}, "between 0"),
        ({"architecture": "cnn", "task": "binary", "dead_fraction": "lots"}, "between 0 and 1"),
    ],
)
def test_bad_values(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        recommend(**kwargs)


def test_cli_framework(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["recommend", "--arch", "rnn", "--task", "bounded"]) == 0
    out = capsys.readouterr().out
    assert "tanh" in out and "sigmoid" in out and "Watch for" in out


def test_cli_dead_fraction(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["recommend", "--arch", "cnn", "--task", "binary", "--dead-fraction", "0.4"]) == 0
    assert "leaky_relu" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["recommend", "--arch", "gan", "--task", "binary"], "unknown architecture 'gan'"),
        (["recommend", "--arch", "cnn"], "give --arch"),
        (["recommend"], "give --arch"),
        (["recommend", "--from", "/nonexistent/x.sqlite"], "no such file"),
        (["recommend", "--from", "x.sqlite", "--arch", "cnn"], "do not combine"),
    ],
)
def test_cli_errors(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
