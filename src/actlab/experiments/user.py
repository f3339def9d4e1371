"""Your own training code in actlab's studies: a task decorator, task files, and ``track``.

* ``@task(metric=..., higher_is_better=...)`` on ``train(activation, seed, config)``
  registers a study task. ``activation`` arrives as an :class:`actlab.Activation`
  (``activation.module()`` builds its layer; :func:`actlab.swap` puts it into a model),
  ``seed`` is the run's seed (Python, NumPy and torch are already seeded with it),
  ``config`` the run's configuration: the task's ``defaults``, its ``quick`` overrides
  under ``--quick``, and the study's grid values. It returns a dict: numbers are the run's
  final metrics, lists of numbers its curves (``{"val_loss": [...]}``). A function that
  also takes a ``device`` argument gets the study's device (``$ACTLAB_DEVICE``, else CUDA
  when available, else the CPU).
* ``load_task_file("path/to/file.py:function")`` loads a file and returns its task; the CLI
  accepts the same text as a task id (``actlab study --tasks path/to/file.py:train``).
  The file's text travels with each run, so worker processes (``spawn``) and Ray workers
  on other machines execute the same code without having the file; its directory is put
  on ``sys.path`` (as for a script) where it exists, so that it can import its neighbours.
* ``with track(db, task=..., activation=..., seed=..., config=...) as run:`` records a run
  of the user's own loop (``run.log(step=..., val_loss=...)``) in a study database, so
  that ``actlab results``, ``actlab report`` and ``actlab recommend --from`` use it.

A run whose function raises is recorded as ``failed`` with the error and the user's
traceback (``actlab results --failed`` prints them); a run whose primary metric, or a
value named ``*loss*``, is NaN or infinite is ``diverged``.

Example:
    >>> @actlab.task(metric="accuracy", higher_is_better=True, defaults={"epochs": 5})
    ... def train(activation, seed, config):
    ...     model = MyNet(); actlab.swap(model, activation); actlab.init_(model)
    ...     ...
    ...     return {"accuracy": acc, "train_loss": losses}
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import json
import linecache
import math
import numbers
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import torch

from actlab.experiments.base import (
    STATUS_DIVERGED,
    STATUS_FAILED,
    STATUS_OK,
    TASKS,
    RunResult,
    RunSpec,
    Task,
    actlab_version,
    register_task,
)
from actlab.experiments.store import ResultsStore, RunMeta, now_iso

TrainFn = Callable[..., Mapping[str, Any]]


# ---------------------------------------------------------------------------- results
def _number(value: Any) -> float | None:
    """``float(value)`` for Python/NumPy numbers and one-element tensors, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor):
        return float(value.detach()) if value.numel() == 1 else None
    if isinstance(value, numbers.Real) or hasattr(value, "__float__"):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    return None


def _series(value: Any) -> list[float] | None:
    """A list of floats from a list/tuple/array/1-D tensor of numbers, else None."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(-1).tolist() if value.dim() == 1 else None
    elif hasattr(value, "tolist") and getattr(value, "ndim", None) == 1:
        value = value.tolist()
    if not isinstance(value, list | tuple):
        return None
    out = [_number(v) for v in value]
    return None if any(v is None for v in out) else [float(v) for v in out]  # type: ignore[arg-type]


def _is_loss(name: str) -> bool:
    return "loss" in name.lower()


def _first_bad(values: list[float]) -> int | None:
    return next((i for i, v in enumerate(values) if not math.isfinite(v)), None)


def result_from_dict(task_name: str, metric: str, out: Any) -> RunResult:
    """A :class:`RunResult` from what a user task returned (see the module docstring).

    Raises:
        ValueError: not a dict of numbers and lists of numbers, or no value for ``metric``.
    """
    if not isinstance(out, Mapping):
        raise ValueError(
            f"task {task_name!r} returned {type(out).__name__}; it must return a dict of "
            "metric name -> number (and name -> list of numbers for curves)"
        )
    metrics: dict[str, float] = {}
    curves: dict[str, list[float]] = {}
    for key, value in out.items():
        if not isinstance(key, str):
            raise ValueError(f"task {task_name!r} returned the key {key!r}; keys must be names")
        number = _number(value)
        if number is not None:
            metrics[key] = number
            continue
        series = _series(value)
        if series is None:
            raise ValueError(
                f"task {task_name!r} returned {key}={type(value).__name__}; values must be "
                "numbers (final metrics) or lists of numbers (curves)"
            )
        curves[key] = series
    if metric not in metrics:
        got = ", ".join(sorted(metrics)) or "no numbers"
        raise ValueError(
            f"task {task_name!r} returned no number for {metric!r}, its metric; it returned: {got}"
        )
    status, step = STATUS_OK, None
    for name, values in curves.items():
        bad = _first_bad(values) if _is_loss(name) else None
        if bad is not None and (step is None or bad < step):
            status, step = STATUS_DIVERGED, bad
    if any(not math.isfinite(v) for k, v in metrics.items() if k == metric or _is_loss(k)):
        status = STATUS_DIVERGED
    return RunResult(status=status, metrics=metrics, curves=curves, diverged_step=step)


def _failure(exc: BaseException, skip_frames: int = 1) -> RunResult:
    """A failed result with the exception and its traceback (minus actlab's own frames)."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        tb = tb.tb_next if tb is not None and tb.tb_next is not None else tb
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return RunResult(
        status=STATUS_FAILED, error=f"{type(exc).__name__}: {exc}", artifacts={"traceback": text}
    )


# ---------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class Source:
    """The text of a tasks file, so that other processes can execute it without the file.

    Attributes:
        path: the file's absolute path (where it was loaded from).
        text: its source code.
        module: the module name it is executed under (unique per path and content).
    """

    path: str
    text: str
    module: str


_MODULES: dict[str, ModuleType] = {}


def _execute(source: Source) -> ModuleType:
    """The module of ``source``, executed once per process (cached by name)."""
    module = _MODULES.get(source.module)
    if module is not None:
        return module
    folder = str(Path(source.path).parent)
    if Path(folder).is_dir() and folder not in sys.path:
        sys.path.insert(0, folder)  # as for a script: its neighbours are importable
    spec = importlib.util.spec_from_loader(source.module, loader=None, origin=source.path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = source.path
    sys.modules[source.module] = module
    # tracebacks show the file's lines even where the file is absent (a Ray node)
    linecache.cache[source.path] = (
        len(source.text), None, source.text.splitlines(keepends=True), source.path
    )
    try:
        exec(compile(source.text, source.path, "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(source.module, None)
        raise
    _MODULES[source.module] = module
    return module


def _from_source(source: Source, function: str, metric: str) -> Any:
    """Unpickle a file task's run function: execute the file's text, find the function.

    Never raises (an exception while unpickling would kill the worker process): a file
    that does not load here gives a run function that records the error as a failed run.
    """
    try:
        fn = getattr(_execute(source), function)
    except Exception as exc:
        return _LoadFailed(source, _failure(exc, skip_frames=0))
    return TaskFunction(fn, metric, source)


class _LoadFailed:
    """The run function of a tasks file that failed to load in a worker process."""

    def __init__(self, source: Source, result: RunResult) -> None:
        self.source = source
        self.result = result

    def __call__(self, spec: RunSpec, device: torch.device) -> RunResult:
        error = f"the tasks file {self.source.path} did not load here: {self.result.error}"
        return dataclasses.replace(self.result, error=error, artifacts=dict(self.result.artifacts))


class TaskFunction:
    """The picklable ``Task.run`` of a user task: ``(spec, device) -> RunResult``.

    A task from a file pickles as the file's text and the function's name (see
    :class:`Source`); a task defined in an importable module or a script pickles the
    function by reference (worker processes import it again).
    """

    def __init__(self, fn: TrainFn, metric: str, source: Source | None = None) -> None:
        self.fn = fn
        self.metric = metric
        self.source = source
        self.__module__ = getattr(fn, "__module__", __name__)  # Ray ships that module by value
        self.__name__ = getattr(fn, "__name__", "task")
        self.__wrapped__ = fn
        params = inspect.signature(fn).parameters
        self._device = "device" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        )

    def __reduce__(self) -> tuple[Any, ...]:
        if self.source is not None:
            return (_from_source, (self.source, self.__name__, self.metric))
        return (TaskFunction, (self.fn, self.metric))

    def __repr__(self) -> str:
        where = self.source.path if self.source else self.__module__
        return f"TaskFunction({self.__name__} from {where})"

    def __call__(self, spec: RunSpec, device: torch.device) -> RunResult:
        from actlab.catalog import get
        from actlab.experiments.train import seed_everything

        start = time.perf_counter()
        config = dict(spec.config)
        activation = get(spec.activation)
        seed_everything(spec.seed)
        try:
            extra = {"device": device} if self._device else {}
            out = self.fn(activation, spec.seed, config, **extra)
        except Exception as exc:
            result = _failure(exc)
        else:
            try:
                result = result_from_dict(spec.task, self.metric, out)
            except ValueError as exc:
                result = RunResult(status=STATUS_FAILED, error=str(exc))
        result.wall_time = time.perf_counter() - start
        result.artifacts.setdefault("config", dict(spec.config))
        return result


def _check_signature(fn: Callable[..., Any]) -> None:
    try:
        sig = inspect.signature(fn)
    except ValueError:  # no signature (a builtin): let the call decide
        return
    extra = {"device": None} if "device" in sig.parameters else {}
    try:
        sig.bind(None, None, None, **extra)
    except TypeError:
        raise TypeError(
            f"{getattr(fn, '__name__', fn)!r} cannot be a task: it must take "
            "(activation, seed, config), and optionally device, and return a dict of metrics"
        ) from None


def _builtin_names() -> set[str]:
    from actlab.experiments.study import load_tasks

    return {n for n, t in load_tasks().items() if not isinstance(t.run, TaskFunction)}


def task(
    fn: TrainFn | None = None,
    *,
    metric: str,
    higher_is_better: bool,
    architecture: str | None = None,
    name: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    quick: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> Any:
    """Register ``train(activation, seed, config) -> dict`` as a study task.

    Args:
        metric: the returned number that ranks activations (e.g. ``"test_accuracy"``).
        higher_is_better: its direction.
        architecture: ``"mlp"``, ``"cnn"`` or ``"transformer"``: the architecture whose
            choice of activation the task informs (``None``: a diagnostic).
        name: the task's name in studies and the database (default: the function's name).
        defaults: the task's settings, passed in ``config``; a study's grid may vary them
            (``--grid epochs=5,10``, ``--lr``), and only keys listed here.
        quick: overrides for ``--quick`` (short runs), keys of ``defaults``.
        description: one line for ``--list-tasks`` and the report (default: the first
            line of the function's docstring).

    Returns:
        The function itself (still callable directly), with the registered
        :class:`~actlab.experiments.base.Task` as its ``actlab_task`` attribute.

    Raises:
        ValueError: an empty metric, a name taken by a built-in task or containing ``/``
            or ``:``, ``quick`` keys missing from ``defaults``, an unknown architecture.
        TypeError: a function that cannot take ``(activation, seed, config)``.

    Example:
        >>> @actlab.task(metric="val_loss", higher_is_better=False, architecture="mlp",
        ...              defaults={"epochs": 10, "lr": 1e-3}, quick={"epochs": 1})
        ... def train(activation, seed, config):
        ...     ...
        ...     return {"val_loss": best, "train_loss": losses}
    """
    if not isinstance(metric, str) or not metric.strip():
        raise ValueError(f"task metric must be a non-empty name, got {metric!r}")
    if not isinstance(higher_is_better, bool):
        raise TypeError(f"higher_is_better must be True or False, got {higher_is_better!r}")
    defaults = dict(defaults or {})
    quick = dict(quick or {})
    unknown = sorted(set(quick) - set(defaults))
    if unknown:
        raise ValueError(
            f"quick settings {', '.join(map(repr, unknown))} are not among the task's defaults "
            f"({', '.join(sorted(defaults)) or 'none'}); add them to defaults"
        )
    try:
        json.dumps(defaults)
    except (TypeError, ValueError):
        raise ValueError(
            f"task defaults must be JSON-able (numbers, strings, lists, dicts); got {defaults!r}"
        ) from None

    def register(f: TrainFn) -> TrainFn:
        if not callable(f):
            raise TypeError(f"@actlab.task decorates a function, got {type(f).__name__}")
        _check_signature(f)
        task_name = name if name is not None else getattr(f, "__name__", "")
        if not isinstance(task_name, str) or not task_name or any(c in task_name for c in "/:"):
            raise ValueError(
                f"task name {task_name!r} must be a non-empty name without '/' or ':'"
            )
        if task_name in _builtin_names():
            raise ValueError(
                f"task name {task_name!r} is taken by a built-in task; pass name=... to "
                "@actlab.task"
            )
        doc = (inspect.getdoc(f) or "").strip().splitlines()
        t = register_task(Task(
            name=task_name,
            run=TaskFunction(f, metric),
            metric=metric,
            higher_is_better=higher_is_better,
            defaults=defaults,
            quick=quick,
            description=description or (doc[0] if doc else f"user task {task_name}"),
            architecture=architecture,
        ))
        f.actlab_task = t  # type: ignore[attr-defined]
        return f

    return register(fn) if fn is not None else register


def is_task_file(task_id: str) -> bool:
    """Whether a task id names a file: ``path/to/file.py`` or ``path/to/file.py:function``."""
    text = str(task_id).strip()
    return text.endswith(".py") or ".py:" in text


def load_task_file(ref: str | Path) -> Task:
    """Load ``path/to/file.py:function`` (or ``file.py`` with one task) and register its task.

    The file is executed as a module (not as ``__main__``: its ``if __name__ ==
    "__main__":`` block does not run); the function must be decorated with
    :func:`task`. The registered task's runs carry the file's text to the workers.

    Raises:
        ValueError: the file does not exist or does not import (the error in one line),
            the function is not there, or it is not a task.
    """
    text = str(ref).strip()
    if text.endswith(".py"):
        file_part, function = text, None
    else:
        file_part, _, function = text.rpartition(":")
        function = function.strip() or None
    path = Path(file_part).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"tasks file {file_part} does not exist (from task id {text!r})")
    try:
        code = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read tasks file {path}: {exc}") from None
    digest = hashlib.sha256(f"{path}\n{code}".encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() else "_" for c in path.stem)
    source = Source(str(path), code, f"_actlab_tasks_{safe}_{digest}")
    try:
        module = _execute(source)
    except Exception as exc:
        line = str(exc).strip().splitlines()
        raise ValueError(
            f"could not load tasks file {path}: {type(exc).__name__}: "
            f"{(line[0] if line else '').rstrip()}"
        ) from None
    found = {
        k: v for k, v in vars(module).items()
        if callable(v) and isinstance(getattr(v, "actlab_task", None), Task)
        and getattr(v, "__module__", None) == source.module
    }
    if function is None:
        if len(found) != 1:
            listed = ", ".join(sorted(found)) or "none"
            raise ValueError(
                f"{path} defines {len(found)} tasks ({listed}); name one as {file_part}:FUNCTION"
            )
        function = next(iter(found))
    fn = getattr(module, function, None)
    if fn is None:
        listed = ", ".join(sorted(found)) or "none"
        raise ValueError(f"{path} has no function {function!r}; its tasks: {listed}")
    declared = getattr(fn, "actlab_task", None)
    if not isinstance(declared, Task):
        raise ValueError(
            f"{function!r} in {path} is not an actlab task: decorate it with "
            "@actlab.task(metric=..., higher_is_better=...)"
        )
    registered = register_task(
        dataclasses.replace(declared, run=TaskFunction(fn, declared.metric, source))
    )
    fn.actlab_task = registered
    return registered


# ---------------------------------------------------------------------------- track
def _spec(task: str, activation: Any, seed: int, config: Mapping[str, Any] | None) -> RunSpec:
    from actlab.catalog import get

    if not isinstance(task, str) or not task.strip():
        raise ValueError(f"track needs a task name, got {task!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    config = dict(config or {})
    try:
        json.dumps(config)
    except (TypeError, ValueError):
        raise ValueError(
            f"config must be JSON-able (numbers, strings, lists, dicts); got {config!r}"
        ) from None
    return RunSpec(task=task.strip(), activation=get(activation).key, seed=seed, config=config)


def finished(
    db: str | Path, *, task: str, activation: Any, seed: int = 0,
    config: Mapping[str, Any] | None = None,
) -> bool:
    """Whether this run is already recorded as finished (ok or diverged) in ``db``;
    :func:`track` refuses to record a finished run twice."""
    spec = _spec(task, activation, seed, config)
    if not Path(db).exists():
        return False
    with ResultsStore(db, create=False) as store:
        return spec.key in store.finished_keys()


class Run:
    """A run of the user's own loop, recorded by :func:`track` when its block ends."""

    def __init__(self, db: Path, spec: RunSpec, metric: str, higher_is_better: bool) -> None:
        self.db = db
        self.spec = spec
        self.metric = metric
        self.higher_is_better = higher_is_better
        self.curves: dict[str, list[float]] = {}
        self.steps: dict[str, list[int]] = {}
        self.metrics: dict[str, float] = {}
        self._given: dict[str, float] = {}
        self._diverged: int | None = None
        self._started = ""
        self._t0 = 0.0

    @property
    def key(self) -> str:
        return self.spec.key

    def log(self, step: int | None = None, **values: Any) -> None:
        """Append values to the run's curves (e.g. ``run.log(step=100, val_loss=0.3)``).

        Each name gets its own series and its own steps (default: 0, 1, 2, ... per name);
        the last value of each name becomes a final metric unless :meth:`final` sets it.
        A NaN or infinite value of a name containing ``loss`` marks the run diverged.
        """
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise TypeError(f"run.log step must be an integer, got {step!r}")
        for name, value in values.items():
            number = _number(value)
            if number is None:
                raise TypeError(
                    f"run.log {name}= must be a number (or a one-element tensor), got "
                    f"{type(value).__name__}"
                )
            series = self.curves.setdefault(name, [])
            steps = self.steps.setdefault(name, [])
            at = step if step is not None else len(series)
            series.append(number)
            steps.append(at)
            self.metrics[name] = number
            if not math.isfinite(number) and _is_loss(name) and self._diverged is None:
                self._diverged = at

    def final(self, **metrics: Any) -> None:
        """Set final metrics (instead of the last logged values), e.g. ``test_accuracy=0.9``."""
        for name, value in metrics.items():
            number = _number(value)
            if number is None:
                raise TypeError(f"run.final {name}= must be a number, got {type(value).__name__}")
            self._given[name] = number

    def __enter__(self) -> Run:
        with ResultsStore(self.db) as store:
            if self.spec.key in store.finished_keys():
                raise ValueError(
                    f"run {self.spec.key} is already recorded in {self.db}; finished runs are "
                    "never replaced: use another seed or config (actlab.experiments.user."
                    "finished() tells whether a run is there)"
                )
        self._started = now_iso()
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is not None and not isinstance(exc, Exception):
            return False  # Ctrl-C, SystemExit: nothing recorded
        metrics = {**self.metrics, **self._given}
        artifacts = {"config": dict(self.spec.config), "curve_steps": self.steps,
                     "recorded_by": "track"}
        problem = None
        if exc is not None:
            result = _failure(exc, skip_frames=0)
        elif self.metric not in metrics:
            got = ", ".join(sorted(metrics)) or "nothing"
            problem = (f"the run logged no {self.metric!r}, the metric of task "
                       f"{self.spec.task!r}; it logged: {got}")
            result = RunResult(status=STATUS_FAILED, error=problem)
        else:
            bad = not math.isfinite(metrics[self.metric]) or any(
                not math.isfinite(v) for k, v in metrics.items() if _is_loss(k))
            status = STATUS_DIVERGED if (self._diverged is not None or bad) else STATUS_OK
            result = RunResult(status=status, diverged_step=self._diverged)
        result.metrics, result.curves = metrics, self.curves
        result.artifacts = {**artifacts, **result.artifacts}
        result.wall_time = time.perf_counter() - self._t0
        meta = RunMeta(started_at=self._started, finished_at=now_iso(),
                       actlab_version=actlab_version(), torch_version=torch.__version__)
        with ResultsStore(self.db) as store:
            store.record(self.spec, result, meta, metric=self.metric,
                         higher_is_better=self.higher_is_better)
        if problem is not None:
            raise ValueError(problem)
        return False


def track(
    db: str | Path,
    *,
    task: str,
    activation: Any,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
    metric: str | None = None,
    higher_is_better: bool | None = None,
) -> Run:
    """Record a run of your own training loop in a study database.

    Args:
        db: the SQLite results database (created if missing; the same as ``actlab study``).
        task: the task's name (a registered task's, or any name of yours).
        activation: the activation the run used (anything :func:`actlab.get` accepts).
        seed: the run's seed.
        config: its settings (JSON-able); runs differ by (task, activation, seed, config).
        metric: the logged value that ranks activations; default: the registered task's.
        higher_is_better: its direction; default: the registered task's.

    Returns:
        A context manager: ``with track(...) as run:`` gives a :class:`Run`; call
        ``run.log(step=..., name=value, ...)`` and optionally ``run.final(...)``. When the
        block ends the run is written: ``ok``; ``diverged`` if a logged loss or the metric is
        NaN/inf; ``failed`` (with the traceback) if the block raised, and the exception
        goes on.

    Raises:
        ValueError: no metric for an unregistered task, an unknown activation, or a run
            already finished in ``db`` (on entering the block).

    Example:
        >>> with actlab.track("runs.sqlite", task="my_cnn", activation="gelu", seed=0,
        ...                   config={"lr": 1e-3}, metric="val_loss",
        ...                   higher_is_better=False) as run:          # doctest: +SKIP
        ...     for step in range(100):
        ...         run.log(step=step, train_loss=train_step())
        ...     run.log(step=100, val_loss=evaluate())
    """
    spec = _spec(task, activation, seed, config)
    registered = TASKS.get(spec.task)
    if metric is None and registered is not None:
        metric = registered.metric
    if higher_is_better is None and registered is not None and metric == registered.metric:
        higher_is_better = registered.higher_is_better
    if not isinstance(metric, str) or not metric:
        raise ValueError(
            f"track(task={spec.task!r}) needs metric='...' (the logged value that ranks "
            "activations) and higher_is_better=..., as the task is not registered"
        )
    if not isinstance(higher_is_better, bool):
        raise ValueError(
            f"track(task={spec.task!r}) needs higher_is_better=True or False for metric {metric!r}"
        )
    return Run(Path(db), spec, metric, higher_is_better)


__all__ = [
    "Run",
    "Source",
    "TaskFunction",
    "finished",
    "is_task_file",
    "load_task_file",
    "result_from_dict",
    "task",
    "track",
]
