"""CLI commands of the report stage: ``report`` (the HTML report) and ``recommend``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from actlab.cli._app import UserError, app
from actlab.recommend import Recommendation, StudyRecommendation

console = Console()
if not console.is_terminal:  # piped or captured: no terminal width to respect
    console.width = max(console.width, 120)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    db: Annotated[
        Path | None,
        typer.Option("--db", help="A study's SQLite database (default: actlab-study.sqlite)."),
    ] = None,
    activations: Annotated[
        list[str] | None,
        typer.Option(
            "--activation", "-a", help="Activations to describe (default: those in the study)."
        ),
    ] = None,
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

    Without --db it reads actlab-study.sqlite when that file is here.
    """
    from actlab.experiments.study import DEFAULT_DB
    from actlab.report.html import write_report

    if db is None and not activations and Path(DEFAULT_DB).exists():
        db = Path(DEFAULT_DB)
    if db is not None and not db.exists():
        raise UserError(f"--db {db}: no such file; run `actlab study --db {db}` first")
    if db is None and not activations:
        raise UserError("give --db FILE (a study's results) or at least one --activation NAME")
    if bench is not None and not bench.exists():
        raise UserError(f"--bench {bench}: no such file")
    path = write_report(
        db, out, activations=activations, bench=bench, title=title, analysis=analysis
    )
    console.print(f"wrote {path}")


@app.command()
def recommend(
    arch: Annotated[
        str | None, typer.Option("--arch", help="cnn, transformer, rnn or mlp.")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="binary, multiclass, regression or bounded.")
    ] = None,
    dead_fraction: Annotated[
        float | None,
        typer.Option("--dead-fraction", help="Measured fraction of dead hidden units (0..1)."),
    ] = None,
    from_db: Annotated[
        Path | None,
        typer.Option("--from", help="Recommend from your own study's SQLite database."),
    ] = None,
) -> None:
    """Which activation to use: the decision framework, or the evidence of your own study."""
    from actlab.recommend import recommend as framework

    if from_db is not None:
        if arch or task or dead_fraction is not None:
            raise UserError("--from reads your study; do not combine it with --arch/--task")
        if not from_db.exists():
            raise UserError(f"--from {from_db}: no such file; run `actlab study --db ...` first")
        from actlab.recommend import recommend_from_study

        _print_study(recommend_from_study(from_db))
        return
    if arch is None or task is None:
        raise UserError(
            "give --arch (cnn, transformer, rnn, mlp) and --task (binary, multiclass, "
            "regression, bounded), or --from results.sqlite"
        )
    _print_framework(framework(arch, task, dead_fraction=dead_fraction))


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
