"""CLI commands of the catalog stage: list, show, plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from actlab.catalog import Activation, formula, get, names
from actlab.cli._app import UserError, app

console = Console()

SHOW_POINTS = (-3.0, -1.0, 0.0, 1.0, 3.0)


def parse_params(items: list[str] | None) -> dict[str, float]:
    """``["alpha=0.1", "beta=2"]`` -> ``{"alpha": 0.1, "beta": 2.0}``."""
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"parameter {item!r} must look like NAME=VALUE, e.g. alpha=0.1")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise UserError(f"parameter {item!r}: {value!r} is not a number") from None
    return out


def resolve(
    names_: list[str] | None, formulas: list[str] | None = None, params: list[str] | None = None
) -> list[Activation]:
    """Activations named on the command line, plus ``--formula`` ones."""
    p = parse_params(params)
    acts = [get(n, **p) for n in names_ or []]
    acts += [formula(f) for f in formulas or []]
    return acts


@app.command("list")
def list_cmd(
    family: Annotated[str | None, typer.Option(help="Only this family.")] = None,
) -> None:
    """Table of every registered activation: name, family, formula, native equivalent."""
    table = Table(title="actlab activations")
    for col in ("name", "family", "formula", "native", "aliases"):
        table.add_column(col, overflow="fold")
    shown = 0
    for n in names():
        a = get(n)
        if family and a.family != family:
            continue
        shown += 1
        table.add_row(n, a.family, a.formula, a.native or "-", ", ".join(a.spec.aliases))
    if family and not shown:
        families = sorted({get(n).family for n in names()})
        raise UserError(f"no activation in family {family!r}; families: {', '.join(families)}")
    console.print(table)
    console.print(f"{shown} activations")


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Activation name or alias, or formula:TEXT.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Hyper-parameter NAME=VALUE.")
    ] = None,
) -> None:
    """Formula, reference, parameters, and f, f' at a few points."""
    act = resolve([name], params=param)[0]
    console.print(f"[bold]{act.name}[/bold]  ({act.family})")
    console.print(f"  formula:   {act.formula}")
    console.print(f"  reference: {act.reference}")
    if act.spec.aliases:
        console.print(f"  aliases:   {', '.join(act.spec.aliases)}")
    params = ", ".join(f"{k}={v:g}" for k, v in act.params.items()) or "none"
    console.print(f"  params:    {params}")
    if act.spec.learnable:
        per = act.spec.per_channel
        learnable = [f"{n} (per channel, dim {per[n]})" if n in per else n
                     for n in act.spec.learnable]
        console.print(f"  learnable: {', '.join(learnable)}")
    console.print(f"  native:    {act.native or 'none'}")
    if act.gated:
        console.print("  gated:     splits the last dimension into value a and gate b")
    table = Table(title="values" + (" (a = b = x)" if act.gated else ""))
    table.add_column("x", justify="right")
    table.add_column("f(x)", justify="right")
    table.add_column("f'(x)", justify="right")
    x = torch.tensor(SHOW_POINTS, dtype=torch.float64)
    if act.gated:
        xx = torch.stack([x, x], dim=-1)
        y, d = act(xx).reshape(-1), act.derivative(xx).sum(-1)
    else:
        y, d = act(x), act.derivative(x)
    for xi, yi, di in zip(x.tolist(), y.tolist(), d.tolist(), strict=True):
        table.add_row(f"{xi:g}", f"{yi:.6g}", f"{di:.6g}")
    console.print(table)
    _show_properties(act)


def _show_properties(act: Activation) -> None:
    try:
        from actlab.analysis.properties import properties

        props = properties(act)
    except ImportError:  # the analysis stage is optional for this command
        return
    table = Table(title="measured properties")
    table.add_column("property")
    table.add_column("value", overflow="fold")
    for key, value in props.as_dict().items():
        table.add_row(key, str(value))
    console.print(table)


@app.command()
def plot(
    names_: Annotated[
        list[str] | None, typer.Argument(metavar="NAME...", help="Activations.")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output image (.png, .svg, .pdf).")
    ] = Path("activations.png"),
    x_range: Annotated[
        tuple[float, float], typer.Option("--range", help="x range: LOW HIGH.")
    ] = (-6.0, 6.0),
    formulas: Annotated[
        list[str] | None, typer.Option("--formula", "-f", help="A formula in x (repeatable).")
    ] = None,
) -> None:
    """Each activation and its derivative, labelled, on a grid (the article's figure)."""
    from actlab.report.figures import plot_activations

    acts = resolve(names_, formulas)
    if not acts:
        raise UserError("name at least one activation or give --formula")
    if out.suffix.lower() not in {".png", ".svg", ".pdf", ".jpg", ".jpeg"}:
        raise UserError(f"--out {out}: use a .png, .svg, .pdf or .jpg file name")
    plot_activations(acts, out=out, x_range=x_range)
    console.print(f"wrote {out}")
