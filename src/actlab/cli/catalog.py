"""CLI commands of the catalog stage: list, show, plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from actlab.catalog import Activation, get, names
from actlab.cli._app import UserError, app
from actlab.cli._args import (
    IMAGE_SUFFIXES,
    ActivationsOpt,
    FormulaOpt,
    NamesArg,
    activation_names,
    out_path,
    resolve_activations,
)

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
    names_: list[str] | None,
    formulas: list[str] | None = None,
    params: list[str] | None = None,
    activations: list[str] | None = None,
) -> list[Activation]:
    """The activations a command names: arguments, ``-a`` items and ``--formula`` texts."""
    keys = activation_names(names_, activations, formulas)
    return resolve_activations(keys, parse_params(params))


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
    name: Annotated[
        str | None, typer.Argument(metavar="[NAME]", help="Activation name, alias or formula:TEXT.")
    ] = None,
    activations: ActivationsOpt = None,
    formulas: FormulaOpt = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Hyper-parameter NAME=VALUE.")
    ] = None,
) -> None:
    """Formula, reference, parameters, and f, f' at a few points."""
    acts = resolve([name] if name else None, formulas, param, activations)
    if len(acts) != 1:
        raise UserError(f"show takes one activation, got {len(acts)}; e.g. actlab show gelu")
    act = acts[0]
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
    names_: NamesArg = None,
    activations: ActivationsOpt = None,
    formulas: FormulaOpt = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output image (.png, .svg, .pdf, .jpg).")
    ] = Path("activations.png"),
    x_range: Annotated[
        tuple[float, float], typer.Option("--range", help="x range: LOW HIGH.")
    ] = (-6.0, 6.0),
) -> None:
    """Each activation and its derivative, labelled, on a grid (the article's figure)."""
    from actlab.report.figures import plot_activations

    acts = resolve(names_, formulas, activations=activations)
    if not acts:
        raise UserError("name at least one activation (e.g. actlab plot relu gelu)")
    out_path(out, "--out", IMAGE_SUFFIXES)
    if not (math.isfinite(x_range[0]) and math.isfinite(x_range[1]) and x_range[0] < x_range[1]):
        raise UserError(
            f"--range {x_range[0]:g} {x_range[1]:g}: give two finite numbers, LOW below HIGH"
        )
    plot_activations(acts, out=out, x_range=x_range)
    console.print(f"wrote {out}")
