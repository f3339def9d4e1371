"""CLI commands of the analysis stage: gain, gradflow, audit.

Numeric list options take commas or repeat (``--depth 5,10,20``, ``--depth 5 --depth 10``);
the older ``--depth 5 10 20`` also works: numbers among the names belong to that option,
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
from rich.progress import track
from rich.table import Table

from actlab.catalog import Activation, names
from actlab.cli._app import UserError, app
from actlab.cli._args import (
    IMAGE_SUFFIXES,
    ActivationsOpt,
    FormulaOpt,
    NamesArg,
    is_number,
    numbers,
    out_path,
    positive,
    split,
)
from actlab.cli.catalog import resolve

console = Console()
if not console.is_terminal:  # a pipe or a file: tables keep their width instead of wrapping
    console = Console(width=140)
progress_console = Console(stderr=True)

ARTICLE = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "gelu", "gelu_tanh",
           "silu", "mish")  # fmt: skip
GRADFLOW_DEFAULT = ("sigmoid", "tanh", "relu", "gelu")


def _split_numbers(items: list[str] | None) -> tuple[list[str], list[str]]:
    """Names, and the numbers that typer left among them (``--depth 5 10`` -> 10)."""
    words = [w for w in split(items) if not is_number(w)]
    return words, [w for w in split(items) if is_number(w)]


def _acts(
    words: list[str], formulas: list[str] | None, activations: list[str] | None,
    default: tuple[str, ...],
) -> list[Activation]:
    acts = resolve(words, formulas, activations=activations)
    return acts or resolve(list(default))


def _num(v: float, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{0.0 if abs(v) < 1e-12 else v:.{digits}g}"


@app.command()
def gain(
    names_: NamesArg = None,
    activations: ActivationsOpt = None,
    formulas: FormulaOpt = None,
    sigma_b2: Annotated[
        list[str] | None,
        typer.Option("--sigma-b2", help="Bias variances for the edge of chaos (list)."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every registered activation.")] = False,
) -> None:
    """Init gain 1/sqrt(E[f(z)^2]), moments, edge of chaos, PyTorch's calculate_gain."""
    from actlab.analysis.gain import DEFAULT_SIGMA_B2, gain_table

    words, extra = _split_numbers(names_)
    sb = numbers([*(sigma_b2 or []), *extra], "--sigma-b2", low=0.0) or list(DEFAULT_SIGMA_B2)
    if all_:
        acts = resolve(list(names()), formulas, activations=activations)
    else:
        acts = _acts(words, formulas, activations, ARTICLE)
    frame = gain_table(
        track(acts, description="gain", console=progress_console, transient=True), sb
    )
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
    activations: ActivationsOpt = None,
    formulas: FormulaOpt = None,
    depth: Annotated[
        list[str] | None, typer.Option("--depth", "-d", help="Depths (list).")
    ] = None,
    init: Annotated[str, typer.Option(help="default | kaiming | gain | critical.")] = "default",
    width: Annotated[int, typer.Option(help="Hidden width.")] = 128,
    seeds: Annotated[int, typer.Option(help="Seeds to average.")] = 3,
    batch: Annotated[int, typer.Option(help="Batch size (>= 2).")] = 256,
    sigma_b2: Annotated[
        float | None, typer.Option("--sigma-b2", help="Bias variance of --init critical.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Plot gradient norm per layer here.")
    ] = None,
) -> None:
    """First-layer / last-layer gradient norm of a deep MLP at initialisation."""
    from actlab.analysis.gradflow import INITS, gradient_flow, memory_estimate
    from actlab.catalog.runtime import require_memory, resolve_device

    words, extra = _split_numbers(names_)
    depths = numbers([*(depth or []), *extra], "--depth", integer=True, low=1) or [5, 10, 20, 50]
    depths = sorted({int(d) for d in depths})
    if init not in INITS:
        raise UserError(f"--init {init!r} is not one of {', '.join(INITS)}")
    positive(width, "--width")
    positive(seeds, "--seeds")
    if batch < 2:
        raise UserError(f"--batch must be at least 2, got {batch}")
    if sigma_b2 is not None and not (math.isfinite(sigma_b2) and sigma_b2 >= 0):
        raise UserError(f"--sigma-b2 must be a finite number >= 0, got {sigma_b2}")
    if out is not None:
        out_path(out, "--out", IMAGE_SUFFIXES)
    acts = _acts(words, formulas, activations, GRADFLOW_DEFAULT)
    dev = resolve_device(None)
    need = max(memory_estimate(depths[-1], width, batch, a.gated, device=dev) for a in acts)
    try:
        require_memory(need, dev, f"--depth {depths[-1]} --width {width} --batch {batch}",
                       "lower the depth, width or batch")
    except ValueError as exc:
        raise UserError(str(exc)) from None
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
    results, errors = [], []
    for act in track(acts, description="gradflow", console=progress_console, transient=True):
        try:
            rs = [gradient_flow(act, d, width, init, seeds, batch, sigma_b2) for d in depths]
        except ValueError as exc:
            errors.append(f"{act.name}: {exc}")
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
    if errors:
        for line in errors:
            console.print(f"[yellow]{escape(line)}[/yellow]")
        console.print(f"{len(errors)} of {len(acts)} activation(s) could not be measured")
        raise typer.Exit(1)


@app.command()
def audit(
    names_: NamesArg = None,
    activations: ActivationsOpt = None,
    formulas: FormulaOpt = None,
    dtype: Annotated[
        list[str] | None,
        typer.Option("--dtype", help="float64, float32, float16, bfloat16 (list)."),
    ] = None,
) -> None:
    """Stability audit of f and f' in four dtypes against mpmath; exit 1 if any fails."""
    from actlab.analysis.audit import DTYPES, TOLERANCE
    from actlab.analysis.audit import audit as run_audit

    dtypes = split(dtype) or list(DTYPES)
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        raise UserError(f"--dtype {bad[0]!r} is not one of {', '.join(DTYPES)}")
    acts = resolve(names_, formulas, activations=activations) or resolve(list(names()))
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
    for act in track(acts, description="audit", console=progress_console, transient=True):
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
