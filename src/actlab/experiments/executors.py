"""Executors: run a list of jobs and yield each outcome as soon as it finishes.

Every executor calls the same function, :func:`execute_job`, on each job: in this process
(``LocalExecutor(workers=0)``), in worker processes started with ``spawn`` (one torch
thread each), or as a Ray task with ``num_cpus=1`` (:class:`RayExecutor`). Executors
never write results; the study driver does, as outcomes arrive (one writer).

A job is one run, or a *group*: several seeds of one (task, activation, configuration)
that the task trains as one stacked model (``Task.run_group``); a group yields one
outcome per seed, each stored as its own run. :func:`plan_jobs` forms the groups. If a
group fails as a whole, its seeds run again one by one in the same worker (so a failure
stays with the seed that causes it), and a worker that dies during a group has each of
its seeds retried alone.

Example:
    >>> jobs = [Job(RunSpec("xor", "relu", 0, {}), TASKS["xor"].run)]   # doctest: +SKIP
    >>> for outcome in LocalExecutor(workers=2).run(jobs):              # doctest: +SKIP
    ...     print(outcome.spec.key, outcome.result.status)
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import platform
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import torch

from actlab.experiments.base import (
    STATUS_FAILED,
    RunResult,
    RunSpec,
    Task,
    actlab_version,
    default_device,
)
from actlab.experiments.store import RunMeta, now_iso

RunFn = Callable[[RunSpec, torch.device], RunResult]
GroupFn = Callable[[list[RunSpec], torch.device], list[RunResult]]

#: at most this many seeds train as one stacked model
MAX_STACK = 16


@dataclass(frozen=True)
class Job:
    """One run to execute (its spec and the task's module-level, picklable run function),
    or a group: ``spec`` and the seeds in ``stacked``, trained together by ``run_group``
    (``run`` is the one-by-one fallback)."""

    spec: RunSpec
    run: RunFn
    stacked: tuple[RunSpec, ...] = ()
    run_group: GroupFn | None = None

    @property
    def specs(self) -> tuple[RunSpec, ...]:
        """Every run of the job (one, or the group's seeds)."""
        return (self.spec, *self.stacked)

    def alone(self) -> list[Job]:
        """The job's runs as one-by-one jobs."""
        return [Job(spec, self.run) for spec in self.specs]


def plan_jobs(
    runs: Iterable[tuple[Task, RunSpec]],
    *,
    stack: bool = True,
    parallel: int = 1,
    max_stack: int = MAX_STACK,
) -> list[Job]:
    """The jobs for ``(task, spec)`` runs: seeds of one cell grouped where the task can.

    With ``stack``, the runs of one (task, activation, configuration) whose task has a
    ``run_group`` form groups of at most ``max_stack`` seeds and at most what the task
    allows for that run (:meth:`Task.stack_size`); when there are fewer jobs than
    ``parallel`` workers, cells are split further so that every worker has one. A group of
    one is a plain run. Jobs come in the order of each cell's first run.

    Example:
        >>> jobs = plan_jobs(study.specs(), parallel=2)        # doctest: +SKIP
    """
    if not isinstance(max_stack, int) or max_stack < 1:
        raise ValueError(f"max_stack must be an integer >= 1, got {max_stack!r}")
    runs = list(runs)
    cells: dict[tuple[str, str, str], list[tuple[Task, RunSpec]]] = {}
    limits: dict[tuple[str, str, str], int] = {}
    order: list[tuple[str, str, str] | tuple[Task, RunSpec]] = []
    for task, spec in runs:
        key = (spec.task, spec.activation, spec.config_hash)
        if stack and key not in limits:
            limits[key] = task.stack_size(spec, max_stack)
        if stack and limits[key] > 1:
            if key not in cells:
                cells[key] = []
                order.append(key)
            cells[key].append((task, spec))
        else:
            order.append((task, spec))
    units = len(order)
    jobs: list[Job] = []
    for item in order:
        if not isinstance(item[0], str):
            task, spec = item  # type: ignore[misc]
            jobs.append(Job(spec, task.run))
            continue
        members = cells[item]  # type: ignore[index]
        n = len(members)
        spread = min(n, -(-parallel // units)) if units < parallel else 1
        pieces = max(-(-n // limits[item]), spread)  # type: ignore[index]
        start = 0
        for p in range(pieces):
            size = n // pieces + (1 if p < n % pieces else 0)
            group = members[start : start + size]
            start += size
            task = group[0][0]
            specs = [spec for _, spec in group]
            if len(specs) == 1:
                jobs.append(Job(specs[0], task.run))
            else:
                jobs.append(Job(specs[0], task.run, tuple(specs[1:]), task.run_group))
    return jobs


@dataclass
class Outcome:
    """What an executor yields: the spec, its result, and where/when it ran."""

    spec: RunSpec
    result: RunResult
    meta: RunMeta


def default_workers() -> int:
    """``min(2, number of CPUs)``."""
    return max(1, min(2, os.cpu_count() or 1))


def execute(spec: RunSpec, run: RunFn) -> Outcome:
    """Run one job and never raise: an exception becomes a ``failed`` result.

    ``wall_time`` is the task's own figure when it sets one, else the measured time.
    """
    started = now_iso()
    t0 = time.perf_counter()
    device = default_device()
    try:
        result = run(spec, device)
        if not isinstance(result, RunResult):
            raise TypeError(
                f"task {spec.task!r} returned {type(result).__name__}, expected RunResult"
            )
    except Exception as exc:  # recorded, retried on the next study
        tb = traceback.format_exc(limit=-3)
        result = RunResult(
            status=STATUS_FAILED,
            error=f"{type(exc).__name__}: {exc}",
            artifacts={"traceback": tb},
        )
    elapsed = time.perf_counter() - t0
    if not result.wall_time:
        result.wall_time = elapsed
    return Outcome(spec=spec, result=result, meta=_meta(started, device))


def _meta(started: str, device: torch.device) -> RunMeta:
    return RunMeta(
        started_at=started,
        finished_at=now_iso(),
        host=platform.node(),
        device=str(device),
        actlab_version=actlab_version(),
        torch_version=torch.__version__,
        python_version=platform.python_version(),
    )


def execute_group(specs: list[RunSpec], run_group: GroupFn, run: RunFn) -> list[Outcome]:
    """Run seeds of one cell as one stacked model; never raise.

    If the group fails as a whole (an exception, or not one ``RunResult`` per spec), each
    seed runs again one by one with ``run`` (:func:`execute`), and its result notes why in
    ``artifacts["stack_error"]``.
    """
    started = now_iso()
    device = default_device()
    try:
        results = run_group(list(specs), device)
        if not (
            isinstance(results, list | tuple)
            and len(results) == len(specs)
            and all(isinstance(r, RunResult) for r in results)
        ):
            raise TypeError(
                f"task {specs[0].task!r} returned {type(results).__name__} from run_group, "
                f"expected a list of {len(specs)} RunResult"
            )
    except Exception as exc:  # fall back to one by one: failures stay with their seed
        why = f"{type(exc).__name__}: {exc}"
        outcomes = [execute(spec, run) for spec in specs]
        for outcome in outcomes:
            outcome.result.artifacts["stack_error"] = why
        return outcomes
    meta = _meta(started, device)
    return [Outcome(spec=s, result=r, meta=meta) for s, r in zip(specs, results, strict=True)]


def execute_job(job: Job) -> list[Outcome]:
    """One outcome per run of the job (:func:`execute`, or :func:`execute_group`)."""
    if job.stacked and job.run_group is not None:
        return execute_group(list(job.specs), job.run_group, job.run)
    return [execute(spec, job.run) for spec in job.specs]


def _check_sendable(jobs: list[Job]) -> None:
    """Check that every task's run function can travel to ``spawn`` workers (pickled by
    reference; Ray's cloudpickle ships functions by value and needs no check).

    Raises:
        ValueError: a run function cannot be pickled (a task defined in code that worker
            processes cannot import again: ``exec``, a lambda, a nested function).
    """
    seen: set[str] = set()
    for job in jobs:
        if job.spec.task in seen:
            continue
        seen.add(job.spec.task)
        try:
            pickle.dumps((job.run, job.run_group))
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise ValueError(
                f"task {job.spec.task!r} cannot be sent to worker processes "
                f"({type(exc).__name__}: {exc}); define its function with `def` at the top "
                "level of a script or module, put it in a file and pass "
                "'path/to/file.py:function' as the task, or run with workers=0"
            ) from None


def _user_activations(jobs: list[Job]) -> bytes:
    """The user-registered activations the jobs name, pickled for the workers."""
    from actlab.catalog.registry import export_user

    return export_user({job.spec.activation for job in jobs})


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Let glibc keep freed memory in the process instead of handing it back to the OS.

    A training step allocates and frees the same tensors every step. glibc maps large
    blocks afresh and trims the heap when a large block is freed, so the next step
    page-faults its memory back in: a stacked mlp/mnist1d run of 8 seeds took 49,000
    page faults (about 6 % of its time) that this removes (``benchmarks/engine.py``).
    Blocks up to ``mmap_threshold`` bytes come from the heap, which is trimmed only above
    ``trim_threshold`` free bytes. Called in actlab's worker processes only (process-wide;
    the memory stays reusable by the process), and by the kernel benchmarks
    (:func:`actlab.bench.timing.reuse_memory`). Returns whether it applied (``False`` off
    glibc).
    """
    mallopt = _glibc("mallopt")  # musl has none
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def release_freed_memory() -> bool:
    """Hand the freed memory glibc keeps in the process back to the OS (``malloc_trim``).

    The counterpart of :func:`keep_freed_memory` for processes that move between very
    different allocation patterns (the kernel benchmark, between activations). Returns
    whether it applied (``False`` off glibc).
    """
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


def _glibc(name: str) -> Any:
    """glibc's function ``name`` through ctypes, or ``None`` (not Linux, or not glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def _init_worker(user: bytes = b"") -> None:
    """Worker initializer: register the parent's user activations, one torch thread,
    ignore Ctrl-C (the parent stops workers), and exit when the parent dies (a study
    killed with SIGKILL leaves no orphans)."""
    global _PARENT, _IMPORT_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # blocked since spawn (see _ctrl_c_held)
    from actlab.catalog.registry import import_user

    try:
        import_user(user)
    except Exception as exc:  # reported by the runs that need them (see below)
        _IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
    torch.set_num_threads(1)
    keep_freed_memory()
    _PARENT = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(_PARENT,), daemon=True).start()


_PARENT: int | None = None
_IMPORT_ERROR: str | None = None


def _execute_in_worker(job: Job) -> list[Outcome]:
    """:func:`execute_job` in a pool worker; never starts a run once the parent is gone."""
    if _PARENT is not None and os.getppid() != _PARENT:
        os._exit(1)
    if _IMPORT_ERROR is not None and not _known(job.spec.activation):
        return [
            _failed(
                spec,
                f"the worker could not load the user activations ({_IMPORT_ERROR}); a "
                "function defined under `if __name__ == '__main__':` in a script is "
                "invisible to worker processes: define it above that line, register a "
                "formula, or use workers=0",
            )
            for spec in job.specs
        ]
    return execute_job(job)


def _known(key: str) -> bool:
    from actlab.catalog.registry import spec_of

    if key.startswith("formula:"):
        return True
    try:
        spec_of(key)
    except KeyError:
        return False
    return True


def _exit_with_parent(parent: int, poll: float = 0.5) -> None:
    while True:
        time.sleep(poll)
        if os.getppid() != parent:
            os._exit(1)


class LocalExecutor:
    """Worker processes on this machine (``spawn`` start method, one torch thread each).

    Args:
        workers: number of worker processes; 0 runs every job in this process
            (in order, no pickling); default :func:`default_workers`.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        workers = default_workers() if workers is None else workers
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
        self.workers = workers

    def start(self) -> None:
        """Nothing to prepare (workers start with :meth:`run`)."""

    def parallel(self) -> int:
        """How many jobs run at once."""
        return max(1, self.workers)

    def describe(self) -> str:
        if self.workers == 0:
            return "in this process"
        return f"{self.workers} local worker process{'es' if self.workers != 1 else ''}"

    def run(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Execute ``jobs``; yield each :class:`Outcome` as it finishes.

        At most ``workers`` jobs are in flight. A worker process that dies (out of memory,
        a crash in native code) fails the run it was executing and the study goes on in a
        fresh pool; when several runs were in flight (several jobs, or a group of seeds),
        each is retried alone so that only the one that kills its worker is recorded as
        failed. Three crashes in a row with no run finishing in between stop the study
        with :class:`RuntimeError`.

        Closing the iterator (or Ctrl-C while waiting) cancels queued jobs and stops
        the workers; runs in flight are lost, yielded ones are not.
        """
        jobs = list(jobs)
        if not jobs:
            return
        if self.workers == 0:
            for job in jobs:
                yield from execute_job(job)
            return
        _check_sendable(jobs)
        user = _user_activations(jobs)
        queue: deque[Job] = deque(jobs)
        suspects: deque[Job] = deque()  # in flight when a worker died: re-run one at a time
        crashes_in_a_row = 0
        while queue or suspects:
            pool = _start_pool(min(self.workers, len(queue) or 1), user)
            procs: list[multiprocessing.process.BaseProcess] = []  # for their exit codes
            running: dict[Future[list[Outcome]], Job] = {}
            lost: list[Job] = []

            try:
                _fill(pool, running, queue, suspects, self.workers, procs)
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    ready: list[Outcome] = []
                    for fut in done:
                        job = running.pop(fut)
                        try:
                            ready.extend(fut.result())
                        except BrokenProcessPool:
                            lost.append(job)
                    if lost:  # the pool is broken: every run still in flight is lost too
                        for fut in list(running):
                            job = running.pop(fut)
                            try:
                                ready.extend(fut.result())
                            except BrokenProcessPool:
                                lost.append(job)
                    else:
                        # keep the workers busy while the caller records the outcomes
                        _fill(pool, running, queue, suspects, self.workers, procs)
                    for outcome in ready:
                        crashes_in_a_row = 0
                        yield outcome
                    if lost:
                        break
            finally:
                if running:  # closed early (Ctrl-C, an error): stop now, lose the runs in flight
                    for fut in running:
                        fut.cancel()
                    _stop_pool(pool)
                elif lost:
                    _stop_pool(pool)
                else:
                    pool.shutdown(wait=True)
            if not lost:
                continue
            if sum(len(job.specs) for job in lost) > 1:  # the culprit is unknown: each alone
                suspects.extend(single for job in lost for single in job.alone())
                continue
            crashes_in_a_row += 1
            yield _crashed(lost[0], _death(procs))
            if crashes_in_a_row >= 3:
                raise RuntimeError(
                    "worker processes died on 3 runs in a row (out of memory, a crash in "
                    "native code, or a script that starts a study without an "
                    "`if __name__ == '__main__':` guard?); finished runs are saved: "
                    "re-run to resume, or use workers=0 to see the error"
                )


def _fill(
    pool: ProcessPoolExecutor,
    running: dict[Future[list[Outcome]], Job],
    queue: deque[Job],
    suspects: deque[Job],
    workers: int,
    procs: list[multiprocessing.process.BaseProcess],
) -> None:
    """Submit jobs until ``workers`` are in flight (suspects: one at a time, alone)."""
    with _ctrl_c_held():
        if suspects:
            if not running:
                job = suspects.popleft()
                running[pool.submit(_execute_in_worker, job)] = job
        else:
            while queue and len(running) < workers:
                job = queue.popleft()
                running[pool.submit(_execute_in_worker, job)] = job
    procs.extend(p for p in _processes(pool) if p not in procs)


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold SIGINT back (block it) while ``submit`` may spawn workers.

    A spawned worker inherits the blocked signal mask, so a Ctrl-C that reaches the whole
    process group while the worker is still importing torch stays pending there instead of
    printing a traceback from the import; :func:`_init_worker` then ignores SIGINT, which
    discards it. In the parent a Ctrl-C that arrives inside the window is delivered when
    it closes (KeyboardInterrupt right after the submit), never lost. Where signals cannot
    be blocked (Windows, a thread other than the main one) this does nothing.
    """
    if (threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "pthread_sigmask")):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _start_pool(workers: int, user: bytes) -> ProcessPoolExecutor:
    """``spawn`` workers that register the parent's user activations (``user``) first."""
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(user,)
    )


def _processes(pool: ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
    """The pool's worker processes (a private attribute; empty if it ever goes away)."""
    return list((getattr(pool, "_processes", None) or {}).values())


def _death(procs: list[multiprocessing.process.BaseProcess]) -> str:
    """Why a worker died, from the exit codes of a broken pool's processes."""
    # the pool's own thread reaps its workers, and a waitpid that loses that race leaves
    # exitcode None for a moment: poll until every code is known (or 5 s have passed)
    deadline = time.monotonic() + 5.0
    while any(_exitcode(p) is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.01)
    # the pool terminates the surviving workers (SIGTERM) after one dies: look past them
    codes = sorted(
        (c for c in map(_exitcode, procs) if c not in (None, 0)),
        key=lambda c: c == -signal.SIGTERM,
    )
    for code in codes:
        if code < 0:
            with contextlib.suppress(ValueError):
                name = signal.Signals(-code).name
                hint = " (the out-of-memory killer sends it)" if name == "SIGKILL" else ""
                return f"killed by {name}{hint}"
            return f"killed by signal {-code}"
    return f"exit code {codes[0]}" if codes else "cause unknown"


def _exitcode(p: multiprocessing.process.BaseProcess) -> int | None:
    try:
        return p.exitcode
    except ValueError:  # closed by the pool: nothing more to learn
        return None


def _crashed(job: Job, why: str) -> Outcome:
    """The outcome of a run whose worker process died while executing it."""
    return _failed(
        job.spec,
        f"the worker process died while running it ({why}); it is retried on the next "
        "study, or run it with workers=0 to see the error",
    )


def _failed(spec: RunSpec, error: str) -> Outcome:
    stamp = now_iso()
    return Outcome(
        spec=spec,
        result=RunResult(status=STATUS_FAILED, error=error),
        meta=RunMeta(started_at=stamp, finished_at=stamp),
    )


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued work and terminate the worker processes now."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


_ADDRESS = re.compile(r"^(auto|local|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5})$")


def check_address(address: str) -> str:
    """Validate a Ray address (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``)."""
    if not _ADDRESS.match(address.strip()):
        raise ValueError(
            f"Ray address {address!r} is not valid; use HOST:PORT (e.g. 10.0.0.5:6379), "
            "ray://HOST:PORT, or auto"
        )
    return address.strip()


def _reachable(address: str, timeout: float = 5.0) -> str | None:
    """None if a TCP connection to ``HOST:PORT`` (or ``ray://HOST:PORT``) opens, else why not.

    Ray itself retries an unreachable address for minutes; this answers in seconds.
    """
    if address in {"auto", "local"}:
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _execute_ray(job: Job, user: bytes = b"") -> list[Outcome]:
    from actlab.catalog.registry import import_user

    import_user(user)
    torch.set_num_threads(1)
    keep_freed_memory()
    return execute_job(job)


class RayExecutor:
    """Each run is a Ray task (``num_cpus=1``); outcomes are consumed with ``ray.wait``.

    Args:
        address: a Ray cluster (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``); ``None``
            starts a local Ray instance with ``num_cpus`` CPUs and no dashboard.
        num_cpus: CPUs of the local instance (ignored with ``address``); default
            :func:`default_workers`.
        num_gpus: GPUs per run (0 by default; set 1 to give each run a GPU).

    If Ray is already initialised in this process it is used as is and left running.
    Task functions defined outside the ``actlab`` package are shipped by value, so a
    study defined in a user's script runs on a cluster without installing that script.
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, num_cpus: int | None = None, num_gpus: float = 0
    ) -> None:
        self.address = None if address is None else check_address(address)
        self.num_cpus = default_workers() if num_cpus is None else num_cpus
        if not isinstance(self.num_cpus, int) or self.num_cpus < 1:
            raise ValueError(f"Ray needs num_cpus >= 1, got {num_cpus!r}")
        self.num_gpus = num_gpus
        self._ray: Any = None
        self._owns_ray = False

    def describe(self) -> str:
        return f"Ray at {self.address}" if self.address else f"local Ray ({self.num_cpus} CPUs)"

    def parallel(self) -> int:
        """How many jobs run at once: the cluster's CPUs once connected, else ``num_cpus``."""
        if self._ray is not None:
            with contextlib.suppress(Exception):
                return max(1, int(self._ray.cluster_resources().get("CPU", self.num_cpus)))
        return self.num_cpus

    def start(self) -> None:
        """Connect to the cluster (or start the local instance); idempotent.

        Raises:
            ValueError: Ray is not installed, or the address cannot be reached.
        """
        if self._ray is None:
            self._ray, self._owns_ray = self._init()

    def _init(self) -> tuple[Any, bool]:
        try:
            import ray
        except ImportError:
            raise ValueError(
                "the ray executor needs Ray: pip install 'actlab[ray]' (or pip install ray)"
            ) from None
        if ray.is_initialized():
            return ray, False
        import logging

        if self.address and (why := _reachable(self.address)):
            raise ValueError(
                f"could not reach Ray at {self.address} ({why}); start a cluster there with "
                "`ray start --head`, or leave out --address to use a local Ray instance"
            )
        try:
            if self.address:
                ray.init(address=self.address, logging_level=logging.WARNING)
            else:
                ray.init(
                    num_cpus=self.num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
            where = self.address or "a local instance"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"could not start or reach Ray at {where}: {first}") from None
        return ray, True

    def run(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Submit every job as a Ray task; yield outcomes as they finish.

        A Ray task that fails (its worker died) fails its run; a group's seeds are then
        submitted again, each alone, so that only the one that kills its worker fails.
        """
        jobs = list(jobs)
        if not jobs:
            return
        self.start()
        ray, started = self._ray, self._owns_ray
        _ship_by_value(ray, {fn for job in jobs for fn in (job.run, job.run_group) if fn})
        user = ray.put(_user_activations(jobs))
        remote = ray.remote(num_cpus=1, num_gpus=self.num_gpus, max_retries=0)(_execute_ray)
        refs: list = []
        try:
            by_ref = {remote.remote(job, user): job for job in jobs}
            refs = list(by_ref)
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=None)
                for ref in ready:
                    job = by_ref[ref]
                    try:
                        yield from ray.get(ref)
                    except Exception as exc:  # the worker died; execute_job() never raises
                        if len(job.specs) > 1:
                            for single in job.alone():
                                again = remote.remote(single, user)
                                by_ref[again] = single
                                refs.append(again)
                                pending.append(again)
                            continue
                        yield _failed(job.spec, f"Ray task failed: {type(exc).__name__}")
            refs = []
        finally:
            for ref in refs:
                with contextlib.suppress(Exception):  # already finished or gone
                    ray.cancel(ref, force=True)
            if started:
                ray.shutdown()
                self._ray, self._owns_ray = None, False


def _ship_by_value(ray: object, fns: Iterable[RunFn]) -> None:
    """Pickle task modules outside the actlab package by value (Ray workers may not have them)."""
    for fn in fns:
        mod_name = getattr(fn, "__module__", None)
        if not mod_name or mod_name == "__main__" or mod_name.split(".")[0] == "actlab":
            continue
        module = sys.modules.get(mod_name)
        if module is not None:
            ray.cloudpickle.register_pickle_by_value(module)  # type: ignore[attr-defined]


def make_executor(
    kind: str = "local", *, workers: int | None = None, address: str | None = None
) -> LocalExecutor | RayExecutor:
    """``"local"`` -> :class:`LocalExecutor`; ``"ray"`` -> :class:`RayExecutor`."""
    if kind == "local":
        if address is not None:
            raise ValueError("--address is for the ray executor; add --executor ray")
        return LocalExecutor(workers)
    if kind == "ray":
        if workers is not None and workers < 1:
            raise ValueError(f"the ray executor needs workers >= 1, got {workers}")
        return RayExecutor(address=address, num_cpus=workers)
    raise ValueError(f"unknown executor {kind!r}; use local or ray")
