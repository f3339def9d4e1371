"""Kernel benchmark: every activation against ``x.clone()`` and the native PyTorch op.

An element-wise activation is memory-bound: the least a float32 forward can cost is
reading x and writing y, the time of ``x.clone()`` (``t_clone``). Forward plus backward
also reads x and the incoming gradient and writes the input gradient: 2.5 clones (a
gated activation reads ``2H`` and writes ``H`` values: 0.75 clones forward, 2.0 in all).

For each activation :func:`bench_activation` times, in one process, on the same tensor,
after warm-up (:func:`actlab.bench.timing.measure`):

* ``fast``: the compiled fast path (``act.module(fast=True)``);
* ``native``: the native PyTorch op, where there is one;
* ``eager``: the memory-efficient module (``act.module()``; eager ops, saves x);
* ``composite``: the spec's forward as plain torch ops under autograd (unfused; what a
  hand-written activation costs),

forward only (no autograd graph) and forward + backward (``torch.autograd.grad`` with a
fixed output gradient, so no ``.grad`` accumulation is timed), and measures the bytes
each saves for backward per input element (:mod:`actlab.bench.memory`).

Example:
    >>> row = bench_activation("silu", size=1 << 16, min_run_time=0.01, rounds=1)
    >>> row.fwd_ratio > 0
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from actlab.bench.memory import saved_bytes_per_element
from actlab.bench.timing import measure
from actlab.catalog import Activation, get
from actlab.catalog.activation import _upcast
from actlab.catalog.fast import FastActivationModule

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}
# last dimension of gated inputs: 2 x 4096, an LLM FFN's hidden width (with 2 x 512,
# 4 KiB rows, loads and stores alias in the L1 and even native F.glu runs 1.7x slower)
GATED_WIDTH = 8192
# last dimension of inputs to activations with learned per-channel parameters (DyT's
# gamma and beta): a transformer's model width
CHANNEL_WIDTH = 4096


@dataclass
class KernelRow:
    """Timings (seconds) and ratios of one activation; ``nan`` where not measured.

    Ratios: ``fwd_ratio = fwd_fast / t_clone``; ``fb_ratio = fb_fast / (floor_fb *
    t_clone)`` with ``floor_fb`` 2.5 clones (2.0 gated); ``*_native`` the same for the
    native op; ``fast_vs_native = fwd_fast / fwd_native``. ``saved_*``: bytes saved for
    backward per input element.
    """

    name: str
    native: str | None
    size: int
    dtype: str
    device: str
    gated: bool
    path: str
    t_clone: float
    fwd_fast: float
    fwd_native: float
    fwd_eager: float
    fwd_composite: float
    fb_fast: float
    fb_native: float
    fb_eager: float
    fb_composite: float
    saved_fast: float
    saved_composite: float
    seconds: float

    @property
    def floor_fwd(self) -> float:
        """Forward floor in clones of x: 1 (0.75 gated: half as many outputs)."""
        return 0.75 if self.gated else 1.0

    @property
    def floor_fb(self) -> float:
        """Forward + backward floor in clones of x: 2.5 (2.0 gated)."""
        return 2.0 if self.gated else 2.5

    def _r(self, t: float, clones: float) -> float:
        return t / (clones * self.t_clone)

    @property
    def fwd_ratio(self) -> float:
        return self._r(self.fwd_fast, 1.0)

    @property
    def fwd_ratio_native(self) -> float:
        return self._r(self.fwd_native, 1.0)

    @property
    def fwd_ratio_eager(self) -> float:
        return self._r(self.fwd_eager, 1.0)

    @property
    def fwd_ratio_composite(self) -> float:
        return self._r(self.fwd_composite, 1.0)

    @property
    def fast_vs_native(self) -> float:
        return self.fwd_fast / self.fwd_native

    @property
    def fb_ratio(self) -> float:
        return self._r(self.fb_fast, self.floor_fb)

    @property
    def fb_ratio_native(self) -> float:
        return self._r(self.fb_native, self.floor_fb)

    @property
    def fb_ratio_eager(self) -> float:
        return self._r(self.fb_eager, self.floor_fb)

    @property
    def fb_ratio_composite(self) -> float:
        return self._r(self.fb_composite, self.floor_fb)

    @property
    def fb_fast_vs_native(self) -> float:
        return self.fb_fast / self.fb_native

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("floor_fwd", "floor_fb", "fwd_ratio", "fwd_ratio_native", "fwd_ratio_eager",
                    "fwd_ratio_composite", "fast_vs_native", "fb_ratio", "fb_ratio_native",
                    "fb_ratio_eager", "fb_ratio_composite", "fb_fast_vs_native"):
            out[key] = getattr(self, key)
        return out


def parse_size(text: str | int) -> int:
    """``16777216``, ``"2**24"``, ``"2^24"``, ``"16M"`` or ``"64k"`` -> a positive int."""
    if isinstance(text, int):
        value = text
    else:
        s = str(text).strip().lower().replace("_", "")
        try:
            if "**" in s or "^" in s:
                base, exp = s.replace("**", "^").split("^")
                value = int(base) ** int(exp)
            elif s[-1:] in {"k", "m", "g"}:
                value = int(float(s[:-1]) * {"k": 2**10, "m": 2**20, "g": 2**30}[s[-1]])
            else:
                value = int(s)
        except (ValueError, IndexError):
            raise ValueError(
                f"size {text!r} is not a number; use e.g. 16777216, 2**24, 2^24 or 16M"
            ) from None
    if value < 2:
        raise ValueError(f"size must be at least 2 elements, got {value}")
    return value


def parse_dtype(name: str) -> torch.dtype:
    """``"float32"`` -> ``torch.float32`` (float32, float64, float16, bfloat16)."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; accepted: {', '.join(DTYPES)}") from None


def _input(act: Activation, size: int, dtype: torch.dtype, device: torch.device,
           seed: int) -> Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = (3.0 * torch.randn(size, generator=g)).to(device=device, dtype=dtype)
    if act.gated:
        if size % 2:
            raise ValueError(f"{act.name} is gated and needs an even size, got {size}")
        x = x.view(-1, math.gcd(size, GATED_WIDTH))
    elif _per_channel(act):
        x = x.view(-1, math.gcd(size, CHANNEL_WIDTH))
    return x


def _per_channel(act: Activation) -> bool:
    return any(n in act.spec.per_channel for n in act.learn)


def _composite(act: Activation) -> Callable[[Tensor], Tensor]:
    """The spec's forward as plain torch ops (autograd records every intermediate)."""
    params = act.params

    def fn(x: Tensor) -> Tensor:
        return act._forward(_upcast(x), params).to(x.dtype)

    return fn


def bench_activation(
    activation: str | Activation,
    *,
    size: int = 1 << 24,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    backward: bool = True,
    eager: bool = True,
    min_run_time: float = 0.2,
    rounds: int = 3,
    clock: str = "wall",
    seed: int = 0,
) -> KernelRow:
    """Time one activation (see the module docstring); returns a :class:`KernelRow`."""
    start = time.perf_counter()
    act = get(activation)
    dev = torch.device(device)
    x = _input(act, size, dtype, dev, seed)
    flat = x.reshape(-1)
    channels = x.shape[-1]  # sizes per-channel parameters; ignored by the others
    fast = FastActivationModule(act, channels).to(dev)
    native = act.native_fn
    eager_m = act.module(channels=channels).to(dev)
    composite = _composite(act)
    nan = float("nan")

    def no_grad(fn: Callable[[Tensor], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with torch.no_grad():
                return fn(x)

        return call

    fns: dict[str, Callable[[], Any]] = {"clone": flat.clone, "fast": no_grad(fast)}
    if native is not None:
        fns["native"] = no_grad(native)
    if eager:
        fns["eager"] = no_grad(eager_m)
        fns["composite"] = no_grad(composite)
    if backward:
        xg = x.detach().clone().requires_grad_(True)
        with torch.no_grad():
            gout = torch.randn_like(fast(x))

        def fwd_bwd(fn: Callable[[Tensor], Tensor]) -> Callable[[], Any]:
            return lambda: torch.autograd.grad(fn(xg), xg, gout)

        fns["fb_fast"] = fwd_bwd(fast)
        if native is not None:
            fns["fb_native"] = fwd_bwd(native)
        if eager:
            fns["fb_eager"] = fwd_bwd(eager_m)
            fns["fb_composite"] = fwd_bwd(composite)
    t = measure(fns, min_run_time=min_run_time, rounds=rounds, clock=clock)
    # a small tensor of its own: a view would count its base's whole storage
    rows = act.gated or _per_channel(act)
    probe = (x[: min(len(x), 16)] if rows else flat[:4096]).detach().clone()
    return KernelRow(
        name=act.name if act.spec.source is None else f"formula:{act.spec.source}",
        native=act.native,
        size=size,
        dtype=str(dtype).replace("torch.", ""),
        device=str(dev),
        gated=act.gated,
        path=fast.path(x),
        t_clone=t["clone"],
        fwd_fast=t["fast"],
        fwd_native=t.get("native", nan),
        fwd_eager=t.get("eager", nan),
        fwd_composite=t.get("composite", nan),
        fb_fast=t.get("fb_fast", nan),
        fb_native=t.get("fb_native", nan),
        fb_eager=t.get("fb_eager", nan),
        fb_composite=t.get("fb_composite", nan),
        saved_fast=saved_bytes_per_element(fast, probe),
        saved_composite=saved_bytes_per_element(composite, probe),
        seconds=time.perf_counter() - start,
    )


def bench_kernels(
    activations: Iterable[str | Activation] | None = None,
    *,
    progress: Callable[[KernelRow], None] | None = None,
    **options: Any,
) -> list[KernelRow]:
    """:func:`bench_activation` for each activation (default: every registered one).

    ``progress(row)`` is called as each row is done.
    """
    from actlab.catalog import names

    rows = []
    for a in list(activations) if activations is not None else names():
        row = bench_activation(a, **options)
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _fmt(v: float, digits: int = 2) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


COLUMNS: Sequence[tuple[str, str]] = (
    ("activation", "activation"),
    ("native", "native op"),
    ("path", "fast path: compiled, aten (ATen's kernels) or eager (fall-back)"),
    ("fwd/clone", "fast forward / t_clone"),
    ("nat/clone", "native forward / t_clone"),
    ("fast/nat", "fast forward / native forward"),
    ("f+b/floor", "fast forward+backward / floor (2.5 clones; 2.0 gated)"),
    ("nat f+b", "native forward+backward / floor"),
    ("eager fwd", "memory-efficient module forward / t_clone"),
    ("eager f+b", "memory-efficient module forward+backward / floor"),
    ("comp fwd", "composite (unfused) forward / t_clone"),
    ("B saved", "bytes saved for backward per element: fast path"),
    ("B comp", "bytes saved per element: composite autograd path"),
)


def table_rows(rows: Sequence[KernelRow]) -> list[list[str]]:
    """The table cells (strings) for :data:`COLUMNS`."""
    out = []
    for r in rows:
        out.append([
            r.name, r.native or "-", r.path, _fmt(r.fwd_ratio), _fmt(r.fwd_ratio_native),
            _fmt(r.fast_vs_native), _fmt(r.fb_ratio), _fmt(r.fb_ratio_native),
            _fmt(r.fwd_ratio_eager), _fmt(r.fb_ratio_eager), _fmt(r.fwd_ratio_composite),
            _fmt(r.saved_fast, 1), _fmt(r.saved_composite, 1),
        ])
    return out


def markdown_table(rows: Sequence[KernelRow]) -> str:
    """A GitHub markdown table of :func:`table_rows`."""
    head = [c for c, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    return "\n".join(lines)


@dataclass
class TargetSummary:
    """Which targets the rows meet (thresholds from the performance issue)."""

    fwd_within: list[str]
    fwd_over: list[str]
    fb_within: list[str]
    fb_over: list[str]
    slower_than_native: list[str]


def targets(rows: Sequence[KernelRow], fwd: float = 1.25, fb: float = 1.25,
            native: float = 1.05) -> TargetSummary:
    """Split rows by the targets: forward <= ``fwd`` clones, forward+backward <= ``fb``
    floors, and never slower than the native op (ratio <= ``native``, forward or f+b)."""
    return TargetSummary(
        fwd_within=[r.name for r in rows if r.fwd_ratio <= fwd],
        fwd_over=[r.name for r in rows if not r.fwd_ratio <= fwd],
        fb_within=[r.name for r in rows if r.fb_ratio <= fb],
        fb_over=[r.name for r in rows if not math.isnan(r.fb_fast) and not r.fb_ratio <= fb],
        slower_than_native=[
            r.name for r in rows
            if r.fast_vs_native > native or r.fb_fast_vs_native > native
        ],
    )
