"""The Ray executor end to end, on a local Ray instance that the test starts."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import pytest

from actlab.experiments.base import TASKS, RunSpec
from actlab.experiments.executors import Job, LocalExecutor, RayExecutor
from actlab.experiments.store import ResultsStore, load_results
from actlab.experiments.study import Study, run_study
from actlab.experiments.user import load_task_file

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # worker processes and Ray import the tiny tasks by name
    sys.path.insert(0, str(HERE))
study_tasks = importlib.import_module("study_tasks")  # registers tiny_fit, tiny_slow, ...
write_task_file = importlib.import_module("user_task_file").write_task_file

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'actlab[ray]')")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    yield
    ray.shutdown()


def test_ray_study_matches_in_process(tmp_path, local_ray):
    db = tmp_path / "ray.sqlite"
    study = Study(tasks=["tiny_fit", "tiny_fail", "tiny_diverge"], activations=["relu", "tanh"],
                  seeds=2, grid={"lr": [0.05, 10.0]}, overrides={"steps": 10})
    summary = run_study(study, db, executor="ray", progress=False)
    # tiny_fit x 2 lr, tiny_diverge x 2 lr (lr=10 diverges), tiny_fail: 2 x 2 each
    assert (summary.total, summary.ok, summary.diverged, summary.failed) == (20, 12, 4, 4)
    assert summary.executor == "local Ray (2 CPUs)"
    df = load_results(db)
    assert set(df[df.status == "failed"].error) == {
        "ValueError: deliberate failure for seed 0", "ValueError: deliberate failure for seed 1"}
    assert set(df[df.status == "diverged"].diverged_step) == {16}
    # the same run function gives the same numbers on Ray as in this process
    with ResultsStore(db) as store:
        fit = store.runs(task="tiny_fit")
    assert len(fit) == 8
    jobs = [Job(r.spec, TASKS["tiny_fit"].run) for r in fit]
    here = {o.spec.key: o.result for o in LocalExecutor(0).run(jobs)}
    for r in fit:
        assert r.result.metrics == pytest.approx(here[r.key].metrics, rel=1e-6, abs=1e-7)
        assert r.meta.torch_version and r.meta.started_at <= r.meta.finished_at
    # re-running skips everything that finished; the failed runs are retried
    again = run_study(study, db, executor="ray", progress=False)
    assert (again.skipped, again.failed, again.executed) == (16, 4, 4)


def test_ray_workers_use_one_thread(local_ray):
    jobs = [Job(RunSpec("tiny_env", "relu", s, {}), TASKS["tiny_env"].run) for s in range(3)]
    outcomes = list(RayExecutor(num_cpus=2).run(jobs))
    assert {o.result.metrics["threads"] for o in outcomes} == {1.0}
    assert ray.is_initialized()  # an instance that the caller started is left running


def test_ray_runs_a_task_file_that_its_workers_never_saw(tmp_path, local_ray):
    before = dict(TASKS)
    path = write_task_file(tmp_path, "ray_user")
    try:
        names = [load_task_file(f"{path}:{f}").name for f in ("ray_user", "broken")]
        path.unlink()  # the runs carry the file's text: Ray's workers never read the file
        db = tmp_path / "ray_user.sqlite"
        study = Study(names, ["relu", "tanh"], seeds=2, quick=True)
        summary = run_study(study, db, executor="ray", progress=False)
        assert (summary.ok, summary.failed) == (4, 4)
        with ResultsStore(db) as store:
            ok = store.runs(task="ray_user", status="ok")
            (bad, *_) = store.runs(task="ray_user_broken")
        assert {r.result.metrics["steps_seen"] for r in ok} == {3.0}
        assert bad.result.error == "RuntimeError: user bug on seed 0"
        tb = bad.result.artifacts["traceback"]
        assert f'File "{path}", line' in tb and "in helper" in tb
        # the same numbers as in this process
        here = {o.spec.key: o.result for o in LocalExecutor(0).run(
            [Job(r.spec, TASKS["ray_user"].run) for r in ok])}
        for r in ok:
            assert r.result.metrics == pytest.approx(here[r.key].metrics, rel=1e-6, abs=1e-7)
    finally:
        TASKS.clear()
        TASKS.update(before)
