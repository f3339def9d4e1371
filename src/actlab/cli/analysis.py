"""CLI commands of the analysis stage: gain, gradflow, audit.

Options that take several values (``--depth 5 10 20 50``, ``--sigma-b2 0 0.1``) also accept
them repeated (``--depth 5 --depth 10``): numbers among the names belong to that option,
since no activation is named by a number.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from actlab.catalog import Activation, names
from actlab.cli._app import UserError, app
from actlab.cli.catalog import resolve

console = Console()
if not console.is_terminal:  # a pipe or a file: tables keep their width instead of wrapping
    console = Console(width=140)

ARTICLE = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "gelu", "gelu_tanh",
           "silu", "mish")  # fmt: skip
GRADFLOW_DEFAULT = ("sigmoid", "tanh", "relu", "gelu")

NamesArg = Annotated[
    list[str] | None, typer.Argument(metavar="NAME...", help="Activation names or aliases.")
]
FormulaOpt = Annotated[
    list[str] | None, typer.Option("--formula", "-f", help="A formula in x (repeatable).")
]


def _split_numbers(items: list[str] | None) -> tuple[list[str], list[float]]:
    """Names, and the numbers that typer left among them (``--depth 5 10`` -> 10)."""
    words, numbers = [], []
    for item in items or []:
        try:
            numbers.append(float(item))
        except ValueError:
            words.append(item)
    return words, numbers


def _acts(
    words: list[str], formulas: list[str] | None, default: tuple[str, ...]
) -> list[Activation]:
    acts = resolve(words, formulas)
    return acts or resolve(list(default))


def _num(v: float, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{0.0 if abs(v) < 1e-12 else v:.{digits}g}"


@app.command()
def gain(
    names_: NamesArg = None,
    formulas: FormulaOpt = None,
    sigma_b2: Annotated[
        list[float] | None,
        typer.Option("--sigma-b2", help="Bias variances for the edge of chaos (several)."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every registered activation.")] = False,
) -> None:
    """Init gain 1/sqrt(E[f(z)^2]), moments, edge of chaos, PyTorch's calculate_gain."""
    from actlab.analysis.gain import DEFAULT_SIGMA_B2, gain_table

    words, extra = _split_numbers(names_)
    sb = [*(sigma_b2 or []), *extra] or list(DEFAULT_SIGMA_B2)
    if any(not (math.isfinite(v) and v >= 0) for v in sb):
        raise UserError(f"--sigma-b2 values must be finite and >= 0, got {sb}")
    acts = resolve(list(names()), formulas) if all_ else _acts(words, formulas, ARTICLE)
    frame = gain_table(acts, sb)
    table = Table(
        title="Init gain g = 1/sqrt(E f(z)²) and edge of chaos σw²*, z ~ N(0, 1)",
        box=box.SIMPLE_HEAD,
    )
    crit = [c for c in frame.columns if c.startswith("crit")]
    cols = ["activation", "gain", "torch", "E[f(z)]", "E[f(z)^2]", "E[f'(z)^2]"]
    heads = ["activation", "gain", "torch", "E f", "E f²", "E f'²"]
    for c in heads:
        table.add_column(c, justify="left" if c == "activation" else "right")
    for c in crit:
        sb = c.split("=")[-1].rstrip(")")
        table.add_column(f"σw²* σb²={sb}", justify="right")
    errors = []
    for _, r in frame.iterrows():
        torch_cell = f"{r['torch gain']:.4g}" if math.isfinite(r["torch gain"]) else "-"
        row = [r["activation"], _num(r.get("gain")), torch_cell]
        row += [_num(r.get(c)) for c in cols[3:]] + [_num(r.get(c)) for c in crit]
        table.add_row(*(escape(str(v)) for v in row))
        if r["error"]:
            errors.append(f"{r['activation']}: {r['error']}")
    console.print(table)
    console.print(
        "torch: torch.nn.init.calculate_gain (relu and leaky_relu use the same definition; "
        "tanh's 5/3, sigmoid's 1 and selu's 3/4 are heuristics). σw²*: critical weight "
        "variance (chi_1 = 1) at that bias variance σb²; '-': no stable edge of chaos "
        "(the signal collapses below it and explodes above)."
    )
    for e in errors:
        console.print(f"[yellow]{escape(e)}[/yellow]")


@app.command()
def gradflow(
    names_: NamesArg = None,
    depth: Annotated[
        list[int] | None, typer.Option("--depth", "-d", help="Depths (several).")
    ] = None,
    init: Annotated[str, typer.Option(help="default | kaiming | gain | critical.")] = "default",
    width: Annotated[int, typer.Option(help="Hidden width.")] = 128,
    seeds: Annotated[int, typer.Option(help="Seeds to average.")] = 3,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 256,
    sigma_b2: Annotated[
        float | None, typer.Option("--sigma-b2", help="Bias variance of --init critical.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Plot gradient norm per layer here.")
    ] = None,
    formulas: FormulaOpt = None,
) -> None:
    """First-layer / last-layer gradient norm of a deep MLP at initialisation."""
    from actlab.analysis.gradflow import INITS, gradient_flow

    words, extra = _split_numbers(names_)
    depths = [*(depth or []), *extra] or [5, 10, 20, 50]
    if any(d != int(d) or d < 1 for d in depths):
        raise UserError(f"--depth values must be positive integers, got {depths}")
    depths = sorted({int(d) for d in depths})
    if init not in INITS:
        raise UserError(f"--init {init!r} is not one of {', '.join(INITS)}")
    if out is not None and out.suffix.lower() not in {".png", ".svg", ".pdf", ".jpg", ".jpeg"}:
        raise UserError(f"--out {out}: use a .png, .svg, .pdf or .jpg file name")
    acts = _acts(words, formulas, GRADFLOW_DEFAULT)
    table = Table(
        title=f"||dL/dW_first|| / ||dL/dW_last|| at init '{init}' "
        f"(width {width}, batch {batch}, {seeds} seeds)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("activation")
    for d in depths:
        table.add_column(f"depth {d}", justify="right")
    table.add_column("per layer", justify="right")
    table.add_column("theory", justify="right")
    table.add_column("σw², σb²", justify="right")
    results = []
    for act in acts:
        try:
            rs = [gradient_flow(act, d, width, init, seeds, batch, sigma_b2) for d in depths]
        except ValueError as exc:
            console.print(f"[yellow]{escape(act.name)}: {escape(str(exc))}[/yellow]")
            continue
        last = rs[-1]
        results += rs
        table.add_row(
            escape(act.name),
            *(f"{r.ratio:.3g}" for r in rs),
            _num(last.middle_factor),
            _num(last.theory_factor),
            f"{last.sigma_w2:.4g}, {last.sigma_b2:.3g}",
        )
    console.print(table)
    console.print(
        f"per layer: factor by which the back-propagated gradient ||dL/dh_l|| changes per "
        f"layer going back (< 1: vanishing), fitted over the middle layers at depth "
        f"{depths[-1]}; theory: mean-field sqrt(chi_1) over the same layers (Poole et al. "
        "2016, Schoenholz et al. 2017)."
    )
    if out is not None and results:
        from actlab.report.analysis_figures import plot_gradient_flow

        plot_gradient_flow(results, out)
        console.print(f"wrote {out}")


@app.command()
def audit(
    names_: NamesArg = None,
    formulas: FormulaOpt = None,
    dtype: Annotated[
        list[str] | None,
        typer.Option("--dtype", help="float64 | float32 | float16 | bfloat16 (repeatable)."),
    ] = None,
) -> None:
    """Stability audit of f and f' in four dtypes against mpmath; exit 1 if any fails."""
    from actlab.analysis.audit import DTYPES, TOLERANCE
    from actlab.analysis.audit import audit as run_audit

    dtypes = dtype or list(DTYPES)
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        raise UserError(f"--dtype {bad[0]!r} is not one of {', '.join(DTYPES)}")
    acts = resolve(names_, formulas) or resolve(list(names()))
    table = Table(
        title="Stability audit: max error in eps of the dtype (inputs up to ±1e4)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("activation")
    table.add_column("reference")
    for d in dtypes:
        table.add_column(f"{d} (tol {TOLERANCE[d]:g})", justify="right")
    table.add_column("verdict")
    failed = []
    for act in acts:
        res = run_audit(act, dtypes)
        cells = []
        for d in dtypes:
            rows = res.frame[res.frame["dtype"] == d]
            worst = rows.loc[rows["error_in_eps"].idxmax()]
            text = f"{worst['error_in_eps']:.3g} ({worst['quantity']})"
            nan, inf = int(rows["nan"].sum()), int(rows["inf"].sum())
            text += (f" NaN {nan}" if nan else "") + (f" inf {inf}" if inf else "")
            if not bool(rows["judged"].any()):
                text = "n/a (reference)"
            ok = bool(rows["passed"].all())
            cells.append(escape(text) if ok else f"[red]{escape(text)}[/red]")
        verdict = "[green]pass[/green]" if res.passed else "[red]FAIL[/red]"
        if not res.passed:
            failed.append(act.name)
        table.add_row(escape(act.name), res.reference.split(" ")[0], *cells, verdict)
    console.print(table)
    console.print(
        "cells: the larger error of f and f' (which one in brackets), |computed - true| / "
        "max(|g| + |x g'|, floor) in units of the dtype's eps, and NaN/inf counts where the "
        "true value is finite and representable; reference: mpmath at 40 digits, or float64 "
        "of the same function for callables (its float64 column is then not judged)."
    )
    if failed:
        console.print(f"{len(failed)} of {len(acts)} failed: {', '.join(failed)}")
        raise typer.Exit(1)
    console.print(f"all {len(acts)} passed")
