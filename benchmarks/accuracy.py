"""Print the error figures of each path: native op, act.module(), precise, fast path.

Usage (from the repository root)::

    .venv/bin/python benchmarks/accuracy.py
    .venv/bin/python benchmarks/accuracy.py --names gelu mish --n 2000001

For each activation and path, float32 f and f' (autograd with a unit output gradient)
on a dense sweep of each interval, against the catalog's float64 values (checked against
mpmath in the tests): the largest relative error beyond the inputs' own rounding
(``actlab.bench.accuracy``) and where it occurs. Paths: ``native`` (the PyTorch op),
``module`` (``act.module()``), ``precise`` (``act.module(precise=True)``), ``fast``
(``act.module(fast=True)``) and ``fast_precise``.
"""

from __future__ import annotations

import argparse

import torch

from actlab.bench.accuracy import PATHS, path_errors

DEFAULT = ["gelu", "gelu_tanh", "sigmoid", "tanh", "silu", "mish", "elu", "softplus"]
RANGES = [(-3.0, 3.0), (-6.0, -3.0), (-10.0, -6.0), (3.0, 30.0)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--names", nargs="*", default=DEFAULT)
    p.add_argument("--paths", nargs="*", default=list(PATHS))
    p.add_argument("--n", type=int, default=200_001, help="points per interval")
    a = p.parse_args()
    print(f"torch {torch.__version__}, float32, {a.n} points per interval; "
          "cells: max relative error of f / of f' (beyond input rounding)\n")
    head = " | ".join(f"[{lo:g}, {hi:g}]" for lo, hi in RANGES)
    print(f"| activation | path | {head} | max abs error f / f' |")
    print("|---|---|" + "---|" * (len(RANGES) + 1))
    for name in a.names:
        for path in a.paths:
            cells, abs_f, abs_d = [], 0.0, 0.0
            for lo, hi in RANGES:
                e = path_errors(name, path, lo=lo, hi=hi, n=a.n)
                if e is None:
                    break
                cells.append(f"{e.f:.1e} / {e.d:.1e}")
                abs_f, abs_d = max(abs_f, e.abs_f), max(abs_d, e.abs_d)
            if cells:
                cells.append(f"{abs_f:.1e} / {abs_d:.1e}")
                print(f"| {name} | {path} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
