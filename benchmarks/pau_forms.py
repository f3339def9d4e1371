"""What PAU's overflow safety costs: forward variants against the compiled hand formula.

PAU is P(x) / Q(|x|), degrees 5 and 4. The hand formula (``actlab.bench.hand``) divides the
two polynomials as written; its x^5 overflows above |x| = 5.1e7 (float32), so it returns
+-inf there and NaN from 4.3e9 on and at +-inf, where f is about 0.723 x. The fast path
keeps f exact everywhere: on the CPU in float32 with a C kernel, elsewhere with the compiled
fast form (``actlab.catalog.fast_forms``). This script compiles, each alone and timed in one
process and one thread (interleaved rounds, as ``benchmarks/kernels.py``):

* ``hand``: the hand formula (the kernel benchmark's peer), and ``hand again`` (its A/A);
* ``fast form``: the fast path's forward: the direct form for |x| <= 1 and numerator and
  denominator divided by x^5 beyond, one polynomial pair with per-element coefficients
  (11 selects, two divisions: ``1/x`` and ``1/E``);
* ``direct``: P(x) / Q(|x|) by Horner's rule, no guard (what the hand formula computes);
* ``direct + asymptote``: the same with a select to the asymptote
  ``a5 x / |b4| + (a4 - a5 |b3| sign(x) / |b4|) / |b4|`` beyond |x| = 2^20 (approximate
  there, and wrong where b4 = 0; its three constants computed before the kernel);
* ``exponent scaling``: numerator and denominator scaled by 2^-floor(log2 |x|) from the
  exponent bits (exact), evaluated as homogeneous polynomials;
* ``C kernel``: actlab's own kernel (``actlab.catalog.cpu_kernels``, what the fast path runs
  on the CPU in float32): the direct form, and per block of 256 elements one test for an
  element beyond the direct form's range, evaluated again in double only then (exact).

It prints each as a ratio to the clone and to the hand formula, and the values (eager) at a
few large and non-finite inputs against the catalog's float64 pau. ``--reuse-memory`` keeps freed
memory (no page faults in the timings, see ``benchmarks/kernels.py``).

Usage (from the repository root)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/pau_forms.py
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/pau_forms.py --reuse-memory
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import Tensor

import actlab
from actlab.bench.hand import hand_formula
from actlab.bench.kernels import compile_hand
from actlab.bench.timing import measure, reuse_memory
from actlab.catalog.builtins import PAU_A, PAU_B
from actlab.catalog.builtins import _horner as horner
from actlab.catalog.cpu_kernels import build_error, cpu_kernel
from actlab.catalog.fast_forms import FAST_FORMS

FLOAT32_MAX = torch.finfo(torch.float32).max
FAR = 2.0**20


def coefficients(p: dict) -> tuple[list, list]:
    return [p[n] for n in PAU_A], [1.0, *(abs(p[n]) for n in PAU_B)]


def direct(x: Tensor, **p) -> Tensor:
    a, e = coefficients(p)
    return horner(a, x) / horner(e, x.abs())


def asymptote(p: dict) -> dict[str, Tensor]:
    """f ~ slope x + (b0 - b1 sign(x)) for |x| -> inf (b4 != 0), as 0-d tensors computed
    outside the kernel: inductor re-evaluates scalar arithmetic on the parameters in every
    iteration of its loop, and three scalar divisions there cost more than the select."""
    a, e = coefficients(p)
    slope, b0, b1 = a[5] / e[4], a[4] / e[4], a[5] * e[3] / (e[4] * e[4])
    return {"slope": slope, "pos": b0 - b1, "neg": b0 + b1}


def direct_asymptote(x: Tensor, slope: Tensor, pos: Tensor, neg: Tensor, **p) -> Tensor:
    a, e = coefficients(p)
    w = x.abs()
    far = slope * x + torch.where(x > 0, pos, neg)
    return torch.where(w <= FAR, horner(a, x) / horner(e, w), far)


def exponent_scaled(x: Tensor, **p) -> Tensor:
    a, e = coefficients(p)
    # s = 2^-floor(log2|x|) for |x| >= 1 (1 below, at least 2^-126): y = x s, exact
    bits = x.view(torch.int32) & 0x7F800000
    s = torch.clamp((254 << 23) - bits, min=1 << 23, max=127 << 23).view(torch.float32)
    y, s2 = x * s, s * s
    s3, s4 = s2 * s, s2 * s2

    def homogeneous(c: list, v: Tensor) -> Tensor:  # sum_j c_j v^j s^(4-j)
        acc = c[4] * v + c[3] * s
        acc = acc * v + c[2] * s2
        acc = acc * v + c[1] * s3
        return acc * v + c[0] * s4

    y2 = y * y
    # P(x) s^4 = a5 x y^4 + sum_(j<=4) a_j y^j s^(4-j); Q(|x|) s^4 likewise
    f = (a[5] * x * (y2 * y2) + homogeneous(a, y)) / homogeneous(e, y.abs())
    return torch.where(x.abs() <= FLOAT32_MAX, f, x * (a[5] / e[4]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=1 << 24)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reuse-memory", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.reuse_memory:
        reuse_memory()
    act = actlab.get("pau")
    params = {n: torch.tensor(float(v)) for n, v in act.params.items()}
    written = hand_formula(act)
    assert written is not None
    variants: dict[str, Callable[..., Tensor]] = {
        "hand": lambda x, **p: written(x),
        "hand again": lambda x, **p: written(x),
        "fast form": FAST_FORMS["pau"][0],
        "direct": direct,
        "direct + asymptote": direct_asymptote,
        "exponent scaling": exponent_scaled,
    }
    x = 3.0 * torch.randn(args.size, generator=torch.Generator().manual_seed(0))
    fns: dict[str, Callable[[], object]] = {"clone": x.clone}
    plain, compiled = {}, {}
    extra = asymptote(params)
    for name, fn in variants.items():
        kw = {**params, **extra} if fn is direct_asymptote else params
        plain[name] = lambda t, fn=fn, kw=kw: fn(t, **kw)
        # compile_hand: a code object of its own for each (dynamo caches graphs per code)
        compiled[name], _ = compile_hand(plain[name], name)
        fns[name] = lambda c=compiled[name]: c(x)
    kernel = cpu_kernel("pau")
    if kernel is not None:  # a ctypes call: nothing to compile
        coefficients = [float(act.params[n]) for n in kernel.names]
        plain["C kernel"] = lambda t: kernel.forward(t.contiguous(), coefficients)
        fns["C kernel"] = lambda: kernel.forward(x, coefficients)
    else:
        print(f"no C kernel: {build_error()}")
    with torch.no_grad():
        t = measure(fns, min_run_time=0.1, rounds=args.rounds, clock="cpu")
        probe = torch.tensor([2.0, 4e7, 6e7, 1e9, 1e12, 3e38, float("inf"), float("-inf")])
        reference = act(probe.double())
        print(f"torch {torch.__version__}, 1 thread, {args.size} float32 elements, CPU clock, "
              f"{args.rounds} rounds, memory reuse {'on' if args.reuse_memory else 'off'}\n")
        print("| variant | ms | / clone | / hand | values at " + ", ".join(
            f"{v:g}" for v in probe.tolist()) + " |")
        print("|---|---|---|---|---|")
        print(f"| catalog (float64) | | | | {', '.join(f'{v:.4g}' for v in reference.tolist())} |")
        for name in fns:
            ms = 1e3 * t[name]
            vals = ("" if name == "clone"
                    else ", ".join(f"{v:.4g}" for v in plain[name](probe).tolist()))
            print(f"| {name} | {ms:.3f} | {t[name] / t['clone']:.2f} | "
                  f"{t[name] / t['hand']:.2f} | {vals} |")


if __name__ == "__main__":
    main()
