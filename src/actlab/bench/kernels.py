"""Kernel benchmark: every activation against ``x.clone()`` and the native PyTorch op.

An element-wise activation is memory-bound: the least a float32 forward can cost is
reading x and writing y, the time of ``x.clone()`` (``t_clone``). Forward plus backward
also reads x and the incoming gradient and writes the input gradient: 2.5 clones (a
gated activation reads ``2H`` and writes ``H`` values: 0.75 clones forward, 2.0 in all).

For each activation :func:`bench_activation` times, in one process, on the same tensor,
after warm-up (:func:`actlab.bench.timing.measure`):

* ``fast``: the compiled fast path (``act.module(fast=True)``);
* ``native``: the native PyTorch op, where there is one;
* ``hand``: ``torch.compile`` of the plain formula written by hand
  (:mod:`actlab.bench.hand`: what a user does after reading the article), compiled for the
  process's thread count; an activation's learnable parameters are learnable there too
  (:class:`~actlab.bench.hand.HandModule`), so both backwards compute their gradients; the
  fast path's targets are against the better of ``native`` and ``hand``;
* ``eager``: the activation module (``act.module()``: the native op where it runs one,
  else eager ops that save x);
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

import itertools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from actlab.bench.hand import HandModule, hand_formula
from actlab.bench.memory import saved_bytes_per_element
from actlab.bench.timing import measure, release_memory
from actlab.catalog import Activation, get
from actlab.catalog.activation import _upcast
from actlab.catalog.fast import FastActivationModule, _fresh, compile_disabled

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
    native op; ``fast_vs_native = fwd_fast / fwd_native``; ``*_hand``: ``torch.compile``
    of the hand-written formula (``hand_path``: ``"compiled"``, or ``"eager"`` when
    compilation is off); ``fast_vs_best``: fast / the better of native and hand.
    ``saved_*``: bytes saved for backward per input element.
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
    fwd_hand: float = math.nan
    fb_hand: float = math.nan
    hand_path: str = "-"
    fwd_fast_again: float = math.nan

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

    @property
    def fast_vs_hand(self) -> float:
        return self.fwd_fast / self.fwd_hand

    @property
    def fb_fast_vs_hand(self) -> float:
        return self.fb_fast / self.fb_hand

    @staticmethod
    def _best(*times: float) -> float:
        known = [t for t in times if not math.isnan(t)]
        return min(known) if known else math.nan

    @property
    def fast_vs_best(self) -> float:
        """Fast forward / the faster of the native op and the compiled hand formula."""
        return self.fwd_fast / self._best(self.fwd_native, self.fwd_hand)

    @property
    def fb_fast_vs_best(self) -> float:
        """Fast forward+backward / the faster of native and the compiled hand formula."""
        return self.fb_fast / self._best(self.fb_native, self.fb_hand)

    @property
    def aa(self) -> float:
        """The fast forward timed again as another candidate, over the first: an A/A test.

        The same kernel on the same tensor, interleaved like every other candidate, so
        its distance from 1 is how far this run's ratios move without any difference in
        the code (the measurement's noise on this machine at this moment)."""
        return self.fwd_fast_again / self.fwd_fast

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("floor_fwd", "floor_fb", "fwd_ratio", "fwd_ratio_native", "fwd_ratio_eager",
                    "fwd_ratio_composite", "fast_vs_native", "fb_ratio", "fb_ratio_native",
                    "fb_ratio_eager", "fb_ratio_composite", "fb_fast_vs_native", "fast_vs_hand",
                    "fb_fast_vs_hand", "fast_vs_best", "fb_fast_vs_best", "aa"):
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


def compile_hand(
    fn: Callable[[Tensor], Tensor], name: str = "hand"
) -> tuple[Callable[[Tensor], Tensor], str]:
    """``(torch.compile(fn), "compiled")``, or ``(fn, "eager")`` under ``ACTLAB_NO_COMPILE``.

    Default inductor settings, except the thread count in the options: it goes into
    inductor's on-disk cache key, so that a kernel generated by a one-thread process is
    not reused single-threaded here (the fast path does the same). ``fn`` gets a code
    object of its own first: dynamo caches graphs per code object, and the closures that
    :func:`~actlab.bench.hand.hand_formula` returns share one, which would exhaust its
    recompilation limit after a few activations and silently run the rest eagerly.
    """
    if compile_disabled():
        return fn, "eager"
    tag = "".join(c if c.isalnum() else "_" for c in name)
    fresh = _fresh(fn, f"hand_{tag}_{next(_HAND_IDS)}")
    return torch.compile(fresh, options={"cpp.threads": torch.get_num_threads()}), "compiled"


_HAND_IDS = itertools.count()


def bench_activation(
    activation: str | Activation,
    *,
    size: int = 1 << 24,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    backward: bool = True,
    eager: bool = True,
    hand: bool = True,
    min_run_time: float = 0.2,
    rounds: int = 3,
    clock: str = "wall",
    seed: int = 0,
    precise: bool = False,
) -> KernelRow:
    """Time one activation (see the module docstring); returns a :class:`KernelRow`.

    ``hand=False`` skips the compiled hand-written formula; ``precise=True`` times the
    precise fast path (see :func:`actlab.catalog.fast.fast_call`).
    """
    release_memory()  # what earlier activations freed (kept under reuse_memory())
    start = time.perf_counter()
    act = get(activation)
    dev = torch.device(device)
    x = _input(act, size, dtype, dev, seed)
    flat = x.reshape(-1)
    channels = x.shape[-1]  # sizes per-channel parameters; ignored by the others
    fast = FastActivationModule(act, channels, precise=precise).to(dev)
    native = act.native_fn
    eager_m = act.module(channels=channels).to(dev)
    composite = _composite(act)
    written = hand_formula(act) if hand else None
    if written is not None and act.learn:
        # learnable parameters: the user's module learns them too, so that both backwards
        # compute their gradients (a hand formula with constants would do less work)
        written = HandModule(act, channels).to(device=dev, dtype=dtype).fn
    hand_fn, hand_path = compile_hand(written, act.name) if written is not None else (None, "-")
    nan = float("nan")

    def no_grad(fn: Callable[[Tensor], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with torch.no_grad():
                return fn(x)

        return call

    fns: dict[str, Callable[[], Any]] = {"clone": flat.clone, "fast": no_grad(fast),
                                         "fast_again": no_grad(fast)}
    if native is not None:
        fns["native"] = no_grad(native)
    if hand_fn is not None:
        fns["hand"] = no_grad(hand_fn)
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
        if hand_fn is not None:
            fns["fb_hand"] = fwd_bwd(hand_fn)
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
        fwd_hand=t.get("hand", nan),
        fb_hand=t.get("fb_hand", nan),
        hand_path=hand_path,
        fwd_fast_again=t["fast_again"],
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
    ("fast/nat", "fast forward / native forward"),
    ("fast/hand", "fast forward / compiled hand-written formula"),
    ("f+b/floor", "fast forward+backward / floor (2.5 clones; 2.0 gated)"),
    ("f+b/nat", "fast forward+backward / native forward+backward"),
    ("f+b/hand", "fast forward+backward / compiled hand formula forward+backward"),
    ("module f+b", "act.module() forward+backward / floor"),
    ("comp fwd", "composite (unfused) forward / t_clone"),
    ("B saved", "bytes saved for backward per element: fast path"),
    ("B comp", "bytes saved per element: composite autograd path"),
    ("A/A", "the fast forward timed again / fast forward: the run's noise"),
)


def table_rows(rows: Sequence[KernelRow]) -> list[list[str]]:
    """The table cells (strings) for :data:`COLUMNS`."""
    out = []
    for r in rows:
        out.append([
            r.name, r.native or "-", r.path, _fmt(r.fwd_ratio), _fmt(r.fast_vs_native),
            _fmt(r.fast_vs_hand), _fmt(r.fb_ratio), _fmt(r.fb_fast_vs_native),
            _fmt(r.fb_fast_vs_hand), _fmt(r.fb_ratio_eager), _fmt(r.fwd_ratio_composite),
            _fmt(r.saved_fast, 1), _fmt(r.saved_composite, 1), _fmt(r.aa),
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
    slower_than_best: list[str] = field(default_factory=list)
    with_peer: list[str] = field(default_factory=list)


def targets(rows: Sequence[KernelRow], fwd: float = 1.25, fb: float = 1.25,
            native: float = 1.05) -> TargetSummary:
    """Split rows by the targets: forward <= ``fwd`` clones, forward+backward <= ``fb``
    floors, never slower than the native op (ratio <= ``native``, forward or f+b), and
    never slower than the better peer (native op or compiled hand formula; same ratio)."""
    with_peer = [r for r in rows if not math.isnan(r.fast_vs_best)]
    return TargetSummary(
        fwd_within=[r.name for r in rows if r.fwd_ratio <= fwd],
        fwd_over=[r.name for r in rows if not r.fwd_ratio <= fwd],
        fb_within=[r.name for r in rows if r.fb_ratio <= fb],
        fb_over=[r.name for r in rows if not math.isnan(r.fb_fast) and not r.fb_ratio <= fb],
        slower_than_native=[
            r.name for r in rows
            if r.fast_vs_native > native or r.fb_fast_vs_native > native
        ],
        slower_than_best=[
            f"{r.name} ({_fmt(r.fast_vs_best)}/{_fmt(r.fb_fast_vs_best)})" for r in with_peer
            if r.fast_vs_best > native or r.fb_fast_vs_best > native
        ],
        with_peer=[r.name for r in with_peer],
    )
