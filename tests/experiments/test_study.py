"""Studies: grid expansion, skip of finished runs, failed retried, diverged final."""

from __future__ import annotations

import importlib
import shlex
import sys
from pathlib import Path

import pytest
from rich.console import Console

from actlab.experiments.store import ResultsStore, load_results
from actlab.experiments.study import Study, parse_task_id, run_study

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # worker processes and Ray import the tiny tasks by name
    sys.path.insert(0, str(HERE))
study_tasks = importlib.import_module("study_tasks")  # registers tiny_fit, tiny_slow, ...

QUIET = Console(quiet=True)


def test_grid_expansion_and_keys():
    study = Study(tasks=["tiny_fit", "tiny_diverge"], activations=["relu", "Swish", "relu"],
                  seeds=2, grid={"steps": [5, 10]})
    runs = study.specs()
    # tiny_fit: 2 steps values x 2 activations x 2 seeds; tiny_diverge has no 'steps': 1 x 2 x 2
    assert len(runs) == 8 + 4 == study.size()
    keys = [spec.key for _, spec in runs]
    assert len(set(keys)) == len(keys)
    assert {spec.activation for _, spec in runs} == {"relu", "silu"}  # aliases -> canonical
    assert [spec.seed for _, spec in runs] == sorted(spec.seed for _, spec in runs)  # seed-major
    fit = [spec for task, spec in runs if task.name == "tiny_fit"]
    assert {spec.config["steps"] for spec in fit} == {5, 10}
    assert all(spec.config["lr"] == 0.05 for spec in fit)  # defaults merged
    assert Study(["tiny_fit"], ["relu"], seeds=[3, 5, 3]).seed_list() == [3, 5]
    quick = Study(["tiny_fit"], ["relu"], seeds=1, quick=True).specs()[0][1]
    assert quick.config["steps"] == 5
    formula = Study(["tiny_fit"], ["formula:x*tanh(x)"], seeds=1).specs()[0][1]
    assert formula.activation == "formula:x*tanh(x)"


def test_data_dir_reaches_tasks_that_take_it(tmp_path):
    runs = Study(["tiny_slow", "tiny_fit"], ["relu"], seeds=1, data_dir=tmp_path / ".").specs()
    configs = {task.name: spec.config for task, spec in runs}
    assert configs["tiny_slow"]["data_dir"] == str(tmp_path.resolve())
    assert "data_dir" not in configs["tiny_fit"]


def test_bad_studies():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        Study(["nope"], ["relu"]).specs()
    with pytest.raises(KeyError, match="unknown activation 'reluu'"):
        Study(["tiny_fit"], ["reluu"]).specs()
    with pytest.raises(ValueError, match="seeds must be >= 1, got 0"):
        Study(["tiny_fit"], ["relu"], seeds=0).specs()
    with pytest.raises(ValueError, match="hyper-parameter 'momentum' is not used by any task"):
        Study(["tiny_fit"], ["relu"], grid={"momentum": [0.9]}).specs()
    with pytest.raises(ValueError, match="give at least one activation"):
        Study(["tiny_fit"], []).specs()
    assert parse_task_id("tiny_fit") == ("tiny_fit", {})


def test_run_skip_retry_and_diverge(tmp_path):
    db = tmp_path / "s.sqlite"
    log = tmp_path / "executions.txt"
    marker = tmp_path / "fixed"
    study = Study(
        tasks=["tiny_slow", "tiny_fail", "tiny_diverge"], activations=["relu", "tanh"], seeds=2,
        overrides={"sleep": 0.0, "log": str(log), "unless": str(marker)},
        grid={"lr": [0.1, 10.0]},
    )
    s1 = run_study(study, db, workers=0, console=QUIET)
    assert (s1.total, s1.skipped, s1.ok, s1.diverged, s1.failed) == (16, 0, 8, 4, 4)
    assert "ValueError: deliberate failure" in next(iter(s1.errors.values()))
    df = load_results(db)
    assert len(df) == 16
    div = df[df.status == "diverged"]
    assert set(div.task) == {"tiny_diverge"} and {c["lr"] for c in div.config} == {10.0}
    # w <- w (1 - 2 lr) = -19 w from w=3: the loss 9 * 19^(2(k-1)) first exceeds the float32
    # maximum 3.4e38 at step k = 16 (2(k-1) > log(3.4e38 / 9) / log(19) = 29.4)
    assert set(div.diverged_step) == {16}
    fail = df[df.status == "failed"]
    assert set(fail.task) == {"tiny_fail"} and fail.error.str.contains("deliberate").all()
    assert len(log.read_text().splitlines()) == 4  # tiny_slow: 2 activations x 2 seeds

    # re-run: finished runs (ok and diverged) are skipped; failed ones are retried
    marker.write_text("now it works")
    s2 = run_study(study, db, workers=0, console=QUIET)
    assert (s2.skipped, s2.ok, s2.diverged, s2.failed) == (12, 4, 0, 0)
    assert len(log.read_text().splitlines()) == 4  # no finished run executed again
    with ResultsStore(db) as store:
        retried = store.runs(task="tiny_fail")
        assert {r.result.status for r in retried} == {"ok"} and {r.attempts for r in retried} == {2}
        assert {r.attempts for r in store.runs(task="tiny_slow")} == {1}
    s3 = run_study(study, db, workers=0, console=QUIET)
    assert s3.skipped == 16 and s3.executed == 0 and "16 runs" in s3.line()


def test_recorded_metric_columns(tmp_path):
    db = tmp_path / "w.sqlite"
    study = Study(tasks=["tiny_fit"], activations=["relu", "elu"], seeds=2, quick=True)
    assert run_study(study, db, workers=0, progress=False).ok == 4
    df = load_results(db)
    assert df.accuracy.between(0, 1).all() and (df.value == df.accuracy).all()
    assert (df.metric == "accuracy").all() and df.higher_is_better.all()
    assert (df.wall_time > 0).all() and df.torch_version.notna().all()
    assert df.loss.notna().all() and set(df.task_id) == {"tiny_fit"}


def test_a_crashing_run_is_recorded_and_the_study_goes_on(tmp_path):
    db = tmp_path / "c.sqlite"
    study = Study(tasks=["tiny_crash"], activations=["relu", "tanh"], seeds=3,
                  overrides={"crash": [2], "sleep": 0.05})
    s = run_study(study, db, workers=2, console=QUIET)
    assert (s.total, s.ok, s.failed) == (6, 4, 2)
    assert all("killed by SIGKILL" in e for e in s.errors.values())
    assert {k.split("|")[2] for k in s.errors} == {"2"}
    df = load_results(db)
    assert sorted(df[df.status == "failed"].seed) == [2, 2]
    # the failed runs are retried by the next study (and fail again here); nothing else runs
    again = run_study(study, db, workers=2, console=QUIET)
    assert (again.skipped, again.failed) == (4, 2)


def test_the_default_study_spans_the_three_architectures():
    from collections import Counter

    from actlab.experiments.study import (
        ARTICLE_ACTIVATIONS,
        CNN_ACTIVATIONS,
        DEFAULT_ACTIVATIONS,
        DEFAULT_TASKS,
    )

    study = Study()
    assert study.tasks == DEFAULT_TASKS
    by_task = {task.name: (task, spec.config) for task, spec in study.specs()}
    assert {t.architecture for t, _ in by_task.values()} == {"mlp", "cnn", "transformer", None}
    assert by_task["mlp"][1]["dataset"] == by_task["cnn"][1]["dataset"] == "fashion_mnist"
    acts: dict[str, set[str]] = {}
    for task, spec in study.specs():
        acts.setdefault(task.name, set()).add(spec.activation)
    assert acts["cnn"] == set(CNN_ACTIVATIONS) == {"relu", "leaky_relu", "elu", "gelu"}
    assert {"reglu", "geglu", "swiglu", "gelu", "relu"} <= acts["char_lm"]
    assert acts["ffn_timing"] == acts["char_lm"]
    assert acts["mlp"] == set(ARTICLE_ACTIVATIONS)
    assert acts["xor"] == acts["gradflow"] == set(DEFAULT_ACTIVATIONS)  # identity: XOR fails
    assert not {"reglu", "geglu", "swiglu"} & (acts["mlp"] | acts["cnn"])
    counts = Counter(task.name for task, _ in study.specs())
    assert all(n % 3 == 0 for n in counts.values())  # 3 seeds of every cell
    # a study naming tasks but no activations takes each task's own set
    assert Study(["cnn/digits"], seeds=1).activations_for("cnn/digits") == list(CNN_ACTIVATIONS)
    assert Study(["depth/digits"], seeds=1).activations_for("depth/digits") == list(
        DEFAULT_ACTIVATIONS)


def test_quick_overrides_a_preset_and_activations_per_task():
    (_, short), = Study(["cnn/fashion_mnist/short"], ["relu"], seeds=1).resolved_tasks()
    (task, quick), = Study(["cnn/fashion_mnist/short"], ["relu"], seeds=1,
                           quick=True).resolved_tasks()
    assert short["train_size"] > quick["train_size"] and quick == {
        **task.defaults, "dataset": "fashion_mnist", **task.quick}
    study = Study(["tiny_fit", "tiny_diverge"], {"tiny_fit": ["relu", "elu"],
                                                 "tiny_diverge": ["tanh"]}, seeds=2)
    runs = {(t.name, s.activation) for t, s in study.specs()}
    assert runs == {("tiny_fit", "relu"), ("tiny_fit", "elu"), ("tiny_diverge", "tanh")}
    with pytest.raises(ValueError, match="task 'tiny_diverge' has no activations in the "
                                         "study's mapping; its keys are: 'tiny_fit'"):
        Study(["tiny_fit", "tiny_diverge"], {"tiny_fit": ["relu"]}).specs()


def test_runs_keep_the_architecture_of_their_task(tmp_path):
    from actlab.experiments.base import TASKS, Task, register_task

    register_task(Task("tiny_convnet", study_tasks.fit_run, "accuracy", True,
                       {"steps": 5, "lr": 0.05}, {}, "a tiny stand-in CNN", architecture="cnn"))
    try:
        db = tmp_path / "a.sqlite"
        run_study(Study(["tiny_convnet", "tiny_fit"], ["relu"], seeds=1), db, workers=0,
                  progress=False)
        with ResultsStore(db) as store:
            archs = {r.spec.task: r.result.artifacts["architecture"] for r in store.runs()}
    finally:
        del TASKS["tiny_convnet"]
    assert archs == {"tiny_convnet": "cnn", "tiny_fit": None}


def test_extend_command_reproduces_the_setting():
    from actlab.experiments.base import RunSpec
    from actlab.experiments.study import extend_command

    cases = [(["cnn/fashion_mnist/short"], False, {}), (["mlp/digits"], True, {}),
             (["char_lm/short"], False, {}), (["mlp/digits"], False, {"lr": [0.01]})]
    for ids, quick, grid in cases:
        (task, spec), = Study(ids, ["relu"], seeds=1, quick=quick, grid=grid).specs()
        cmd = extend_command(task.name, spec.config, ["relu", "formula:x * tanh(x)"], 12, "a b.db")
        args = shlex.split(cmd)
        assert args[:4] == ["actlab", "study", "-t", ids[0]], cmd
        assert args[args.index("--db") + 1] == "a b.db" and ("--quick" in args) == quick
        assert "formula:x * tanh(x)" in args
        grid_args = {args[i + 1].split("=")[0]: [float(args[i + 1].split("=")[1])]
                     for i, a in enumerate(args) if a == "--grid"}
        (_, again), = Study([ids[0]], ["relu"], seeds=1, quick=quick, grid=grid_args).specs()
        assert RunSpec(task.name, "", 0, again.config).config_hash == spec.config_hash
    (task, spec), = Study(["mlp/digits"], ["relu"], seeds=1, grid={"hidden": [[10]]}).specs()
    assert extend_command(task.name, spec.config, ["relu"], 5, "x.db") is None  # not a CLI value
