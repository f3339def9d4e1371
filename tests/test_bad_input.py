"""Bad input reaches the user as one line and the right exit status, never a traceback.

Exit status 2: a bad argument or input (nothing was done); 1: the work itself failed
(runs failed, an audit failed), after its summary; 0: success.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
import torch

from actlab.cli import run
from actlab.experiments.base import RunResult, RunSpec
from actlab.experiments.store import ResultsStore, StoreError


def _error(capsys, argv: list[str], status: int = 2) -> str:
    """Run the CLI; check the status and that stderr is one `actlab: error:` line."""
    assert run(argv) == status, argv
    err = capsys.readouterr().err.rstrip("\n")
    assert err.startswith("actlab: error: "), repr(err)  # no blank line or bar before it
    assert "\n" not in err and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------ a damaged database
@pytest.fixture
def damaged_db(tmp_path: Path) -> Path:
    """A results database whose header (page 1) is valid and whose other pages are damaged."""
    db = tmp_path / "damaged.sqlite"
    with ResultsStore(db) as store:
        for seed in range(60):
            result = RunResult("ok", metrics={"accuracy": 1.0}, curves={"loss": [0.5] * 200})
            store.record(RunSpec("xor", "relu", seed, {}), result, metric="accuracy",
                         higher_is_better=True)
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    size = db.stat().st_size
    assert size > 4 * page
    rng = torch.Generator().manual_seed(0)
    with db.open("r+b") as f:
        for p in range(2, size // page):  # keep page 1 (header and schema) intact
            f.seek(p * page + 20)
            f.write(bytes(torch.randint(0, 256, (200,), generator=rng).tolist()))
    return db


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "argv",
    [
        ["results", "--db", "{db}"],
        ["report", "--db", "{db}", "--out", "{tmp}/r.html", "--no-analysis"],
        ["recommend", "--from", "{db}"],
        ["recommend", "--db", "{db}"],
        ["study", "-t", "xor", "-a", "relu", "--seeds", "1", "--workers", "0", "--db", "{db}"],
    ],
    ids=lambda a: a[0] + (" " + a[1] if a[0] == "recommend" else ""),
)
def test_a_damaged_database_is_one_line_and_left_untouched(capsys, damaged_db, argv):
    before = _digest(damaged_db)
    argv = [a.format(db=damaged_db, tmp=damaged_db.parent) for a in argv]
    err = _error(capsys, argv)
    assert "is damaged" in err and "restore a copy" in err
    assert _digest(damaged_db) == before
    assert not (damaged_db.parent / "r.html").exists()


def test_the_store_api_refuses_it_too(damaged_db):
    with pytest.raises(StoreError, match="is damaged"):
        ResultsStore(damaged_db)


# ------------------------------------------------------------------ devices
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "relu", "--device", "nosuchdevice", "--quick"], "is not a device"),
        (["study", "-t", "xor", "--seeds", "1", "--device", "nosuchdevice", "--db", "{db}"],
         "is not a device"),
    ],
)
def test_an_unknown_device_option(capsys, tmp_path, argv, message):
    db = tmp_path / "s.sqlite"
    err = _error(capsys, [a.format(db=db) for a in argv])
    assert "--device 'nosuchdevice'" in err and message in err
    assert not db.exists()


@pytest.mark.parametrize("value", ["nosuchdevice", "cuda:99"] + [
    "cuda"] * (not torch.cuda.is_available()))
def test_an_unknown_device_in_the_environment(capsys, tmp_path, monkeypatch, value):
    monkeypatch.setenv("ACTLAB_DEVICE", value)
    db = tmp_path / "s.sqlite"
    err = _error(capsys, ["study", "-t", "xor", "--seeds", "1", "--workers", "0", "--db", str(db)])
    assert f"$ACTLAB_DEVICE {value!r}" in err
    assert not db.exists()  # refused before any run: no database, no failed runs
    err = _error(capsys, ["gradflow", "relu", "--depth", "3", "--seeds", "1"])
    assert f"$ACTLAB_DEVICE {value!r}" in err


def test_the_device_api_says_what_is_available():
    from actlab.catalog.runtime import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"not available on this machine.*available: cpu"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="is not a device"):
        resolve_device("gpu0")


# ------------------------------------------------------------------ memory
def test_bench_refuses_a_size_that_cannot_fit(capsys):
    err = _error(capsys, ["bench", "relu", "--size", "2**60"])
    assert "needs about 24.0 EiB" in err and "available on cpu" in err


def test_gradflow_refuses_a_depth_that_cannot_fit(capsys):
    err = _error(capsys, ["gradflow", "relu", "--depth", "100000"])
    assert "--depth 100000 --width 128 --batch 256 needs about 9" in err and "GiB" in err


def test_gradflow_api_estimates_before_allocating():
    from actlab.analysis import gradient_flow
    from actlab.analysis.gradflow import memory_estimate

    # per layer: float64 weights drawn (8 w^2), their gradients (8 w^2), pre-activations and
    # their gradients (2 * 8 b w) and the saved activations (8 b w)
    w, b = 128, 256
    assert memory_estimate(10, w, b) == 10 * (16 * w * w + 24 * b * w)
    with pytest.raises(ValueError, match=r"gradient flow at depth 100000.*needs about"):
        gradient_flow("relu", 100000)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["gradflow", "relu", "--width", "0"], "--width must be at least 1, got 0"),
        (["gradflow", "relu", "--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["gradflow", "relu", "--batch", "0"], "--batch must be at least 2, got 0"),
        (["gradflow", "relu", "--depth", "0"], "--depth values must be >= 1, got 0"),
        (["gradflow", "relu", "--depth", "five"], "--depth 'five' is not a number"),
        (["gradflow", "relu", "--depth", "2.5"], "--depth '2.5' must be an integer"),
        (["gain", "relu", "--sigma-b2", "-1"], "--sigma-b2 values must be >= 0, got -1"),
    ],
)
def test_analysis_sizes(capsys, argv, message):
    assert message in _error(capsys, argv)


# ------------------------------------------------------------------ study settings
@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("epochs=abc", "setting epochs='abc' must be an integer >= 1"),
        ("lr=-1", "setting lr=-1 must be > 0"),
        ("lr=0.01,nan", "setting lr=nan must be finite"),
        ("optimizer=nosuch", "setting optimizer='nosuch' must be one of adam, adamw, sgd"),
        ("batch=0", "setting batch=0 must be an integer >= 1"),
        ("weight_decay=-0.1", "setting weight_decay=-0.1 must be >= 0"),
    ],
)
def test_every_grid_value_is_checked_before_the_study_starts(capsys, tmp_path, grid, message):
    db = tmp_path / "s.sqlite"
    argv = ["study", "-t", "mlp/digits", "-a", "relu", "--seeds", "1", "--workers", "0",
            "--db", str(db), "--grid", grid]
    err = _error(capsys, argv)
    assert "task 'mlp'" in err and message in err
    assert not db.exists()


def test_a_study_with_failed_runs_exits_1_after_its_summary(capsys, tmp_path):
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    db = tmp_path / "s.sqlite"
    argv = ["study", "-t", "mlp/mnist", "-a", "relu", "--seeds", "1", "--quick", "--workers", "0",
            "--db", str(db), "--data-dir", str(data), "--no-progress"]
    # missing data stops the study before it starts, saying how to get the files
    err = _error(capsys, argv)
    assert "actlab study --download" in err and not db.exists()
    # a file that is there but corrupt fails its run: exit 1, after the summary
    (data / "mnist" / "train-images-idx3-ubyte").write_bytes(b"not an IDX file")
    assert run(argv) == 1
    out = capsys.readouterr().out
    assert "1 runs: 0 ok, 0 diverged, 1 failed" in out
    with ResultsStore(db) as store:
        (stored,) = store.runs()
    assert stored.result.status == "failed" and "is not an IDX file" in stored.result.error


def test_diverged_runs_are_results_not_failures(capsys, tmp_path):
    db = tmp_path / "s.sqlite"
    argv = ["study", "-t", "xor", "-a", "relu", "--seeds", "1", "--quick", "--workers", "0",
            "--db", str(db), "--grid", "lr=1e6", "--no-progress"]
    assert run(argv) == 0
    assert "0 ok, 1 diverged, 0 failed" in capsys.readouterr().out


# ------------------------------------------------------------------ output paths
@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["report", "-a", "relu", "--out", "{missing}/r.html", "--no-analysis"], "--out"),
        (["plot", "relu", "--out", "{missing}/f.png"], "--out"),
        (["gradflow", "relu", "--depth", "3", "--out", "{missing}/g.png"], "--out"),
        (["bench", "relu", "--quick", "--out", "{missing}/b.json"], "--out"),
        (["study", "-t", "xor", "--db", "{tmp}/s.sqlite", "--report", "{missing}/r.html"],
         "--report"),
        (["study", "-t", "xor", "--db", "{missing}/s.sqlite"], "--db"),
    ],
    ids=lambda a: a[0] if isinstance(a, list) else a,
)
def test_every_out_refuses_a_missing_directory(capsys, tmp_path, argv, option):
    missing = tmp_path / "no" / "such"
    argv = [a.format(missing=missing, tmp=tmp_path) for a in argv]
    err = _error(capsys, argv)
    assert f"{option} {missing}" in err and f"the directory {missing} does not exist" in err
    assert not (tmp_path / "no").exists()  # nothing is created silently
    assert not (tmp_path / "s.sqlite").exists()


# ------------------------------------------------------------------ presets
def test_quick_applies_to_presets_and_results_finds_them(capsys, tmp_path):
    from actlab.experiments.study import Study

    quick = Study(["cnn/mnist1d/paper"], ["relu"], seeds=1, quick=True).specs()
    full = Study(["cnn/mnist1d/paper"], ["relu"], seeds=1).specs()
    assert quick[0][1].config["epochs"] == 1 and full[0][1].config["epochs"] == 150  # cnn quick
    assert quick[0][1].config["arch"] == "mnist1d_paper"  # still the paper's model
    db = tmp_path / "p.sqlite"
    with ResultsStore(db) as store:
        for (_, spec) in (quick[0], full[0]):
            store.record(spec, RunResult("ok", metrics={"test_accuracy": 0.9}),
                         metric="test_accuracy", higher_is_better=True)
        other = Study(["cnn/mnist1d"], ["relu"], seeds=1, quick=True).specs()[0][1]
        store.record(other, RunResult("ok", metrics={"test_accuracy": 0.5}),
                     metric="test_accuracy", higher_is_better=True)
    capsys.readouterr()
    assert run(["results", "--db", str(db), "-t", "cnn/mnist1d/paper", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 3  # header + the preset's two settings (quick and full)
    assert "0.5" not in out


def test_an_unknown_activation_is_one_line(capsys, tmp_path):
    err = _error(capsys, ["study", "-t", "xor", "-a", "gelly", "--db", str(tmp_path / "s.sqlite")])
    assert "unknown activation 'gelly'" in err and "closest" in err


def test_a_bad_formula_is_one_line(capsys):
    err = _error(capsys, ["gain", "-a", "formula:__import__('os')"])
    assert "formula" in err


def test_the_device_option_reaches_the_runs(capsys, tmp_path, monkeypatch):
    """--device is passed to worker processes through $ACTLAB_DEVICE."""
    monkeypatch.delenv("ACTLAB_DEVICE", raising=False)
    db = tmp_path / "s.sqlite"
    argv = ["study", "-t", "xor", "-a", "relu", "--seeds", "1", "--quick", "--workers", "0",
            "--device", "cpu", "--db", str(db), "--no-progress"]
    assert run(argv) == 0
    assert os.environ.get("ACTLAB_DEVICE") == "cpu"
    with ResultsStore(db) as store:
        assert store.runs()[0].meta.device == "cpu"
