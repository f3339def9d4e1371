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

console = Console(markup=False, highlight=False, soft_wrap=True)
if not console.is_terminal:  # piped or captured: no terminal width to respect
    console.width = max(console.width, 120)


def _split(items: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (options repeat or take commas)."""
    return [p.strip() for item in items or [] for p in item.split(",") if p.strip()]


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
        values = [_number(v) for v in _split(lrs)]
        bad = [v for v in values if not isinstance(v, int | float) or v <= 0 or isinstance(v, bool)]
        if bad:
            raise UserError(f"--lr {bad[0]!r} is not a positive number; e.g. --lr 1e-3,1e-2")
        out["lr"] = values
    for item in grid or []:
        key, sep, vals = item.partition("=")
        if not sep or not key.strip() or not vals.strip():
            raise UserError(f"--grid {item!r} must look like KEY=V1,V2, e.g. --grid epochs=5,10")
        out[key.strip()] = [_number(v) for v in _split([vals])]
    return out


def _check_activations(names: list[str]) -> None:
    from actlab.catalog import get

    for n in names:
        try:
            get(n)
        except KeyError as exc:
            raise UserError(exc.args[0]) from None


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
    tasks: Annotated[
        list[str] | None,
        typer.Option("--tasks", "-t", help="TASK or TASK/DATASET (repeat, or comma-separate)."),
    ] = None,
    activations: Annotated[
        list[str] | None,
        typer.Option("--activations", "-a", help="Names or formula:TEXT (repeat, or commas)."),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per cell (0..N-1).")] = 3,
    db: Annotated[Path, typer.Option(help="SQLite results database (created if missing).")] = Path(
        "actlab-study.sqlite"
    ),
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (0: this process); default min(2, CPUs).")
    ] = None,
    executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster HOST:PORT (with --executor ray).")
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
    report: Annotated[
        Path | None, typer.Option(help="Write the HTML report here when the study ends.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    list_tasks: Annotated[
        bool, typer.Option("--list-tasks", help="List the tasks and their settings, then exit.")
    ] = False,
) -> None:
    """Run the grid activations x tasks x seeds; resume by re-running the same command.

    With no arguments: the default study into actlab-study.sqlite: the article's MLP and
    CNN on Fashion-MNIST, the transformer (char_lm, GLU variants included), XOR, the FFN's
    cost and gradient flow, 3 seeds. Without -a, each task runs its own set of activations
    (the CNN the article's four, the transformer the GLU family, ...). Runs already in the
    database are kept: --seeds 10 on the same command adds seeds 3..9.
    """
    from actlab.experiments.study import DEFAULT_TASKS, Study, run_study

    if list_tasks:
        _list_tasks()
        return
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
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
    if report is not None and report.suffix.lower() not in {".html", ".htm"}:
        raise UserError(f"--report {report}: give an .html file name")
    task_ids = _split(tasks) or list(DEFAULT_TASKS)
    act_names = _split(activations) or None
    _check_tasks(task_ids)
    spec = Study(
        tasks=task_ids, activations=act_names, seeds=seeds, grid=_parse_grid(lr, grid),
        quick=quick, data_dir=data_dir,
    )
    per_task = {t: spec.activations_for(t) for t in task_ids}
    _check_activations(list(dict.fromkeys(a for names in per_task.values() for a in names)))
    _check_data(spec)
    n = spec.size()
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
    if summary.failed:
        console.print("failed runs are retried when you re-run the same command")
    console.print(f"see the results: actlab results --db {db}")
    if report is not None:
        _write_report(db, report)


def _check_data(spec: Any) -> None:
    """Fail before starting when a dataset the study needs is not on this machine."""
    from actlab.experiments.data import DataError, check_dataset

    for _, cfg in spec.resolved_tasks():
        name = cfg.get("dataset")
        if isinstance(name, str):
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
    try:
        from actlab.report.html import write_report
    except ImportError as exc:
        console.print(f"no HTML report: the report module is not available ({exc})")
        return
    path = write_report(db, out)
    console.print(f"wrote {path or out}")


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
    db: Annotated[Path, typer.Option(help="SQLite results database.")] = Path(
        "actlab-study.sqlite"
    ),
    task: Annotated[
        str | None, typer.Option(help="Only this task (TASK or TASK/DATASET).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Per task: activations ranked by mean metric over seeds, with std, 95% CI, the
    paired test against the best, and a confidence statement."""
    from actlab.experiments.stats import statements, summarize
    from actlab.experiments.store import load_results

    if fmt not in {"table", "csv", "json"}:
        raise UserError(f"--format {fmt!r} is not known; use table, csv or json")
    if not db.exists():
        raise UserError(f"no results database at {db}; run `actlab study --db {db}` first")
    df = load_results(db)
    if task is not None:
        name, _, ds = task.partition("/")
        df = df[(df["task"] == name) & ((df["dataset"] == ds) if ds else True)]
        if df.empty:
            known = ", ".join(sorted(load_results(db)["task_id"].unique())) or "none"
            raise UserError(f"no runs of task {task!r} in {db}; it has: {known}")
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
