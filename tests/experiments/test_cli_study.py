"""``actlab study`` and ``actlab results``: exit codes, output formats, a real study."""

from __future__ import annotations

import importlib
import io
import json
import socket
import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest

from actlab.cli import run
from actlab.experiments.store import ResultsStore

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # worker processes and Ray import the tiny tasks by name
    sys.path.insert(0, str(HERE))
study_tasks = importlib.import_module("study_tasks")  # registers tiny_fit, tiny_slow, ...


def _error(capsys, argv: list[str]) -> str:
    assert run(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert err.startswith("actlab: error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tasks", "nope"], "unknown task 'nope'"),
        (["--activations", "reluu"], "unknown activation 'reluu'"),
        (["--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["--workers", "-1"], "--workers must be 0 or more, got -1"),
        (["--executor", "dask"], "--executor 'dask' is not known"),
        (["--executor", "ray", "--address", "no-port"], "Ray address 'no-port' is not valid"),
        (["--address", "10.0.0.1:6379"], "--address is for the ray executor"),
        (["--executor", "ray", "--workers", "0"], "--workers 0 is not possible"),
        (["--report", "out.txt"], "use a .html, .htm file name"),
        (["--data-dir", "/no/such/dir"], "--data-dir /no/such/dir is not a directory"),
        (["--lr", "-1"], "--lr values must be > 0, got -1"),
        (["--grid", "steps"], "--grid 'steps' must look like KEY=V1,V2"),
        (["--tasks", "tiny_fit", "--grid", "momentum=0.9"], "'momentum' is not used by any task"),
    ],
)
def test_study_bad_arguments(capsys, tmp_path, argv, message):
    db = tmp_path / "s.sqlite"
    err = _error(capsys, ["study", "--db", str(db), "--workers", "0", "-t", "tiny_fit", *argv])
    assert message in err
    assert not db.exists()


def test_study_then_results(capsys, tmp_path):
    db = tmp_path / "s.sqlite"
    argv = ["study", "--tasks", "tiny_fit,tiny_fail", "-a", "relu", "-a", "tanh,sigmoid",
            "--seeds", "3", "--quick", "--workers", "0", "--db", str(db), "--no-progress"]
    assert run(argv) == 1  # runs failed: status 1, after the summary
    out = capsys.readouterr().out
    assert "2 task(s) x 3 activation(s) x 3 seed(s) = 18 runs" in out
    assert "18 runs: 9 ok, 0 diverged, 9 failed" in out and str(db) in out
    assert "failed runs are retried" in out and f"actlab results --db {db}" in out
    assert run(argv) == 1  # the failed runs are retried, and fail again
    assert "9 already in the database" in capsys.readouterr().out

    assert run(["results", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "tiny_fit: accuracy (higher is better)" in out
    assert "has the best mean accuracy on tiny_fit" in out or "is best on tiny_fit" in out
    assert "no activation finished a run on tiny_fail" in out and "18 runs in" in out

    assert run(["results", "--db", str(db), "--format", "csv", "--task", "tiny_fit"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert sorted(table.activation) == ["relu", "sigmoid", "tanh"]
    assert (table.n == 3).all() and table["rank"].tolist() == [1, 2, 3]
    assert table["mean"].is_monotonic_decreasing

    assert run(["results", "--db", str(db), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["setting"] for r in records} == {"tiny_fit", "tiny_fail"}
    assert all(r["statement"] for r in records)


def test_study_without_activations_runs_each_tasks_own_set(capsys, tmp_path):
    db = tmp_path / "p.sqlite"
    argv = ["study", "-t", "tiny_fit", "--quick", "--seeds", "1", "--workers", "0", "--db",
            str(db), "--no-progress"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "study: 1 task(s) x 1 seed(s) = 9 runs" in out
    assert "tiny_fit: identity, sigmoid, tanh, relu, leaky_relu, elu, gelu, silu, mish" in out


def test_a_missing_dataset_stops_the_study_before_it_starts(capsys, tmp_path, monkeypatch):
    from actlab.experiments import data
    from actlab.experiments.data import idx

    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion_mnist", (tmp_path / "not-installed",))
    monkeypatch.delenv("ACTLAB_DATA_DIR", raising=False)
    data._load.cache_clear()
    db = tmp_path / "s.sqlite"
    err = _error(capsys, ["study", "-t", "cnn/fashion_mnist/short", "--db", str(db)])
    assert "dataset-fashion-mnist" in err and "not-installed" in err
    assert not db.exists()


def test_results_say_how_many_seeds_a_tie_needs(capsys, tmp_path):
    from actlab.experiments.base import RunResult, RunSpec
    from actlab.experiments.study import Study

    db = tmp_path / "t.sqlite"
    (_, cfg), = Study(["mlp/digits"], ["relu"], seeds=1, quick=True).resolved_tasks()
    values = {"relu": [0.91, 0.90, 0.92], "gelu": [0.90, 0.90, 0.90]}  # d_z = 1: 10 seeds
    with ResultsStore(db) as store:
        for act, vals in values.items():
            for seed, v in enumerate(vals):
                store.record(RunSpec("mlp", act, seed, cfg), RunResult("ok", {
                    "test_accuracy": v}), metric="test_accuracy", higher_is_better=True)
    assert run(["results", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "seeds needed" in out and "would take about 10 seeds" in out
    assert (f"to add those seeds (finished runs are kept): actlab study -t mlp/digits -a relu "
            f"-a gelu --seeds 10 --db {db} --quick") in out
    assert run(["results", "--db", str(db), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table.set_index("activation").loc["gelu", "seeds_needed"] == 10


def test_unreachable_ray_address(capsys, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed")
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    err = _error(capsys, ["study", "-t", "tiny_fit", "-a", "relu", "--seeds", "1", "--executor",
                          "ray", "--address", f"127.0.0.1:{port}", "--db", str(tmp_path / "r.db")])
    assert f"could not reach Ray at 127.0.0.1:{port}" in err


def test_list_tasks(capsys):
    assert run(["study", "--list-tasks"]) == 0
    out = capsys.readouterr().out
    assert "tiny_fit: test task tiny_fit" in out and "metric: accuracy (higher is better)" in out
    assert "defaults: steps=40, lr=0.05" in out and "--quick: steps=5" in out
    assert "preset mlp/mnist1d/logistic: hidden=[], residual=False, lr=0.01" in out


def test_results_bad_arguments(capsys, tmp_path):
    db = tmp_path / "r.sqlite"
    assert "no such file; run `actlab study --db" in _error(capsys, ["results", "--db", str(db)])
    ResultsStore(db).close()
    assert "--format 'xml' is not known" in _error(
        capsys, ["results", "--db", str(db), "--format", "xml"])
    assert "no runs of task 'mlp'" in _error(capsys, ["results", "--db", str(db), "--task", "mlp"])
    con = sqlite3.connect(db)
    con.execute("UPDATE schema_version SET version = 7")
    con.commit()
    con.close()
    assert "newer actlab (results schema version 7)" in _error(
        capsys, ["results", "--db", str(db)])
    assert "newer actlab" in _error(
        capsys, ["study", "--tasks", "tiny_fit", "--db", str(db), "--workers", "0"])


def test_real_quick_study_end_to_end(capsys, tmp_path):
    """The default study's shape, small: real tasks, 2 worker processes, the CLI."""
    pytest.importorskip("actlab.experiments.tasks", reason="the tasks module is not written yet")
    db = tmp_path / "quick.sqlite"
    argv = ["study", "--quick", "--tasks", "xor,mlp/digits", "-a", "relu,tanh", "--seeds", "2",
            "--workers", "2", "--db", str(db), "--no-progress"]
    assert run(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "8 runs: 8 ok, 0 diverged, 0 failed" in out, out
    assert run(["results", "--db", str(db), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert set(table.setting) == {"xor", "mlp/digits"} and (table.n == 2).all()
    digits = table[table.setting == "mlp/digits"]
    assert (digits["mean"] > 0.5).all()  # 10 classes: far above chance even when quick


@pytest.mark.slow
def test_default_study_quick_with_report(capsys, tmp_path):
    """The default study (the three architectures, XOR, FFN cost, gradient flow), quick."""
    pytest.importorskip("actlab.experiments.tasks", reason="the tasks module is not written yet")
    from actlab.experiments.study import Study

    db, html = tmp_path / "default.sqlite", tmp_path / "report.html"
    total = Study(quick=True).size()
    assert run(["study", "--quick", "--db", str(db), "--report", str(html), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"= {total} runs" in out and f"{total} runs: {total} ok, 0 diverged, 0 failed" in out
    assert "cnn/fashion_mnist/short: relu, leaky_relu, elu, gelu" in out, out
    text = html.read_text()
    assert f"wrote {html}" in out and text.lstrip().lower().startswith("<!doctype html")
    for name in ("the MLP (mlp/fashion_mnist)", "the CNN (cnn/fashion_mnist)",
                 "the transformer (char_lm)"):
        assert name in text
    assert run(["results", "--db", str(db), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert set(table.setting) == {"xor", "mlp/fashion_mnist", "cnn/fashion_mnist", "char_lm",
                                  "ffn_timing", "gradflow"}
    assert (table.n == 3).all() and len(table) == total // 3
    assert run(["recommend", "--from", str(db)]) == 0
    out = capsys.readouterr().out
    assert "One answer per architecture" in out
    for arch in ("MLP", "CNN", "transformer"):
        assert f"{arch}: " in out
