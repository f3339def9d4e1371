"""Executors: in-process and spawned worker processes run the same function."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actlab.experiments.base import TASKS, RunSpec
from actlab.experiments.executors import (
    Job,
    LocalExecutor,
    RayExecutor,
    check_address,
    default_workers,
    execute,
    make_executor,
)

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # worker processes and Ray import the tiny tasks by name
    sys.path.insert(0, str(HERE))
study_tasks = importlib.import_module("study_tasks")  # registers tiny_fit, tiny_slow, ...


def _jobs(task: str, acts=("relu", "tanh"), seeds=(0, 1), **config):
    t = TASKS[task]
    return [Job(RunSpec(task, a, s, {**t.defaults, **config}), t.run) for s in seeds for a in acts]


def test_execute_records_exceptions_as_failed():
    out = execute(RunSpec("tiny_fail", "relu", 3, {"unless": ""}), TASKS["tiny_fail"].run)
    assert out.result.status == "failed"
    assert out.result.error == "ValueError: deliberate failure for seed 3"
    assert "deliberate failure" in out.result.artifacts["traceback"]
    assert out.result.wall_time > 0 and out.meta.started_at <= out.meta.finished_at
    assert out.meta.torch_version and out.meta.actlab_version and out.meta.host


def test_execute_rejects_non_results():
    out = execute(RunSpec("x", "relu", 0, {}), lambda spec, device: {"accuracy": 1.0})
    assert out.result.status == "failed" and "expected RunResult" in out.result.error


def test_workers_match_in_process_and_use_one_thread():
    fit = _jobs("tiny_fit", acts=("relu", "tanh", "formula:x*tanh(x)"))
    env = _jobs("tiny_env", acts=("relu",), seeds=(0, 1, 2))
    here = {o.spec.key: o.result for o in LocalExecutor(workers=0).run(fit)}
    there = {o.spec.key: o.result for o in LocalExecutor(workers=2).run(fit + env)}
    assert set(there) == {j.spec.key for j in fit + env}
    for key in here:  # same function, same seed: identical training
        assert here[key].metrics == pytest.approx(there[key].metrics, rel=1e-6, abs=1e-7)
        assert here[key].curves["loss"] == pytest.approx(there[key].curves["loss"], rel=1e-5)
    env_out = [there[j.spec.key] for j in env]
    assert {r.metrics["threads"] for r in env_out} == {1.0}
    assert os.getpid() not in {int(r.metrics["pid"]) for r in env_out}
    assert not multiprocessing.active_children()


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, or a pid that is gone, does not)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc").is_dir():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_closing_the_iterator_stops_the_workers(tmp_path):
    log = tmp_path / "log.txt"
    jobs = _jobs("tiny_slow", acts=("relu",), seeds=range(8), sleep=1.0, log=str(log))
    it = LocalExecutor(workers=2).run(jobs)
    first = next(it)
    assert first.result.status == "ok"
    it.close()  # what Ctrl-C in the study does: queued runs never start
    started = log.read_text().splitlines()
    assert len(started) < len(jobs)
    pids = {int(line.split("\t")[1]) for line in started}
    assert os.getpid() not in pids and not any(_alive(pid) for pid in pids)


def test_a_worker_that_dies_fails_only_its_own_run():
    # seeds 0 and 1 are in flight together when seed 1 kills its worker: both are retried
    # alone, and only seed 1 is recorded as failed; the others finish in a fresh pool
    jobs = _jobs("tiny_crash", acts=("relu",), seeds=(0, 1, 2, 3), crash=[1])
    out = {o.spec.seed: o.result for o in LocalExecutor(workers=2).run(jobs)}
    assert sorted(out) == [0, 1, 2, 3]
    assert [out[s].status for s in (0, 2, 3)] == ["ok"] * 3
    assert out[1].status == "failed"
    assert "worker process died while running it (killed by SIGKILL" in out[1].error


def test_a_worker_exit_code_is_reported():
    jobs = _jobs("tiny_crash", acts=("relu",), seeds=(0, 1), crash=[0], how="exit", sleep=0)
    out = {o.spec.seed: o.result for o in LocalExecutor(workers=1).run(jobs)}
    assert out[1].status == "ok"
    assert out[0].status == "failed" and "(exit code 3)" in out[0].error


def test_three_crashes_in_a_row_stop_the_run():
    jobs = _jobs("tiny_crash", acts=("relu",), seeds=(0, 1, 2, 3, 4), crash=[0, 1, 2, 3, 4])
    seen = []
    with pytest.raises(RuntimeError, match="died on 3 runs in a row"):
        for outcome in LocalExecutor(workers=1).run(jobs):
            seen.append(outcome.result.status)
    assert seen == ["failed"] * 3


@pytest.mark.usefixtures("clean_registry")
def test_user_activations_reach_the_workers():
    import actlab

    actlab.register(actlab.from_callable(study_tasks.cube, name="cube_plus"))
    actlab.register(actlab.formula("x * sigmoid(b * x)", name="my_swish", b=1.5))
    jobs = _jobs("tiny_fit", acts=("cube_plus", "my_swish", "relu"), seeds=(0,))
    here = {o.spec.key: o.result for o in LocalExecutor(workers=0).run(jobs)}
    there = {o.spec.key: o.result for o in LocalExecutor(workers=2).run(jobs)}
    assert {r.status for r in there.values()} == {"ok"}, [r.error for r in there.values()]
    for key, res in here.items():
        assert res.status == "ok"
        assert there[key].metrics == pytest.approx(res.metrics, rel=1e-6, abs=1e-7)


@pytest.mark.usefixtures("clean_registry")
def test_a_lambda_activation_cannot_go_to_workers_and_says_so():
    import actlab

    actlab.register(actlab.from_callable(lambda x: 2 * x, name="double_it"))
    jobs = _jobs("tiny_fit", acts=("double_it",), seeds=(0,))
    with pytest.raises(ValueError, match="'double_it' cannot be sent to worker processes"):
        list(LocalExecutor(workers=2).run(jobs))
    assert [o.result.status for o in LocalExecutor(workers=0).run(jobs)] == ["ok"]


@pytest.mark.usefixtures("clean_registry")
def test_an_activation_the_workers_cannot_import_fails_its_runs_clearly(monkeypatch):
    # like a function defined under `if __name__ == "__main__":` in a script: it pickles
    # here (its module exists in this process) but not in a spawned worker
    import types

    import actlab

    ghost = types.ModuleType("ghost_module_only_here")
    exec("def ghost(x):\n    return x * x", ghost.__dict__)
    monkeypatch.setitem(sys.modules, ghost.__name__, ghost)
    actlab.register(actlab.from_callable(ghost.ghost, name="ghost_act"))
    jobs = _jobs("tiny_fit", acts=("ghost_act", "relu"), seeds=(0,))
    out = {o.spec.activation: o.result for o in LocalExecutor(workers=1).run(jobs)}
    assert out["relu"].status == "ok"
    assert out["ghost_act"].status == "failed"
    assert "could not load the user activations (ModuleNotFoundError" in out["ghost_act"].error


def test_bad_arguments():
    assert default_workers() == min(2, os.cpu_count() or 1)
    with pytest.raises(ValueError, match="workers must be an integer >= 0, got -1"):
        LocalExecutor(-1)
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        make_executor("dask")
    with pytest.raises(ValueError, match="--address is for the ray executor"):
        make_executor("local", address="1.2.3.4:6379")
    with pytest.raises(ValueError, match="Ray address 'not an address'"):
        RayExecutor(address="not an address")
    assert check_address("10.0.0.5:6379") == "10.0.0.5:6379"
    assert check_address("ray://head:10001") == "ray://head:10001"
    assert check_address("auto") == "auto"
    for bad in ("10.0.0.5", "http://x:1", "head:port", ""):
        with pytest.raises(ValueError, match="is not valid"):
            check_address(bad)
    assert list(LocalExecutor(2).run([])) == []


_FAULTS = """
import resource, sys, torch
from actlab.experiments.executors import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "1" else False
x = torch.randn(8, 128, 256)  # 1 MiB: a stacked layer's activations
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.relu(x) + 1
f0 = faults()
for _ in range(100):
    y = torch.relu(x)
    z = y * 2
    del y, z
print(applied, faults() - f0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_workers_keep_freed_memory_and_stop_page_faulting():
    """Freed 1 MiB tensors that go back to the OS fault back in on the next allocation;
    after keep_freed_memory() (worker processes) they are reused. glibc's defaults adapt
    (whether they trim depends on the heap's layout), so both processes start from the
    trimming settings, fixed through glibc's environment variables."""
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_MMAP_THRESHOLD_": "131072"}

    def run(flag: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _FAULTS, flag], capture_output=True,
                             text=True, check=True, env=env).stdout.split()
        return out[0], int(out[1])

    applied, kept = run("1")
    assert applied == "True"
    default = run("0")[1]
    assert kept < 100 < default  # ~5 vs ~48,000 here (256 pages per tensor)
