"""The SQLite results store: round trip, finished/failed semantics, schema versions."""

from __future__ import annotations

import hashlib
import math
import sqlite3

import pandas as pd
import pytest

import actlab
from actlab.experiments import store as store_mod
from actlab.experiments.base import RunResult, RunSpec
from actlab.experiments.store import ResultsStore, RunMeta, StoreError, load_results

SPEC = RunSpec("mlp", "relu", 1, {"dataset": "digits", "epochs": 3, "lr": 1e-3})


def _ok(acc: float = 0.9) -> RunResult:
    return RunResult(
        status="ok",
        metrics={"test_accuracy": acc, "test_loss": 0.3},
        curves={"train_loss": [1.0, 0.5, 0.25], "test_accuracy": [0.5, 0.8, acc]},
        wall_time=1.5,
        artifacts={"grid": [[0, 1], [1, 0]], "note": "x"},
    )


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip(tmp_path):
    db = tmp_path / "r.sqlite"
    meta = RunMeta(started_at="2024-01-01T00:00:00", finished_at="2024-01-01T00:00:02",
                   host="h1", device="cpu", actlab_version="0.1.0", torch_version="2.x")
    with ResultsStore(db) as s:
        assert s.schema_version == store_mod.SCHEMA_VERSION
        assert s.record(SPEC, _ok(), meta, metric="test_accuracy", higher_is_better=True)
    with ResultsStore(db, create=False) as s:
        (run,) = s.runs()
        assert run.key == SPEC.key and run.spec == RunSpec(**{**SPEC.__dict__})
        assert run.spec.config == dict(SPEC.config)
        assert run.result.metrics == {"test_accuracy": 0.9, "test_loss": 0.3}
        assert run.result.curves["train_loss"] == [1.0, 0.5, 0.25]
        assert run.result.artifacts == {"grid": [[0, 1], [1, 0]], "note": "x"}
        assert run.value == 0.9 and run.metric == "test_accuracy" and run.higher_is_better
        assert run.meta == meta and run.attempts == 1 and run.dataset == "digits"
        assert s.curves(SPEC.key)["test_accuracy"][-1] == 0.9
        assert s.artifacts(SPEC.key)["note"] == "x"
        assert s.runs(task="mlp/digits") and not s.runs(task="mlp/mnist1d")
        assert not s.runs(activation="gelu")
        with pytest.raises(KeyError, match="no run with key"):
            s.run("nope")
        mode = s._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_finished_failed_semantics(tmp_path):
    db = tmp_path / "r.sqlite"
    failed = RunResult(status="failed", error="ValueError: boom")
    diverged = RunResult(status="diverged", diverged_step=7, metrics={"test_loss": math.nan})
    spec2 = RunSpec("mlp", "gelu", 1, SPEC.config)
    with ResultsStore(db) as s:
        s.record(SPEC, failed, metric="test_accuracy")
        s.record(spec2, diverged, metric="test_accuracy")
        assert s.finished_keys() == {spec2.key}
        assert s.statuses() == {SPEC.key: "failed", spec2.key: "diverged"}
        # a failed run is replaced by its retry
        assert s.record(SPEC, _ok(0.8), metric="test_accuracy")
        run = s.run(SPEC.key)
        assert run.result.status == "ok" and run.attempts == 2 and run.result.error is None
        # a finished run is never replaced, not even by another finished result
        assert not s.record(SPEC, failed, metric="test_accuracy")
        assert not s.record(SPEC, _ok(0.1), metric="test_accuracy")
        assert s.run(SPEC.key).value == 0.8
        d = s.run(spec2.key)
        assert d.result.status == "diverged" and d.result.diverged_step == 7
        assert math.isnan(d.result.metrics["test_loss"]) and d.value is None
        with pytest.raises(ValueError, match="status 'weird'"):
            s.record(SPEC, RunResult(status="weird"))
        assert len(s) == 2


def test_newer_schema_is_refused_and_untouched(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as s:
        s.record(SPEC, _ok(), metric="test_accuracy")
    con = sqlite3.connect(db)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    before = _sha(db)
    with pytest.raises(StoreError, match=r"newer actlab \(results schema version 99\)"):
        ResultsStore(db)
    assert _sha(db) == before
    con = sqlite3.connect(db)  # the finished run is still there
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    con.close()


def test_older_unknown_schema_is_refused(tmp_path):
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES (0);"
        "CREATE TABLE runs (key TEXT PRIMARY KEY, acc REAL); INSERT INTO runs VALUES ('a', 1);"
    )
    con.close()
    before = _sha(db)
    with pytest.raises(StoreError, match=r"schema version 0.*cannot read or migrate"):
        ResultsStore(db)
    assert _sha(db) == before


def test_migration_path_keeps_rows(tmp_path, monkeypatch):
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as s:
        s.record(SPEC, _ok(), metric="test_accuracy")

    def v1_to_v2(con):
        con.execute("ALTER TABLE runs ADD COLUMN note TEXT DEFAULT 'migrated'")

    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(store_mod.MIGRATIONS, 1, v1_to_v2)
    with ResultsStore(db) as s:
        assert s.schema_version == 2
        assert s.run(SPEC.key).value == 0.9
        assert s._conn.execute("SELECT note FROM runs").fetchone()[0] == "migrated"


def test_not_an_actlab_database(tmp_path):
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE things (x)")
    con.close()
    with pytest.raises(StoreError, match=r"not an actlab results database.*things"):
        ResultsStore(other)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not an SQLite database"):
        ResultsStore(garbage)
    with pytest.raises(FileNotFoundError, match="no results database"):
        ResultsStore(tmp_path / "missing.sqlite", create=False)
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_load_results_dataframe(tmp_path):
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as s:
        for seed, acc in [(0, 0.9), (1, 0.8)]:
            s.record(RunSpec("mlp", "relu", seed, SPEC.config), _ok(acc), metric="test_accuracy",
                     higher_is_better=True)
        s.record(RunSpec("xor", "tanh", 0, {}), RunResult(status="failed", error="E: x"),
                 metric="accuracy", higher_is_better=True)
        s.record(RunSpec("mlp", "gelu", 0, SPEC.config),
                 RunResult(status="ok", metrics={"test_accuracy": math.inf, "seed": 3.0}),
                 metric="test_accuracy", higher_is_better=True)
    df = actlab.load_results(db)
    assert isinstance(df, pd.DataFrame) and len(df) == 4
    for col in ("task", "dataset", "task_id", "activation", "seed", "config_hash", "status",
                "value", "test_accuracy", "wall_time", "config", "metric.seed"):
        assert col in df.columns, col
    relu = df[df.activation == "relu"].sort_values("seed")
    assert relu.test_accuracy.tolist() == [0.9, 0.8] and relu.value.tolist() == [0.9, 0.8]
    assert set(relu.task_id) == {"mlp/digits"} and relu.config.iloc[0]["lr"] == 1e-3
    xor = df[df.task == "xor"].iloc[0]
    assert xor.status == "failed" and xor.error == "E: x" and xor.task_id == "xor"
    assert math.isnan(xor.value)
    gelu = df[df.activation == "gelu"].iloc[0]
    assert math.isnan(gelu.value) and gelu["metric.seed"] == 3.0  # inf is not a value
    empty = tmp_path / "empty.sqlite"
    ResultsStore(empty).close()
    assert load_results(empty).empty
