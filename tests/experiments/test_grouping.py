"""Groups of seeds: planned per cell, run by every executor, stored one run per seed,
and every path falls back cleanly (no group form, an activation that cannot stack, a
group that fails, a worker that dies, --no-stack)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from rich.console import Console

from actlab.cli import run as cli
from actlab.experiments.base import TASKS, RunSpec
from actlab.experiments.executors import (
    Job,
    LocalExecutor,
    execute_group,
    execute_job,
    plan_jobs,
)
from actlab.experiments.store import ResultsStore
from actlab.experiments.study import Study, run_study

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # worker processes import the tiny tasks by name
    sys.path.insert(0, str(HERE))
study_tasks = importlib.import_module("study_tasks")  # registers tiny_group, ...

QUIET = Console(quiet=True)


def _runs(task: str, acts=("relu",), seeds=range(4), **config):
    t = TASKS[task]
    return [(t, RunSpec(task, a, s, {**t.defaults, **config})) for s in seeds for a in acts]


def _shape(jobs):
    return [(j.spec.activation, [s.seed for s in j.specs], j.run_group is not None) for j in jobs]


def test_plan_groups_seeds_of_a_cell_and_leaves_the_rest_alone():
    runs = _runs("tiny_group", acts=("relu", "tanh", "gelu"), seeds=range(3))
    runs += _runs("tiny_fit", seeds=range(2))  # no group form: one by one
    jobs = plan_jobs(runs, parallel=1)
    assert _shape(jobs) == [  # in the order of each cell's first run
        ("relu", [0, 1, 2], True),
        ("tanh", [0], False),  # the task's stack_limit is 1 for tanh
        ("gelu", [0, 1, 2], True),
        ("tanh", [1], False),
        ("tanh", [2], False),
        ("relu", [0], False),  # tiny_fit
        ("relu", [1], False),
    ]
    assert sorted(s.key for j in jobs for s in j.specs) == sorted(s.key for _, s in runs)
    assert all(len(j.specs) == 1 for j in plan_jobs(runs, stack=False))


def test_plan_splits_cells_to_keep_workers_busy_and_caps_the_stack():
    eight = _runs("tiny_group", seeds=range(8))
    assert [len(j.specs) for j in plan_jobs(eight, parallel=1)] == [8]
    assert [len(j.specs) for j in plan_jobs(eight, parallel=2)] == [4, 4]
    assert [len(j.specs) for j in plan_jobs(eight, parallel=3)] == [3, 3, 2]
    assert [len(j.specs) for j in plan_jobs(eight, parallel=1, max_stack=3)] == [3, 3, 2]
    two_cells = _runs("tiny_group", acts=("relu", "gelu"), seeds=range(8))
    assert [len(j.specs) for j in plan_jobs(two_cells, parallel=2)] == [8, 8]
    with pytest.raises(ValueError, match="max_stack must be an integer >= 1, got 0"):
        plan_jobs(eight, max_stack=0)


def test_a_group_gives_each_seed_its_one_by_one_result():
    runs = _runs("tiny_group", seeds=range(3))
    (job,) = plan_jobs(runs)
    grouped = execute_job(job)
    alone = [execute_job(j)[0] for j in job.alone()]
    assert [o.spec.key for o in grouped] == [s.key for _, s in runs]
    for g, a in zip(grouped, alone, strict=True):
        assert g.result.artifacts["grouped"] == 3 and "grouped" not in a.result.artifacts
        assert g.result.metrics == a.result.metrics and g.result.curves == a.result.curves


def test_a_failing_group_falls_back_to_one_by_one():
    specs = [s for _, s in _runs("tiny_group", seeds=range(2), fail_group=True)]
    out = execute_group(specs, TASKS["tiny_group"].run_group, TASKS["tiny_group"].run)
    assert [o.result.status for o in out] == ["ok", "ok"]
    assert {o.result.artifacts["stack_error"] for o in out} == {
        "RuntimeError: deliberate group failure"
    }
    bad = execute_group(specs, lambda specs, device: [None], TASKS["tiny_group"].run)
    assert "expected a list of 2 RunResult" in bad[0].result.artifacts["stack_error"]
    # a real failure of one seed stays with that seed
    fails = [RunSpec("tiny_fail", "relu", s, {"unless": ""}) for s in (0, 1)]
    out = execute_group(fails, lambda specs, device: 1 / 0, TASKS["tiny_fail"].run)
    assert [o.result.error for o in out] == [
        "ValueError: deliberate failure for seed 0", "ValueError: deliberate failure for seed 1"
    ]


def test_workers_run_groups_and_a_dying_group_is_retried_seed_by_seed(tmp_path):
    log = tmp_path / "groups.txt"
    runs = _runs("tiny_group", acts=("relu", "gelu"), seeds=range(3), log=str(log))
    jobs = plan_jobs(runs, parallel=2)
    here = {o.spec.key: o.result for o in LocalExecutor(workers=0).run(jobs)}
    there = {o.spec.key: o.result for o in LocalExecutor(workers=2).run(jobs)}
    assert set(here) == set(there) == {s.key for _, s in runs}
    for key, res in here.items():
        assert there[key].metrics == pytest.approx(res.metrics, rel=1e-6)
        assert there[key].artifacts["grouped"] == 3
    assert sorted(line.split("\t")[0] for line in log.read_text().splitlines()) == ["0,1,2"] * 4

    crash = _runs("tiny_group", seeds=range(3), crash=[2])  # the group dies with seed 2
    out = {o.spec.seed: o.result for o in LocalExecutor(workers=1).run(plan_jobs(crash))}
    assert sorted(out) == [0, 1, 2]
    assert [out[s].status for s in (0, 1)] == ["ok"] * 2
    assert "grouped" not in out[0].artifacts  # retried alone
    assert out[2].status == "failed" and "killed by SIGKILL" in out[2].error


def test_a_study_with_and_without_stacking_stores_the_same_runs(tmp_path):
    study = Study(["mlp/digits"], ["relu", "prelu"], seeds=3, overrides={"epochs": 2})
    a = run_study(study, tmp_path / "a.sqlite", workers=0, console=QUIET)
    b = run_study(Study(["mlp/digits"], ["relu", "prelu"], seeds=3, overrides={"epochs": 2},
                        stack=False), tmp_path / "b.sqlite", workers=0, console=QUIET)
    assert (a.ok, b.ok) == (6, 6)
    with ResultsStore(tmp_path / "a.sqlite") as sa, ResultsStore(tmp_path / "b.sqlite") as sb:
        stacked = {r.key: r for r in sa.runs()}
        alone = {r.key: r for r in sb.runs()}
    assert set(stacked) == set(alone)
    for key, run in alone.items():
        got = stacked[key].result
        assert got.metrics == pytest.approx(run.result.metrics, rel=1e-4, abs=1e-5)
        assert got.curves["train_loss"] == pytest.approx(run.result.curves["train_loss"],
                                                         rel=1e-4)
        assert ("stack" in got.artifacts) == (run.spec.activation == "relu")  # prelu: alone
    # resume per seed: one more seed runs (alone) and nothing else
    more = run_study(Study(["mlp/digits"], ["relu", "prelu"], seeds=4, overrides={"epochs": 2}),
                     tmp_path / "a.sqlite", workers=0, console=QUIET)
    assert (more.skipped, more.ok) == (6, 2)


def test_cli_no_stack(tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    argv = ["study", "-t", "tiny_group", "-a", "relu", "--seeds", "2", "--db", str(db),
            "--workers", "0", "--no-progress"]
    assert cli([*argv, "--no-stack"]) == 0
    with ResultsStore(db) as store:
        assert all("grouped" not in r.result.artifacts for r in store.runs())
    db.unlink()
    assert cli(argv) == 0
    with ResultsStore(db) as store:
        assert {r.result.artifacts["grouped"] for r in store.runs()} == {2}
    capsys.readouterr()


def test_jobs_keep_their_one_run_form():
    spec = RunSpec("tiny_fit", "relu", 0, dict(TASKS["tiny_fit"].defaults))
    job = Job(spec, TASKS["tiny_fit"].run)
    assert job.specs == (spec,) and job.alone() == [job]
    assert [o.result.status for o in execute_job(job)] == ["ok"]


def test_plan_follows_the_tasks_stack_limit():
    limited = _runs("tiny_group", seeds=range(8), limit=3)
    assert [len(j.specs) for j in plan_jobs(limited)] == [3, 3, 2]
    alone = _runs("tiny_group", seeds=range(3), limit=1)
    assert [len(j.specs) for j in plan_jobs(alone)] == [1, 1, 1]


def test_stack_limits_of_the_real_tasks():
    import torch

    from actlab.experiments.models import MLP
    from actlab.experiments.stacked import STACK_BUDGET, activation_volume, seeds_within_budget
    from actlab.experiments.study import parse_task_id

    with torch.device("meta"):  # 5 x (3 linear + 3 activation + 2 head) values
        assert activation_volume(MLP(4, (3,), 2), torch.empty(5, 4)) == 40
    assert seeds_within_budget(STACK_BUDGET // 3) == 3 and seeds_within_budget(10**12) == 1

    def size(task_id, activation="relu", **extra):
        name, overrides = parse_task_id(task_id)
        task = TASKS[name]
        spec = RunSpec(name, activation, 0, {**task.defaults, **overrides, **extra})
        return task.stack_size(spec, 16)

    assert size("mlp/mnist1d") == 16  # 128 x 778 values a step: many fit
    assert size("mlp/mnist1d", "prelu") == 1  # learned alpha: alone
    assert size("cnn/fashion_mnist") == 1  # 128 x 85k values a step: too large to gain
    assert 1 < size("cnn/mnist1d") < 16
    assert size("char_lm", "gelu") == 1
    assert size("char_lm", "gelu", **TASKS["char_lm"].quick) == 16
    assert size("mlp/mnist1d", batch=-1) == 1  # a bad setting: alone, and the run says why
    assert size("xor") == 1  # no stacked form
