"""CLI commands of the bench stage: ``actlab bench``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from actlab.cli._app import UserError, app
from actlab.cli._args import (
    ActivationsOpt,
    FormulaOpt,
    NamesArg,
    activation_names,
    out_path,
    resolve_activations,
)
from actlab.cli._args import device as checked_device

console = Console()


def _wide() -> Console:
    """The console, or a 200-column one when output is not a terminal (tables stay whole)."""
    return console if console.is_terminal else Console(width=200)


@app.command()
def bench(
    names_: NamesArg = None,
    activations: ActivationsOpt = None,
    formula: FormulaOpt = None,
    size: Annotated[str, typer.Option(help="Elements per tensor: 16777216, 2**24, 16M.")] = "2**24",
    dtype: Annotated[str, typer.Option(help="float32, float64, float16 or bfloat16.")] = "float32",
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: auto).")] = None,
    backward: Annotated[bool, typer.Option(help="Also time forward+backward.")] = True,
    eager: Annotated[
        bool, typer.Option(help="Also time the eager module and the composite forward.")
    ] = True,
    quick: Annotated[bool, typer.Option(help="One short round per candidate (noisier).")] = False,
    min_time: Annotated[float, typer.Option(help="Seconds per candidate and round.")] = 0.1,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds (best one is kept).")] = 5,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: all).")] = None,
    clock: Annotated[
        str, typer.Option(help="wall, or cpu (process CPU time: for one thread on a busy machine).")
    ] = "wall",
    reuse_memory: Annotated[
        bool,
        typer.Option(help="Let glibc reuse freed memory (no page faults on new tensors)."),
    ] = False,
    ffn: Annotated[
        bool, typer.Option(help="Also time the FFN block (fused vs composite).")
    ] = False,
    markdown: Annotated[bool, typer.Option(help="Print a markdown table.")] = False,
    json_out: Annotated[
        Path | None,
        typer.Option("--out", "-o", "--json", help="Write the rows to this .json file."),
    ] = None,
) -> None:
    """Kernel speed against x.clone() and native PyTorch, and bytes saved for backward.

    Forward ratios are to the time of x.clone() (the memory-bandwidth floor); forward +
    backward ratios to 2.5 clones (2.0 for gated activations).
    """
    from actlab.bench.ffn import bench_ffn
    from actlab.bench.kernels import (
        COLUMNS,
        bench_activation,
        markdown_table,
        parse_dtype,
        parse_size,
        table_rows,
        targets,
    )
    from actlab.bench.timing import reuse_memory as _reuse
    from actlab.catalog import names
    from actlab.catalog.runtime import require_memory

    n = parse_size(size)
    dt = parse_dtype(dtype)
    if json_out is not None:
        out_path(json_out, "--out", (".json",))
    if clock not in ("wall", "cpu"):
        raise UserError(f"--clock must be wall or cpu, got {clock!r}")
    if rounds < 1 or min_time <= 0:
        raise UserError(f"--rounds must be >= 1 and --min-time > 0, got {rounds} and {min_time}")
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    dev = checked_device(device)
    if quick:
        rounds, min_time = 1, min(min_time, 0.05)
    keys = activation_names(names_, activations, formula) or list(names())
    acts = resolve_activations(keys)
    # the input, its clone and the output, the gradients in and out, and a peer's output
    try:
        require_memory(6 * n * dt.itemsize, dev, f"--size {size} ({n} elements of {dt})",
                       "give a smaller --size")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    reused = _reuse() if reuse_memory else False
    out = _wide()
    out.print(
        f"size {n} ({dt}), device {dev}, {torch.get_num_threads()} threads, "
        f"{rounds} round(s) x {min_time:g} s, {clock} clock, "
        f"memory reuse {'on' if reused else 'off'}"
    )
    start = time.perf_counter()
    rows = []
    for a in acts:
        row = bench_activation(a, size=n, dtype=dt, device=dev, backward=backward, eager=eager,
                               min_run_time=min_time, rounds=rounds, clock=clock)
        rows.append(row)
        out.print(f"  {row.name}: {row.seconds:.1f} s", style="dim", markup=False)
    total = time.perf_counter() - start
    if markdown:
        typer.echo(markdown_table(rows))
    else:
        table = Table(title=f"kernels, t_clone = {1e3 * min(r.t_clone for r in rows):.2f} ms")
        for col, _ in COLUMNS:
            left = col in ("activation", "native", "path")
            table.add_column(col, justify="left" if left else "right")
        for cells in table_rows(rows):
            table.add_row(*cells)
        out.print(table)
    summary = targets(rows)
    out.print(
        f"forward <= 1.25 clones: {len(summary.fwd_within)}/{len(rows)}; "
        f"forward+backward <= 1.25 floors: {len(summary.fb_within)}/{len(rows)}; "
        f"slower than native (> 1.05): {', '.join(summary.slower_than_native) or 'none'}"
    )
    out.print(f"total {total:.1f} s")
    ffn_rows = []
    if ffn:
        ffn_rows = bench_ffn([r for r in acts if not r.spec.source], device=dev,
                             min_run_time=min_time, rounds=rounds, clock=clock)
        table = Table(title="FFN block (512 -> 2048 -> 512, batch 8 x 128), ms")
        for col in ("activation", "fwd fused", "fwd composite", "fwd native", "speed-up",
                    "f+b fused", "f+b composite", "f+b native", "speed-up f+b"):
            table.add_column(col, justify="right")
        for r in ffn_rows:
            ms = [f"{1e3 * v:.2f}" if v == v else "-" for v in
                  (r.fwd_fast, r.fwd_composite, r.fwd_native)]
            mb = [f"{1e3 * v:.2f}" if v == v else "-" for v in
                  (r.fb_fast, r.fb_composite, r.fb_native)]
            table.add_row(r.name, *ms, f"{r.fwd_speedup:.2f}x", *mb, f"{r.fb_speedup:.2f}x")
        out.print(table)
    if json_out is not None:
        payload = {"kernels": [r.as_dict() for r in rows], "ffn": [r.as_dict() for r in ffn_rows],
                   "threads": torch.get_num_threads(), "memory_reuse": reused}
        json_out.write_text(json.dumps(payload, indent=1))
        out.print(f"wrote {json_out}")
