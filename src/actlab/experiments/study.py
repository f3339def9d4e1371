"""Studies: the grid activations x tasks x seeds (x hyper-parameters), run and stored.

A :class:`Study` expands into :class:`~actlab.experiments.base.RunSpec` s; :func:`run_study`
skips those already finished in the database, executes the rest with an executor, and
writes each result the moment it arrives (one transaction per run). Re-running the same
study is therefore a resume: finished runs (``ok`` or ``diverged``) are skipped, ``failed``
runs are retried, and a study killed at any moment loses only its runs in flight.

Example:
    >>> study = Study(tasks=["xor", "mlp/digits"], activations=["relu", "gelu"], seeds=3)
    >>> summary = run_study(study, "runs.sqlite", workers=2)            # doctest: +SKIP
    >>> actlab.load_results("runs.sqlite")                              # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from actlab.experiments.base import (
    STATUS_DIVERGED,
    STATUS_FAILED,
    STATUS_OK,
    TASKS,
    RunSpec,
    Task,
    default_device,
)
from actlab.experiments.executors import (
    Job,
    LocalExecutor,
    RayExecutor,
    make_executor,
    plan_jobs,
)
from actlab.experiments.store import ResultsStore

ARTICLE_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "mish")
"""The activations the seed article discusses and plots."""
# the article's activations, with its linear baseline (identity) that cannot solve XOR
DEFAULT_ACTIVATIONS = ("identity", *ARTICLE_ACTIVATIONS)
CNN_ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu")
"""The four activations the article compares on its CNN."""
FFN_ACTIVATIONS = ("relu", "gelu", "reglu", "geglu", "swiglu")
"""A transformer FFN's choices: ReLU (the original transformer), GELU (the framework's
answer) and the three GLU variants that did best in Shazeer (2020)."""

ACTIVATION_PLAN: dict[str, tuple[str, ...]] = {
    "xor": DEFAULT_ACTIVATIONS,
    "gradflow": DEFAULT_ACTIVATIONS,
    "mlp": ARTICLE_ACTIVATIONS,
    "cnn": CNN_ACTIVATIONS,
    "char_lm": FFN_ACTIVATIONS,
    "ffn_timing": FFN_ACTIVATIONS,
}
"""Activations per task name when a study names none (others get DEFAULT_ACTIVATIONS)."""

# The default study: the three architectures on real data (the article's MLP and CNN on
# Fashion-MNIST, the transformer on the pydoc text), XOR's linear baseline, the FFN's cost
# and gradient flow; shorter schedules (the ``short`` presets) keep it within 10 minutes on 2
# cores (see the README's "Evidence" section).
DEFAULT_TASKS = (
    "xor", "mlp/fashion_mnist/short", "cnn/fashion_mnist/short", "char_lm/short",
    "ffn_timing", "gradflow",
)
DEFAULT_SEEDS = 3
DEFAULT_DB = "actlab-study.sqlite"


def load_tasks() -> dict[str, Task]:
    """The task registry, with the built-in tasks imported (registered) when available."""
    try:
        import actlab.experiments.tasks  # noqa: F401  (registers the built-in tasks)
    except ModuleNotFoundError as exc:
        if exc.name != "actlab.experiments.tasks":
            raise
    return TASKS


def parse_task_id(task_id: str) -> tuple[str, dict[str, Any]]:
    """``"mlp/digits"`` -> ``("mlp", {"dataset": "digits"})``; ``"xor"`` -> ``("xor", {})``.

    Uses the tasks module's parser when it has one (it knows each task's datasets). A
    file, ``path/to/file.py:function``, is loaded and its task registered
    (:func:`actlab.experiments.user.load_task_file`).
    """
    from actlab.experiments.user import is_task_file, load_task_file

    if is_task_file(task_id):
        return load_task_file(task_id).name, {}
    load_tasks()
    try:
        from actlab.experiments.tasks import parse_task_id as parse
    except ImportError:  # no tasks module (yet), or it has no parser
        parse = None
    if parse is not None:
        name, overrides = parse(task_id)
        return name, dict(overrides)
    name, _, dataset = task_id.strip().partition("/")
    if name not in TASKS:
        known = ", ".join(sorted(TASKS)) or "none registered"
        raise ValueError(f"unknown task {task_id!r}; known tasks: {known}")
    return name, ({"dataset": dataset} if dataset else {})


def select_task_ids(df: Any, task_ids: Sequence[str]) -> Any:
    """Rows of a results frame (:func:`actlab.load_results`) that belong to any of
    ``task_ids``: the ids ``actlab study --tasks`` accepts, presets included
    (``cnn/mnist1d/paper`` matches the runs of that recipe, with or without ``--quick``).

    Returns:
        A boolean ``pandas.Series`` aligned with ``df``.
    """
    import pandas as pd

    keep = pd.Series(False, index=df.index)
    tasks = load_tasks()
    for task_id in task_ids:
        name, overrides = parse_task_id(task_id)
        quick = tasks[name].quick if name in tasks else {}
        wanted = {k: v for k, v in overrides.items() if k not in quick}
        configs = df["config"] if "config" in df else pd.Series([{}] * len(df), index=df.index)
        match = (df["task"] == name) & configs.map(
            lambda c, w=wanted: all(isinstance(c, dict) and c.get(k) == v for k, v in w.items())
        )
        keep |= match
    return keep


def _activation_key(name: str) -> str:
    from actlab.catalog import get

    return get(name).key


def _grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    for k in keys:
        if not list(grid[k]):
            raise ValueError(f"hyper-parameter {k!r} has no values; give at least one")
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*grid.values())]


@dataclass
class Study:
    """A grid of runs: activations x tasks x seeds x hyper-parameter grid.

    Args:
        tasks: task ids, ``TASK``, ``TASK/DATASET`` or a preset (``"mlp/digits"``,
            ``"cnn/fashion_mnist/short"``).
        activations: activation names, aliases or ``"formula:<text>"`` keys, run on every
            task; or ``{task id: names}`` per task; or ``None`` (default): each task's
            activations from :data:`ACTIVATION_PLAN` (by task name), else
            :data:`DEFAULT_ACTIVATIONS`.
        seeds: a number N (seeds 0..N-1) or an explicit list of seeds.
        grid: hyper-parameters to cross, e.g. ``{"lr": [1e-3, 1e-2]}``; a key applies to
            the tasks whose configuration has it (others run once), and must belong to
            at least one task.
        quick: apply each task's ``quick`` overrides (short runs, for tests and demos).
        overrides: configuration set on every task that has the key (e.g. ``epochs``).
        data_dir: directory with local datasets, passed as ``data_dir`` to tasks that
            take one.
        stack: train the seeds of one (task, activation, configuration) together as one
            stacked model where the task supports it (``mlp``, ``cnn``, ``char_lm``; not
            activations with learned parameters or user callables, which run one by
            one). Each seed is still its own run in the database, with the numbers of its
            one-by-one run up to float rounding. ``False`` runs every seed alone.

    Example:
        >>> Study(["xor"], ["relu", "tanh"], seeds=2).size()   # doctest: +SKIP
        4
    """

    tasks: Sequence[str] = DEFAULT_TASKS
    activations: Sequence[str] | Mapping[str, Sequence[str]] | None = None
    seeds: int | Sequence[int] = DEFAULT_SEEDS
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    quick: bool = False
    overrides: Mapping[str, Any] = field(default_factory=dict)
    data_dir: str | Path | None = None
    stack: bool = True

    def seed_list(self) -> list[int]:
        if isinstance(self.seeds, int):
            if self.seeds < 1:
                raise ValueError(f"seeds must be >= 1, got {self.seeds}")
            return list(range(self.seeds))
        seeds = [int(s) for s in self.seeds]
        if not seeds:
            raise ValueError("give at least one seed")
        return list(dict.fromkeys(seeds))

    def activations_for(self, task_id: str) -> list[str]:
        """The activation names this study runs on ``task_id`` (before resolution)."""
        acts = self.activations
        if acts is None:
            name, _ = parse_task_id(task_id)
            return list(ACTIVATION_PLAN.get(name, DEFAULT_ACTIVATIONS))
        if isinstance(acts, str):
            return [acts]
        if isinstance(acts, Mapping):
            if task_id not in acts:
                raise ValueError(
                    f"task {task_id!r} has no activations in the study's mapping; its keys "
                    f"are: {', '.join(map(repr, acts)) or 'none'}"
                )
            return [str(a) for a in acts[task_id]]
        return [str(a) for a in acts]

    def resolved_tasks(self) -> list[tuple[Task, dict[str, Any]]]:
        """``(task, configuration)`` per task id, before the hyper-parameter grid.

        The configuration is the task's defaults, then the task id's dataset and preset,
        then its ``quick`` overrides (with ``quick=True``: a preset made quick), then the
        study's ``overrides``.
        """
        tasks = load_tasks()
        if not self.tasks:
            raise ValueError("give at least one task")
        out = []
        for task_id in self.tasks:
            name, overrides = parse_task_id(task_id)
            task = tasks[name]
            config = dict(task.defaults)
            config.update(overrides)  # the dataset and a preset's recipe, then --quick on top
            if self.quick:
                config.update(task.quick)
            for k, v in self.overrides.items():
                if k in config:
                    config[k] = v
            if self.data_dir is not None and "data_dir" in config:
                config["data_dir"] = str(Path(self.data_dir).expanduser().resolve())
            out.append((task, config))
        return out

    def specs(self) -> list[tuple[Task, RunSpec]]:
        """Every run of the grid, seed-major (all of seed 0 first), with its task."""
        seeds = self.seed_list()
        tasks = self.resolved_tasks()
        task_acts = []
        for task_id in self.tasks:
            names = self.activations_for(task_id)
            if not names:
                raise ValueError(f"give at least one activation (task {task_id!r} has none)")
            task_acts.append(list(dict.fromkeys(_activation_key(a) for a in names)))
        for key in self.grid:
            if not any(key in cfg for _, cfg in tasks):
                names = ", ".join(sorted({k for _, cfg in tasks for k in cfg}))
                raise ValueError(
                    f"hyper-parameter {key!r} is not used by any task of this study; "
                    f"their settings are: {names}"
                )
        points = _grid_points(self.grid)
        configs: list[tuple[Task, dict[str, Any], list[str]]] = []
        for (task, cfg), acts in zip(tasks, task_acts, strict=True):
            seen: set[str] = set()
            for point in points:
                c = {**cfg, **{k: v for k, v in point.items() if k in cfg}}
                rs = RunSpec(task.name, "", 0, c)
                if rs.config_hash not in seen:
                    seen.add(rs.config_hash)
                    if task.check is not None:  # every run's settings, before any starts
                        task.check(c)
                    configs.append((task, c, acts))
        runs: dict[str, tuple[Task, RunSpec]] = {}
        for seed in seeds:
            for task, cfg, acts in configs:
                for act in acts:
                    spec = RunSpec(task=task.name, activation=act, seed=seed, config=cfg)
                    runs.setdefault(spec.key, (task, spec))
        return list(runs.values())

    def size(self) -> int:
        return len(self.specs())


@dataclass
class StudySummary:
    """What :func:`run_study` did."""

    db: Path
    total: int
    skipped: int
    ok: int = 0
    diverged: int = 0
    failed: int = 0
    wall_time: float = 0.0
    interrupted: bool = False
    executor: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def executed(self) -> int:
        return self.ok + self.diverged + self.failed

    def line(self) -> str:
        """One-line summary, e.g. ``12 runs: 10 ok, 1 diverged, 1 failed, 0 skipped...``."""
        head = "interrupted: " if self.interrupted else ""
        remaining = self.total - self.skipped - self.executed
        tail = f", {remaining} not run" if remaining else ""
        return (
            f"{head}{self.total} runs: {self.ok} ok, {self.diverged} diverged, "
            f"{self.failed} failed, {self.skipped} already in the database{tail} "
            f"({self.wall_time:.1f} s, {self.executor}); results in {self.db}"
        )


def run_study(
    study: Study,
    db: str | Path = DEFAULT_DB,
    *,
    executor: str | LocalExecutor | RayExecutor = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> StudySummary:
    """Run a study's unfinished runs and write each result to ``db`` as it finishes.

    Args:
        study: the grid.
        db: the SQLite results database (created if missing).
        executor: ``"local"`` (worker processes), ``"ray"``, or an executor object.
        workers: worker processes (local; 0 = this process) or local Ray CPUs.
        address: Ray cluster address (``executor="ray"``).
        progress: show a progress bar with ETA (on ``console``, default stderr).

    Returns:
        A :class:`StudySummary`. Ctrl-C stops the workers and re-raises
        ``KeyboardInterrupt`` after printing what was saved.

    With ``study.stack`` (the default), the unfinished seeds of each cell whose task has a
    stacked form run as groups (:func:`~actlab.experiments.executors.plan_jobs`); each
    seed is still written as its own run, the moment its group finishes.

    Worker processes use the ``spawn`` start method: in a script, call this under
    ``if __name__ == "__main__":``. Tasks defined in a script must live in an importable
    module (workers import them by name); formula activations travel by their key, and
    activations registered with :func:`actlab.register` are sent to the workers.
    """
    console = console or Console(stderr=True)
    default_device()  # an unknown or absent $ACTLAB_DEVICE fails here, not in every run
    runs = study.specs()
    ex = make_executor(executor, workers=workers, address=address) if isinstance(
        executor, str
    ) else executor
    t0 = time.perf_counter()
    with ResultsStore(db) as store:
        done = store.finished_keys()
        todo = [(task, spec) for task, spec in runs if spec.key not in done]
        summary = StudySummary(
            db=Path(db), total=len(runs), skipped=len(runs) - len(todo), executor=ex.describe()
        )
        tasks_by_key = {spec.key: task for task, spec in todo}
        jobs: list[Job] = []
        if todo:
            ex.start()  # connect to Ray before drawing the progress bar (errors come first)
            jobs = plan_jobs(todo, stack=study.stack, parallel=ex.parallel())
        bar = Progress(
            TextColumn("[bold]study[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not progress or not todo,
            transient=False,
        )
        outcomes = ex.run(jobs)
        try:
            with bar:
                bar_id = bar.add_task("runs", total=len(todo), status="")
                for outcome in outcomes:
                    task = tasks_by_key[outcome.spec.key]
                    # what the run is evidence for, kept with it (the registry may lack a
                    # task defined in a user's script when the results are read later)
                    outcome.result.artifacts.setdefault("architecture", task.architecture)
                    store.record(
                        outcome.spec,
                        outcome.result,
                        outcome.meta,
                        metric=task.metric,
                        higher_is_better=task.higher_is_better,
                    )
                    _count(summary, outcome.spec, outcome.result)
                    bar.update(bar_id, advance=1, status=_bar_status(summary))
        except KeyboardInterrupt:
            summary.interrupted = True
            summary.wall_time = time.perf_counter() - t0
            outcomes.close()
            console.print(summary.line())
            console.print("re-run the same command to resume; finished runs are kept")
            raise
        finally:
            outcomes.close()
    summary.wall_time = time.perf_counter() - t0
    return summary


def _count(summary: StudySummary, spec: RunSpec, result: Any) -> None:
    if result.status == STATUS_OK:
        summary.ok += 1
    elif result.status == STATUS_DIVERGED:
        summary.diverged += 1
    elif result.status == STATUS_FAILED:
        summary.failed += 1
        summary.errors[spec.key] = result.error or "unknown error"


def _bar_status(s: StudySummary) -> str:
    bits = [f"{s.ok} ok"]
    if s.diverged:
        bits.append(f"{s.diverged} diverged")
    if s.failed:
        bits.append(f"{s.failed} failed")
    return ", ".join(bits)


def _task_id_candidates(task: str, dataset: str | None) -> list[str]:
    base = f"{task}/{dataset}" if dataset else task
    out = [base]
    try:
        from actlab.experiments.tasks import PRESETS
    except ImportError:
        return out
    for preset, recipes in PRESETS.items():
        recipe = recipes.get(task)
        if recipe is not None and recipe.get("dataset") == (dataset or None):
            out.append(f"{base}/{preset}")
    return out


def _grid_value(value: Any) -> str | None:
    """``value`` as ``--grid KEY=VALUE`` text that parses back to it, else ``None``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str) and value and "," not in value and value not in {"true", "false"}:
        try:
            float(value)
        except ValueError:
            return value
    return None


def extend_command(
    task: str,
    config: Mapping[str, Any],
    activations: Sequence[str],
    seeds: int,
    db: str | Path,
) -> str | None:
    """The ``actlab study`` command that adds seeds to these runs (finished runs are kept).

    It names the task id (with its preset, if the stored configuration came from one),
    ``--quick`` and ``--grid KEY=VALUE`` as needed, so that the command's runs have the
    stored configuration's hash, and it checks that they do. ``None`` when the
    configuration cannot be written on the command line (use :class:`Study` from Python).

    Example:
        >>> extend_command("mlp", cfg, ["relu", "gelu"], 20, "runs.sqlite")  # doctest: +SKIP
        'actlab study -t mlp/digits -a relu -a gelu --seeds 20 --db runs.sqlite'
    """
    import shlex

    target = RunSpec(task, "", 0, dict(config)).config_hash
    dataset = config.get("dataset")
    data_dir = config.get("data_dir")
    best: tuple[int, list[str]] | None = None
    for task_id in _task_id_candidates(task, dataset if isinstance(dataset, str) else None):
        for quick in (False, True):
            try:
                study = Study([task_id], [activations[0]], seeds=1, quick=quick,
                              data_dir=data_dir)
                (_, cfg), = study.resolved_tasks()
            except (ValueError, KeyError):
                continue
            diff = {k: v for k, v in config.items() if k != "data_dir" and cfg.get(k) != v}
            if set(cfg) != set(config):
                continue
            texts = {k: _grid_value(v) for k, v in diff.items()}
            if any(t is None for t in texts.values()):
                continue
            grid = {k: [v] for k, v in diff.items()}
            check = Study([task_id], [activations[0]], seeds=1, quick=quick, grid=grid,
                          data_dir=data_dir)
            (_, spec), = check.specs()
            if spec.config_hash != target:
                continue
            args = ["actlab", "study", "-t", task_id]
            for act in activations:
                args += ["-a", act]
            args += ["--seeds", str(int(seeds)), "--db", str(db)]
            if quick:
                args.append("--quick")
            for k, t in texts.items():
                args += ["--grid", f"{k}={t}"]
            if data_dir:
                args += ["--data-dir", str(data_dir)]
            if best is None or len(diff) + quick < best[0]:
                best = (len(diff) + quick, args)
    return None if best is None else shlex.join(best[1])
