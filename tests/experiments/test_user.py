"""User tasks (``@actlab.task``), task files (``--tasks file.py:function``) and ``track``."""

from __future__ import annotations

import math
import sqlite3
import sys
from pathlib import Path

import pytest
import torch

import actlab
from actlab.cli import run as cli
from actlab.experiments.base import TASKS
from actlab.experiments.store import ResultsStore, load_results
from actlab.experiments.study import Study, run_study
from actlab.experiments.user import finished, load_task_file, result_from_dict, task, track

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from user_task_file import TASK_FILE, write_task_file  # noqa: E402


@pytest.fixture
def forget_tasks():
    """Leave the task registry as it was (built-in tasks loaded first)."""
    from actlab.experiments.study import load_tasks

    before = dict(load_tasks())
    yield
    TASKS.clear()
    TASKS.update(before)


def _tiny(activation, seed, config):
    """Returns what it was given."""
    assert isinstance(activation, actlab.Activation)
    return {
        "score": float(torch.rand(())),  # seeded by the study: torch.manual_seed(seed)
        "lr": config["lr"],
        "beta": activation.params.get("beta", math.nan),
        "curve": [1.0, 0.5],
    }


def test_decorator_registers_a_task_and_returns_the_function(forget_tasks):
    fn = task(metric="score", higher_is_better=False, architecture="cnn",
              defaults={"lr": 0.1, "epochs": 2}, quick={"epochs": 1})(_tiny)
    assert fn is _tiny
    t = TASKS["_tiny"]
    assert fn.actlab_task is t
    assert (t.metric, t.higher_is_better, t.architecture) == ("score", False, "cnn")
    assert dict(t.defaults) == {"lr": 0.1, "epochs": 2} and dict(t.quick) == {"epochs": 1}
    assert t.description == "Returns what it was given."


def test_a_study_runs_a_user_task_with_its_grid(tmp_path, forget_tasks):
    task(metric="score", higher_is_better=True, name="tiny_user", defaults={"lr": 0.1})(_tiny)
    study = Study(["tiny_user"], ["relu", "silu"], seeds=2, grid={"lr": [0.1, 0.2]})
    summary = run_study(study, tmp_path / "u.sqlite", workers=0, progress=False)
    assert (summary.total, summary.ok) == (8, 8)
    df = load_results(tmp_path / "u.sqlite")
    assert sorted(set(df["lr"])) == [0.1, 0.2]
    assert set(df[df.activation == "silu"]["beta"]) == {1.0}
    for _, row in df.iterrows():
        torch.manual_seed(int(row["seed"]))
        assert row["score"] == pytest.approx(float(torch.rand(())))
    with ResultsStore(tmp_path / "u.sqlite") as store:
        r = store.runs(task="tiny_user")[0]
    assert r.result.curves == {"curve": [1.0, 0.5]} and r.metric == "score"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"metric": ""}, ValueError, "task metric must be a non-empty name"),
        ({"quick": {"steps": 1}}, ValueError, "quick settings 'steps' are not among"),
        ({"name": "a/b"}, ValueError, "must be a non-empty name without '/' or ':'"),
        ({"name": "mlp"}, ValueError, "task name 'mlp' is taken by a built-in task"),
        ({"architecture": "rnn"}, ValueError, "architecture 'rnn' is not one of"),
        ({"higher_is_better": 1}, TypeError, "higher_is_better must be True or False"),
    ],
)
def test_decorator_bad_arguments(kwargs, error, message, forget_tasks):
    args = {"metric": "score", "higher_is_better": True, **kwargs}
    with pytest.raises(error, match=message):
        task(**args)(_tiny)


def test_decorator_refuses_a_function_with_the_wrong_signature():
    with pytest.raises(TypeError, match=r"must take \(activation, seed, config\)"):
        task(metric="m", higher_is_better=True)(lambda activation: {})


def test_result_from_dict():
    r = result_from_dict("t", "acc", {"acc": 0.5, "val_loss": [1.0, 0.5], "n": torch.tensor(3)})
    assert (r.status, r.metrics, r.curves) == ("ok", {"acc": 0.5, "n": 3.0},
                                               {"val_loss": [1.0, 0.5]})
    r = result_from_dict("t", "acc", {"acc": 0.5, "train_loss": [1.0, 2.0, math.nan]})
    assert (r.status, r.diverged_step) == ("diverged", 2)
    assert result_from_dict("t", "acc", {"acc": math.inf}).status == "diverged"
    with pytest.raises(ValueError, match=r"no number for 'acc', its metric; it returned: x"):
        result_from_dict("t", "acc", {"x": 1.0})
    with pytest.raises(ValueError, match=r"returned list; it must return a dict"):
        result_from_dict("t", "acc", [0.5])
    with pytest.raises(ValueError, match=r"returned model=str; values must be numbers"):
        result_from_dict("t", "acc", {"acc": 1.0, "model": "resnet"})


def test_task_file_runs_in_spawned_workers_without_the_file(tmp_path, forget_tasks):
    path = write_task_file(tmp_path, "spawned")
    names = [load_task_file(f"{path}:{f}").name for f in ("spawned", "broken")]
    assert names == ["spawned", "spawned_broken"]
    moved = path.with_suffix(".gone")
    path.rename(moved)  # the runs carry the file's text: the workers must not need it
    db = tmp_path / "s.sqlite"
    study = Study(names, ["tanh"], seeds=2, quick=True)
    summary = run_study(study, db, workers=2, progress=False)
    assert (summary.ok, summary.failed) == (2, 2)
    with ResultsStore(db) as store:
        ok = store.runs(task="spawned", status="ok")
        bad = store.runs(task="spawned_broken")
    assert {r.result.metrics["steps_seen"] for r in ok} == {3.0}  # the quick setting
    assert all(len(r.result.curves["loss"]) == 3 for r in ok)
    assert {r.result.error for r in bad} == {
        "RuntimeError: user bug on seed 0", "RuntimeError: user bug on seed 1"}
    tb = bad[0].result.artifacts["traceback"]
    # the user's frames, with their source lines although the file is gone
    assert f'File "{path}", line' in tb and "in helper" in tb
    assert 'raise RuntimeError(f"user bug on seed {seed}")' in tb
    # the same numbers as this process gives
    here = {o.spec.key: o.result for o in
            actlab.experiments.executors.LocalExecutor(0).run(
                [actlab.experiments.executors.Job(r.spec, TASKS["spawned"].run) for r in ok])}
    for r in ok:
        assert r.result.metrics == pytest.approx(here[r.key].metrics, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize(
    ("text", "ref", "message"),
    [
        ("import actlab\ndef oops(:\n    pass\n", "{p}:f",
         r"could not load tasks file .*: SyntaxError: invalid syntax"),
        ("import no_such_module_xyz\n", "{p}:f",
         "could not load tasks file .*: ModuleNotFoundError: No module named 'no_such_module_xyz'"),
        ("def train(a, s, c):\n    return {}\n", "{p}:train",
         r"'train' in .* is not an actlab task: decorate it with @actlab.task"),
        (TASK_FILE.replace("NAME", "ff"), "{p}:trian", r"has no function 'trian'; its tasks: "
                                                      "broken, ff"),
        (TASK_FILE.replace("NAME", "ff"), "{p}", r"defines 2 tasks \(broken, ff\); name one"),
        ("", "{p}.missing.py:f", "tasks file .*missing.py does not exist"),
    ],
)
def test_task_file_errors_are_one_line(tmp_path, text, ref, message, forget_tasks):
    path = tmp_path / "bad_tasks.py"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_task_file(ref.format(p=path))
    assert "\n" not in str(info.value)


def test_cli_study_with_a_task_file_and_results_failed(tmp_path, capsys, forget_tasks):
    path = write_task_file(tmp_path, "clitask")
    db = tmp_path / "c.sqlite"
    argv = ["study", "--tasks", f"{path}:clitask,{path}:broken", "-a", "relu,gelu",
            "--seeds", "1", "--quick", "--workers", "0", "--db", str(db), "--no-progress"]
    assert cli(argv) == 1  # the broken task's runs failed: status 1 after the summary
    out = capsys.readouterr().out
    assert "4 runs: 2 ok, 0 diverged, 2 failed" in out
    assert "failed clitask_broken|gelu|0|" in out and "RuntimeError: user bug on seed 0" in out
    assert cli(["results", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "clitask: accuracy (higher is better)" in out and "2 failed: actlab results" in out
    assert cli(["results", "--db", str(db), "--failed"]) == 0
    out = capsys.readouterr().out
    assert out.count("Traceback (most recent call last)") == 2 and "in helper" in out
    assert cli(["study", "--tasks", f"{path}:clitask", "--list-tasks"]) == 0
    out = capsys.readouterr().out
    assert "clitask: XOR with the user's own network, its activation swapped in." in out
    assert "defaults: steps=30, lr=0.05" in out and "--quick: steps=3" in out
    bad = tmp_path / "syntax.py"
    bad.write_text("def f(:\n")
    assert cli(["study", "--tasks", f"{bad}:f", "--db", str(tmp_path / "x.sqlite")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("actlab: error: could not load tasks file") and "\n" not in err
    assert not (tmp_path / "x.sqlite").exists()


# ---------------------------------------------------------------------------- track
def _loop(run, losses, accuracy=None):
    for step, loss in enumerate(losses):
        run.log(step=10 * step, train_loss=loss)
    if accuracy is not None:
        run.log(step=10 * len(losses), val_accuracy=accuracy)


def test_track_records_curves_and_final_metrics(tmp_path):
    db = tmp_path / "t.sqlite"
    for act, seed, acc in [("relu", 0, 0.81), ("relu", 1, 0.83), ("gelu", 0, 0.9),
                           ("gelu", 1, 0.95)]:
        with track(db, task="my_loop", activation=act, seed=seed, config={"lr": 1e-3},
                   metric="val_accuracy", higher_is_better=True) as run:
            _loop(run, [2.0, 1.0, 0.5], acc)
            assert run.key == f"my_loop|{act}|{seed}|{run.spec.config_hash}"
    with ResultsStore(db) as store:
        r = store.run(f"my_loop|gelu|1|{run.spec.config_hash}")
    assert r.result.status == "ok" and r.value == 0.95 and r.metric == "val_accuracy"
    assert r.result.metrics == {"train_loss": 0.5, "val_accuracy": 0.95}
    assert r.result.curves == {"train_loss": [2.0, 1.0, 0.5], "val_accuracy": [0.95]}
    assert r.result.artifacts["curve_steps"] == {"train_loss": [0, 10, 20], "val_accuracy": [30]}
    assert r.spec.config == {"lr": 1e-3} and r.meta.started_at <= r.meta.finished_at
    # the study's tools read it: results, recommend --from
    assert cli(["results", "--db", str(db)]) == 0
    from actlab.recommend import recommend_from_study

    rec = recommend_from_study(db, audit=False)
    (choice,) = rec.tasks
    assert choice.best == "gelu" and choice.architecture is None
    assert rec.answers == ()  # the loop declares no architecture: advice per task, not per arch
    assert finished(db, task="my_loop", activation="gelu", seed=1, config={"lr": 1e-3})
    assert not finished(db, task="my_loop", activation="gelu", seed=2, config={"lr": 1e-3})


def test_track_final_overrides_and_a_registered_task_gives_the_metric(tmp_path, forget_tasks):
    task(metric="score", higher_is_better=False, name="tracked_task")(_tiny)
    db = tmp_path / "t.sqlite"
    with track(db, task="tracked_task", activation=actlab.get("leaky_relu", alpha=0.2)) as run:
        run.log(score=3.0)
        run.log(score=2.0)
        run.final(score=1.5)
    with ResultsStore(db) as store:
        (r,) = store.runs()
    assert (r.metric, r.higher_is_better, r.value) == ("score", False, 1.5)
    assert r.spec.activation == "leaky_relu" and r.result.artifacts["curve_steps"] == {
        "score": [0, 1]}


def test_track_marks_a_nan_loss_diverged_and_an_exception_failed(tmp_path):
    db = tmp_path / "t.sqlite"
    kw = {"task": "loop", "metric": "val_loss", "higher_is_better": False}
    with track(db, activation="relu", seed=0, **kw) as run:
        run.log(step=5, val_loss=1.0)
        run.log(step=6, val_loss=torch.tensor(float("nan")))
    with pytest.raises(RuntimeError, match=r"out of memory"), \
            track(db, activation="relu", seed=1, **kw) as run:
        run.log(val_loss=1.0)
        raise RuntimeError("out of memory")
    with ResultsStore(db) as store:
        div, fail = store.runs()
    assert (div.result.status, div.result.diverged_step) == ("diverged", 6)
    assert fail.result.status == "failed" and fail.result.error == "RuntimeError: out of memory"
    assert 'raise RuntimeError("out of memory")' in fail.result.artifacts["traceback"]
    # a failed run may be recorded again (and replaces the row); a finished one may not
    with track(db, activation="relu", seed=1, **kw) as run:
        run.log(val_loss=0.5)
    with ResultsStore(db) as store:
        assert store.run(run.key).attempts == 2
    with pytest.raises(ValueError, match=r"is already recorded in .*; finished runs are never"):
        track(db, activation="relu", seed=1, **kw).__enter__()


def test_track_bad_arguments(tmp_path):
    db = tmp_path / "t.sqlite"
    with pytest.raises(ValueError, match=r"track\(task='loop'\) needs metric="):
        track(db, task="loop", activation="relu")
    with pytest.raises(ValueError, match=r"needs higher_is_better=True or False"):
        track(db, task="loop", activation="relu", metric="m")
    with pytest.raises(KeyError, match=r"unknown activation 'rleu'"):
        track(db, task="loop", activation="rleu", metric="m", higher_is_better=True)
    with pytest.raises(ValueError, match=r"config must be JSON-able"):
        track(db, task="loop", activation="relu", metric="m", higher_is_better=True,
              config={"opt": object()})
    with track(db, task="loop", activation="relu", metric="m", higher_is_better=True) as run:
        run.log(m=1.0)
        with pytest.raises(TypeError, match=r"run.log loss= must be a number"):
            run.log(loss=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"the run logged no 'acc'"), \
            track(db, task="loop", activation="gelu", metric="acc", higher_is_better=True) as run:
        run.log(loss=1.0)
    status = sqlite3.connect(db).execute("SELECT activation, status FROM runs").fetchall()
    assert sorted(status) == [("gelu", "failed"), ("relu", "ok")]


@pytest.mark.slow
def test_report_on_tracked_runs(tmp_path):
    from actlab.report.html import write_report

    db = tmp_path / "t.sqlite"
    for act, seed, acc in [("relu", 0, 0.8), ("relu", 1, 0.82), ("tanh", 0, 0.7),
                           ("tanh", 1, 0.75)]:
        with track(db, task="my_loop", activation=act, seed=seed, metric="val_accuracy",
                   higher_is_better=True) as run:
            _loop(run, [2.0, 1.0, 0.5], acc)
    out = tmp_path / "r.html"
    write_report(db, out)
    html = out.read_text()
    assert "my_loop" in html and "train_loss" in html and "relu" in html and "tanh" in html


def test_a_task_that_workers_cannot_import_is_refused_before_the_study(tmp_path, forget_tasks):
    def local(activation, seed, config):  # nested: spawn workers cannot import it again
        return {"score": 1.0}

    task(metric="score", higher_is_better=True, name="local_task")(local)
    db = tmp_path / "s.sqlite"
    with pytest.raises(ValueError, match=r"'local_task' cannot be sent to worker processes.*"
                       r"workers=0"):
        run_study(Study(["local_task"], ["relu"], seeds=1), db, workers=1)
    assert not db.exists() or load_results(db).empty  # nothing ran
    summary = run_study(Study(["local_task"], ["relu"], seeds=1), db, workers=0)  # in-process
    assert summary.ok == 1
