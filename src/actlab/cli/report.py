"""CLI commands of the report stage: ``report`` (the HTML report) and ``recommend``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actlab.cli._app import UserError, app
from actlab.cli._args import (
    ActivationsOpt,
    FormulaOpt,
    activation_names,
    existing_db,
    out_path,
    resolve_activations,
)
from actlab.experiments.study import DEFAULT_DB
from actlab.recommend import Recommendation, StudyRecommendation

console = Console()
if not console.is_terminal:  # piped or captured: no terminal width to respect
    console.width = max(console.width, 120)


def report_progress() -> Progress:
    """A progress bar (on stderr) over the report's steps."""
    return Progress(
        TextColumn("[bold]report[/bold]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.description}"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )


def write_with_progress(db: Path | None, out: Path, **options: Any) -> Path:
    """:func:`actlab.report.html.write_report` with a progress bar."""
    from actlab.report.html import REPORT_STEPS, write_report

    with report_progress() as bar:
        task = bar.add_task("", total=len(REPORT_STEPS))

        def step(name: str) -> None:
            done = REPORT_STEPS.index(name) if name in REPORT_STEPS else 0
            bar.update(task, completed=done, description=name)

        path = write_report(db, out, progress=step, **options)
        bar.update(task, completed=len(REPORT_STEPS), description="written")
    return path


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    db: Annotated[
        Path | None,
        typer.Option("--db", help=f"A study's SQLite database (default: {DEFAULT_DB} if here)."),
    ] = None,
    activations: ActivationsOpt = None,
    formulas: FormulaOpt = None,
    bench: Annotated[
        Path | None,
        typer.Option("--bench", help="A kernel benchmark table to include (.csv or .json)."),
    ] = None,
    title: Annotated[str, typer.Option(help="The report's title.")] = "actlab report",
    analysis: Annotated[
        bool, typer.Option(help="Compute gradient flow, gain and audit for the activations.")
    ] = True,
) -> None:
    """Write one self-contained HTML report (figures embedded; opens offline).

    Without --db it reads the default database when that file is here.
    """
    keys = activation_names(None, activations, formulas)
    resolve_activations(keys)
    if db is None and not keys and Path(DEFAULT_DB).exists():
        db = Path(DEFAULT_DB)
    if db is not None:
        existing_db(db)
    if db is None and not keys:
        raise UserError(
            f"give --db FILE (a study's results; {DEFAULT_DB} is not here) or -a NAME,..."
        )
    if bench is not None and not bench.is_file():
        raise UserError(f"--bench {bench}: no such file")
    out_path(out, "--out", (".html", ".htm"))
    path = write_with_progress(
        db, out, activations=keys or None, bench=bench, title=title, analysis=analysis
    )
    console.print(f"wrote {path}")


@app.command()
def recommend(
    arch: Annotated[
        str | None, typer.Option("--arch", help="cnn, transformer, rnn or mlp.")
    ] = None,
    problem: Annotated[
        str | None,
        typer.Option(
            "--problem", "--task", help="binary, multiclass, regression or bounded (the output)."
        ),
    ] = None,
    dead_fraction: Annotated[
        float | None,
        typer.Option("--dead-fraction", help="Measured fraction of dead hidden units (0..1)."),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option("--db", "--from", help="Recommend from your own study's SQLite database."),
    ] = None,
) -> None:
    """Which activation to use: the decision framework, or the evidence of your own study."""
    from actlab.recommend import recommend as framework

    if db is not None:
        if arch or problem or dead_fraction is not None:
            raise UserError("--db reads your study; do not combine it with --arch/--problem")
        existing_db(db)
        from actlab.recommend import recommend_from_study

        _print_study(recommend_from_study(db))
        return
    if arch is None or problem is None:
        raise UserError(
            "give --arch (cnn, transformer, rnn, mlp) and --problem (binary, multiclass, "
            "regression, bounded), or --db results.sqlite"
        )
    _print_framework(framework(arch, problem, dead_fraction=dead_fraction))


def _print_framework(r: Recommendation) -> None:
    gate = f", gates [bold]{r.gate}[/bold]" if r.gate else ""
    console.print(
        f"[bold]{r.architecture}[/bold] / [bold]{r.task}[/bold]: hidden layers "
        f"[bold green]{r.hidden}[/bold green]{gate}, output [bold green]{r.output}[/bold green]"
    )
    console.print(f"source: {r.source}", style="dim")
    console.print("\n[bold]Why[/bold]")
    for line in r.reasons:
        console.print(f"  - {line}", markup=False)
    console.print("\n[bold]Watch for[/bold]")
    for line in r.watch_for:
        console.print(f"  - {line}", markup=False)
    table = Table(title="Alternatives", title_justify="left")
    table.add_column("activation")
    table.add_column("when", overflow="fold")
    for alt in r.alternatives:
        table.add_row(escape(alt.activation), escape(alt.when))
    console.print(table)


def _print_study(sr: StudyRecommendation) -> None:
    console.print(f"Recommendation from {sr.db}", style="bold", markup=False, soft_wrap=True)
    console.print(sr.coverage, markup=False, soft_wrap=True)
    if sr.answers:
        table = Table(title="One answer per architecture")
        for col in ("architecture", "use", "confidence", "vs framework", "time vs relu",
                    "memory vs relu", "evidence"):
            table.add_column(col, overflow="fold")
        for a in sr.answers:
            cells = (a.name, a.answer or "-", a.confidence, f"{a.verdict} ({a.framework})",
                     f"{a.time_ratio:.2f}x" if a.time_ratio is not None else "-",
                     f"{a.memory_ratio:.2f}x" if a.memory_ratio is not None else "not measured",
                     ", ".join(a.settings))
            table.add_row(*(escape(c) for c in cells))
        console.print(table)
        for a in sr.answers:
            console.print(f"\n[bold]{escape(a.name)}: {escape(a.answer or 'no answer')}[/bold]")
            for line in (a.confidence_text, a.framework_text, *a.cost, *a.seeds):
                console.print(f"  - {line}", markup=False, soft_wrap=True)
    else:
        console.print(sr.summary, markup=False, soft_wrap=True)
    table = Table(title="Best activation per task")
    for col in ("task", "architecture", "best", "metric", "confidence", "time vs relu"):
        table.add_column(col, overflow="fold")
    for t in sr.tasks:
        cost = f"{t.time_ratio:.2f}x" if t.time_ratio is not None else "-"
        cells = (t.setting, t.architecture or "-", t.best or "-", t.metric_text,
                 t.confidence_text, cost)
        table.add_row(*(escape(c) for c in cells))
    console.print(table)
    if sr.cost:
        console.print("\n[bold]Cost[/bold]")
        for line in sr.cost:
            console.print(f"  - {line}", markup=False, soft_wrap=True)
    console.print("\n[bold]Warnings[/bold]" if sr.warnings else "\nNo warnings.")
    for line in sr.warnings:
        console.print(f"  - {line}", markup=False, soft_wrap=True)
