"""CLI commands of the study stage: ``actlab study`` and ``actlab results``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from actlab.cli._app import UserError, app
from actlab.cli._args import (
    ActivationsOpt,
    FormulaOpt,
    TasksOpt,
    activation_names,
    existing_db,
    numbers,
    out_path,
    positive,
    resolve_activations,
    split,
)
from actlab.cli._args import device as checked_device
from actlab.experiments.study import DEFAULT_DB

console = Console(markup=False, highlight=False, soft_wrap=True)
if not console.is_terminal:  # piped or captured: no terminal width to respect
    console.width = max(console.width, 120)


def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    return text


def _parse_grid(lrs: list[str] | None, grid: list[str] | None) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    if lrs:
        out["lr"] = numbers(lrs, "--lr", low=0.0, strict_low=True)
    for item in grid or []:
        key, sep, vals = item.partition("=")
        if not sep or not key.strip() or not vals.strip():
            raise UserError(f"--grid {item!r} must look like KEY=V1,V2, e.g. --grid epochs=5,10")
        out[key.strip()] = [_number(v) for v in split([vals])]
    return out


def _check_tasks(ids: list[str]) -> None:
    from actlab.experiments.study import parse_task_id

    for t in ids:
        try:
            parse_task_id(t)
        except (KeyError, ValueError) as exc:
            msg = exc.args[0] if exc.args else str(exc)
            raise UserError(str(msg)) from None


@app.command()
def study(
    tasks: TasksOpt = None,
    activations: ActivationsOpt = None,
    formulas: FormulaOpt = None,
    seeds: Annotated[int, typer.Option(help="Seeds per cell (0..N-1).")] = 3,
    db: Annotated[Path, typer.Option(help="SQLite results database (created if missing).")] = Path(
        DEFAULT_DB
    ),
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (0: this process); default min(2, CPUs).")
    ] = None,
    executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster HOST:PORT (with --executor ray).")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:N (default: $ACTLAB_DEVICE, else auto).")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Short runs (each task's quick setting).")
    ] = False,
    lr: Annotated[
        list[str] | None, typer.Option(help="Learning rates to cross (repeat, or commas).")
    ] = None,
    grid: Annotated[
        list[str] | None, typer.Option(help="Any hyper-parameter to cross: KEY=V1,V2 (repeatable).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory with local datasets (MNIST, CIFAR-10...).")
    ] = None,
    download: Annotated[
        bool, typer.Option("--download", help="Download missing datasets (needs a network).")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write the HTML report here when the study ends.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    stack: Annotated[
        bool,
        typer.Option(help="Train the seeds of a cell together as one stacked model (mlp, "
                     "cnn, char_lm); --no-stack runs every seed alone."),
    ] = True,
    list_tasks: Annotated[
        bool, typer.Option("--list-tasks", help="List the tasks and their settings, then exit.")
    ] = False,
) -> None:
    """Run the grid activations x tasks x seeds; resume by re-running the same command.

    With no arguments: the default study into actlab-study.sqlite: the article's MLP and
    CNN on Fashion-MNIST, the transformer (char_lm, GLU variants included), XOR, the FFN's
    cost and gradient flow, 3 seeds. Without -a, each task runs its own set of activations
    (the CNN the article's four, the transformer the GLU family, ...). Runs already in the
    database are kept: --seeds 10 on the same command adds seeds 3..9. Exit status 1 when a
    run failed (diverged runs are results, not failures); re-running retries the failed runs.
    """
    from actlab.experiments.store import ResultsStore
    from actlab.experiments.study import DEFAULT_TASKS, Study, run_study

    if list_tasks:
        _check_tasks(split(tasks))  # loads task files named with --tasks (listed too)
        _list_tasks()
        return
    positive(seeds, "--seeds")
    if workers is not None and workers < 0:
        raise UserError(f"--workers must be 0 or more, got {workers}")
    if executor not in {"local", "ray"}:
        raise UserError(f"--executor {executor!r} is not known; use local or ray")
    if address is not None:
        if executor != "ray":
            raise UserError("--address is for the ray executor; add --executor ray")
        from actlab.experiments.executors import check_address

        check_address(address)
    if executor == "ray" and workers == 0:
        raise UserError("--workers 0 is not possible with --executor ray; give 1 or more")
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir} is not a directory")
    if report is not None:
        out_path(report, "--report", (".html", ".htm"))
    out_path(db, "--db")
    dev = checked_device(device)
    if device is not None:  # worker processes read it from the environment
        os.environ["ACTLAB_DEVICE"] = str(dev)
    task_ids = split(tasks) or list(DEFAULT_TASKS)
    act_names = activation_names(None, activations, formulas) or None  # None: each task's own
    _check_tasks(task_ids)
    spec = Study(
        tasks=task_ids, activations=act_names, seeds=seeds, grid=_parse_grid(lr, grid),
        quick=quick, data_dir=data_dir, overrides={"download": True} if download else {},
        stack=stack,
    )
    per_task = {t: spec.activations_for(t) for t in task_ids}
    resolve_activations(list(dict.fromkeys(a for names in per_task.values() for a in names)))
    _check_data(spec)
    n = spec.size()
    ResultsStore(db).close()  # a damaged or foreign database is refused before any run
    if act_names is not None:
        console.print(
            f"study: {len(task_ids)} task(s) x {len(act_names)} activation(s) x {seeds} "
            f"seed(s) = {n} runs -> {db}"
        )
    else:  # each task its own activations (the plan)
        console.print(f"study: {len(task_ids)} task(s) x {seeds} seed(s) = {n} runs -> {db}")
        for t, names in per_task.items():
            console.print(f"  {t}: {', '.join(names)}")
    summary = run_study(
        spec, db, executor=executor, workers=workers, address=address, progress=progress
    )
    console.print(summary.line())
    for key, err in list(summary.errors.items())[:5]:
        console.print(f"  failed {key}: {err}")
    if len(summary.errors) > 5:
        console.print(f"  ... and {len(summary.errors) - 5} more (actlab results --db {db})")
    if summary.failed:
        console.print("failed runs are retried when you re-run the same command")
    console.print(f"see the results: actlab results --db {db}")
    if report is not None:
        _write_report(db, report)
    if summary.failed:
        raise typer.Exit(1)


def _check_data(spec: Any) -> None:
    """Fail before starting when a dataset the study needs is not on this machine."""
    from actlab.experiments.data import DataError, check_dataset

    for _, cfg in spec.resolved_tasks():
        name = cfg.get("dataset")
        if isinstance(name, str) and not cfg.get("download"):  # --download fetches it later
            try:
                check_dataset(name, cfg.get("data_dir"))
            except DataError as exc:
                raise UserError(str(exc.args[0] if exc.args else exc)) from None


def _list_tasks() -> None:
    from actlab.experiments.study import load_tasks

    for name, task in sorted(load_tasks().items()):
        arrow = "higher is better" if task.higher_is_better else "lower is better"
        console.print(f"{name}: {task.description}")
        console.print(f"    metric: {task.metric} ({arrow})")
        console.print("    defaults: " + ", ".join(f"{k}={v}" for k, v in task.defaults.items()))
        if task.quick:
            console.print("    --quick: " + ", ".join(f"{k}={v}" for k, v in task.quick.items()))
    try:
        from actlab.experiments.tasks import PRESETS, task_ids
    except ImportError:
        return
    console.print("task ids: " + ", ".join(task_ids()))
    for preset, recipes in PRESETS.items():
        for name, recipe in recipes.items():
            settings = ", ".join(f"{k}={v}" for k, v in recipe.items() if k != "dataset")
            ds = f"{recipe['dataset']}/" if recipe.get("dataset") else ""
            console.print(f"preset {name}/{ds}{preset}: {settings}")


def _write_report(db: Path, out: Path) -> None:
    from actlab.cli.report import write_with_progress

    console.print(f"wrote {write_with_progress(db, out)}")


def _table(setting: str, g: Any) -> Table:
    """One setting's ranking as a compact rich table."""
    from actlab.experiments.stats import format_mean_std, format_value

    metric = g["metric"].iloc[0] or "value"
    arrow = "higher is better" if g["higher_is_better"].iloc[0] else "lower is better"
    wilcoxon = bool(g["p_wilcoxon"].notna().any())
    t = Table(
        title=f"{setting}: {metric} ({arrow})", title_justify="left", box=box.SIMPLE_HEAD,
        pad_edge=False, collapse_padding=True, show_edge=False,
    )
    cols = ["#", "activation", "mean ± std", "95% CI", "n", "div", "fail", "p", "p Holm"]
    cols += ["p Wilcoxon"] * wilcoxon + ["d_z", "seeds needed"]
    for col in cols:
        t.add_column(col, justify="left" if col == "activation" else "right", no_wrap=True)
    for _, r in g.iterrows():
        mean = format_mean_std(r["mean"], r["std"])
        ci = "-" if not math.isfinite(r["ci_low"]) else (
            f"{format_value(r['ci_low'], 3)}..{format_value(r['ci_high'], 3)}"
        )
        row = [str(r["rank"]), r["activation"], mean, ci, str(r["n"]), str(r["n_diverged"]),
               str(r["n_failed"]), _p(r["p_value"]), _p(r["p_holm"])]
        row += [_p(r["p_wilcoxon"])] * wilcoxon + [format_value(r["effect_size"], 3),
                                                   _seeds(r.get("seeds_needed"))]
        t.add_row(*row)
    return t


def _seeds(n: Any) -> str:
    try:
        n = float(n)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(n) else "never" if math.isinf(n) else str(int(n))


def _extend_line(df: Any, g: Any, db: Path) -> str | None:
    """The command that adds the seeds separating the best from the runner-up, if tied."""
    from actlab.experiments.study import extend_command

    if len(g) < 2:
        return None
    best, runner = g.iloc[0], g.iloc[1]
    need = runner.get("seeds_needed")
    if runner["distinguishable"] is True or not isinstance(need, float) or not math.isfinite(
            need):
        return None
    cfg = df[df["config_hash"] == best["config_hash"]]["config"].iloc[0]
    cmd = extend_command(str(best["task"]), cfg, [best["activation"], runner["activation"]],
                         int(need), db)
    return f"to add those seeds (finished runs are kept): {cmd}" if cmd else None


def _p(x: Any) -> str:
    if x is None or not math.isfinite(float(x)):
        return "-"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


@app.command()
def results(
    db: Annotated[Path, typer.Option(help="SQLite results database.")] = Path(DEFAULT_DB),
    tasks: TasksOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    failed: Annotated[
        bool, typer.Option("--failed", help="Print the failed runs: error and stored traceback.")
    ] = False,
) -> None:
    """Per task: activations ranked by mean metric over seeds, with std, 95% CI, the
    paired test against the best, and a confidence statement."""
    from actlab.experiments.stats import statements, summarize
    from actlab.experiments.store import load_results
    from actlab.experiments.study import select_task_ids

    if fmt not in {"table", "csv", "json"}:
        raise UserError(f"--format {fmt!r} is not known; use table, csv or json")
    existing_db(db)
    df = load_results(db)
    wanted = split(tasks)
    if wanted:
        _check_tasks(wanted)
        keep = select_task_ids(df, wanted)
        if not keep.any():
            known = ", ".join(sorted(df["task_id"].unique())) or "none"
            asked = ", ".join(map(repr, wanted))
            raise UserError(f"no runs of task {asked} in {db}; it has: {known}")
        df = df[keep]
    if failed:
        _print_failed(db, set(df.loc[df["status"] == "failed", "key"]))
        return
    table = summarize(df)
    if fmt == "csv":
        print(table.to_csv(index=False), end="")
        return
    if fmt == "json":
        records = json.loads(table.to_json(orient="records"))
        print(json.dumps(records, indent=1))
        return
    if table.empty:
        console.print(f"{db} has no runs yet")
        return
    for setting, g in table.groupby("setting", sort=True):
        console.print(_table(str(setting), g))
        console.print(statements(g)[setting])
        extend = _extend_line(df, g, db)
        if extend:
            console.print(extend)
        console.print()
    console.print(f"{len(df)} runs in {os.fspath(db)}")
    n_failed = int((df["status"] == "failed").sum())
    if n_failed:
        console.print(f"{n_failed} failed: actlab results --db {db} --failed shows their errors")


def _print_failed(db: Path, keys: set[str]) -> None:
    """Each failed run among ``keys``: its key, error, and the traceback stored with it."""
    from actlab.experiments.store import ResultsStore

    with ResultsStore(db, create=False) as store:
        runs = [r for r in store.runs(status="failed") if r.key in keys]
    for run in runs:
        console.print(f"failed {run.key}: {run.result.error}")
        tb = run.result.artifacts.get("traceback")
        if isinstance(tb, str) and tb.strip():
            console.print("    " + tb.rstrip().replace("\n", "\n    "))
    console.print(f"{len(runs)} failed run(s) in {os.fspath(db)}")
