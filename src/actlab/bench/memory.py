"""Memory: bytes saved for backward, and the peak memory of a real training step.

Bytes saved for backward. :func:`saved_bytes` runs a forward under
``torch.autograd.graph.saved_tensors_hooks`` and adds up the sizes of the *distinct*
storages the graph saves (a tensor saved twice, or two views of one storage, count once:
ReLU's output, saved by ReLU and by the next layer, counts once). The memory-efficient
modules save only their input: 4 bytes per float32 element. A composite forward written
with torch ops (e.g. ``x * tanh(softplus(x))``) saves its intermediate results as well.

Peak training memory. PyTorch keeps no allocator statistics on the CPU, so
:func:`step_memory` measures one training step (``zero_grad(set_to_none=True)`` before,
then forward, loss, backward, optimiser step) with the profiler's memory events
(``torch.profiler.profile(profile_memory=True)``): every allocation and free of the CPU
allocator, in time order; their running sum is the memory the step holds at each moment,
and its maximum is the step's peak. Added to the memory held before the step (parameters,
optimiser state, the batch: :func:`tensor_bytes`), it is the training peak, the number
``torch.cuda.max_memory_allocated`` gives on a GPU (used there instead). The two measures
are cross-checked in ``tests/bench/test_memory.py``: what the profiler sees held at the
end of a forward is exactly the saved bytes (less the batch and weights, allocated
before) plus the output; and the saved bytes of the article's CNN equal a count by hand.

Example:
    >>> x = torch.randn(1000)
    >>> saved_bytes_per_element(torch.relu, x)   # relu saves its output
    4.0
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actlab.bench.hand import hand_formula
from actlab.bench.modules import swap_activations
from actlab.catalog import Activation, get, low_memory, recompute


def saved_bytes(fn: Callable[[Tensor], Any], x: Tensor, *, detach: bool = True) -> int:
    """Bytes of the distinct storages saved for backward while ``fn(x)`` runs.

    ``x`` is detached and made to require grad first (``detach=False``: used as it is,
    e.g. integer token ids), so the graph starts at it.
    """
    storages: dict[tuple[str, int], int] = {}
    inner = recompute.current_pack()  # inside actlab.low_memory(): count what it keeps

    def pack(t: Tensor) -> Any:
        packed = inner(t) if inner is not None else t
        kept = recompute.stored(packed)
        st = kept.untyped_storage()
        if st.nbytes():
            storages[(str(kept.device), st.data_ptr())] = st.nbytes()
        return packed

    xr = x.detach().requires_grad_(True) if detach else x
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, recompute.unpack):
        out = fn(xr)
    del out
    return sum(storages.values())


def saved_bytes_per_element(fn: Callable[[Tensor], Any], x: Tensor) -> float:
    """:func:`saved_bytes` divided by the number of input elements."""
    return saved_bytes(fn, x) / max(x.numel(), 1)


def tensor_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes of the distinct storages of ``tensors``."""
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def _state_tensors(model: nn.Module, opt: torch.optim.Optimizer) -> list[Tensor]:
    out = [p for p in model.parameters()] + [b for b in model.buffers()]
    for state in opt.state.values():
        out += [v for v in state.values() if isinstance(v, Tensor) and v.dim() > 0]
    return out


def profiled(fn: Callable[[], Any]) -> tuple[int, int]:
    """``(peak, end)``: the most bytes the CPU allocator held at once while ``fn()`` ran,
    and the bytes still held when it returned, counted from the profiler's memory events
    (allocations made before the call are not counted; frees of them are not seen)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")]
    events.sort(key=lambda e: e.start_ns())
    held = peak = 0
    for e in events:
        held += e.nbytes()
        peak = max(peak, held)
    return peak, held


@dataclass
class StepMemory:
    """Memory of one training step, in bytes.

    Attributes:
        before: parameters, optimiser state and the batch, held before the step.
        step_peak: the most the step itself held on top of that (profiler events; on
            CUDA, ``max_memory_allocated`` minus ``before``).
        saved: bytes the forward saved for backward (distinct storages).
        seconds: wall time of the fastest timed step (``nan`` when not timed).
    """

    before: int
    step_peak: int
    saved: int
    seconds: float = math.nan

    @property
    def peak(self) -> int:
        """The training peak: ``before + step_peak``."""
        return self.before + self.step_peak


def step_memory(
    model: nn.Module,
    x: Tensor,
    loss_fn: Callable[[Tensor], Tensor],
    *,
    optimizer: Callable[[Iterable[Tensor]], torch.optim.Optimizer] | None = None,
    recompute_outputs: bool = False,
    time_steps: int = 0,
) -> StepMemory:
    """Peak memory of one training step of ``model`` on input ``x`` (module docstring).

    ``loss_fn(output) -> scalar``. The optimiser (default Adam) takes one step first, so
    that its state exists, as in every step of a real run after the first.
    ``recompute_outputs``: every step runs inside :func:`actlab.low_memory`.
    ``time_steps``: also time that many steps (the fastest goes in ``seconds``).
    """
    make = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3))
    opt = make(model.parameters())
    float_input = x.is_floating_point()

    def block() -> contextlib.AbstractContextManager[None]:
        return low_memory() if recompute_outputs else contextlib.nullcontext()

    def step() -> None:
        with block():
            loss_fn(model(x)).backward()
        opt.step()

    step()
    opt.zero_grad(set_to_none=True)
    with block():
        saved = saved_bytes(model, x, detach=float_input)
    before = tensor_bytes([*_state_tensors(model, opt), x])
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        base = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        step()
        torch.cuda.synchronize(x.device)
        step_peak = torch.cuda.max_memory_allocated(x.device) - base
    else:
        step_peak = profiled(step)[0]
    opt.zero_grad(set_to_none=True)
    times = []
    for _ in range(time_steps):
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        t0 = time.perf_counter()
        step()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        times.append(time.perf_counter() - t0)
        opt.zero_grad(set_to_none=True)
    seconds = min(times) if times else math.nan  # the least disturbed step
    return StepMemory(before=before, step_peak=step_peak, saved=saved, seconds=seconds)


class HandModule(nn.Module):
    """An activation written by hand with plain torch ops (:mod:`actlab.bench.hand`);
    autograd keeps whatever the formula's ops save."""

    def __init__(self, act: Activation) -> None:
        super().__init__()
        fn = hand_formula(act)
        if fn is None:
            raise ValueError(f"no hand-written formula for {act.name}")
        self.fn = fn
        self.name = act.name

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


#: where Debian's dataset-fashion-mnist package puts the real files
DEBIAN_DATA = "/usr/share/datasets"


def _cnn(act: Activation, batch: int, device: torch.device):
    from actlab.experiments.data import load_dataset
    from actlab.experiments.data.core import DataError
    from actlab.experiments.models import CNN

    try:
        try:
            ds = load_dataset("fashion_mnist")  # $ACTLAB_DATA_DIR
        except DataError:
            ds = load_dataset("fashion_mnist", data_dir=DEBIAN_DATA)
        x, y = ds.x_train[:batch].clone(), ds.y_train[:batch].clone()  # not views of all
        source = "Fashion-MNIST"
    except (DataError, OSError):
        g = torch.Generator().manual_seed(0)
        x = torch.rand(batch, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (batch,), generator=g)
        source = "Fashion-MNIST-shaped random images (the real files were not found)"
    y = y.to(device)
    return CNN((1, 28, 28), 10, act), x.to(device), lambda out: F.cross_entropy(out, y), source


def _char_lm(act: Activation, batch: int, device: torch.device):
    from actlab.experiments.data import pydoc_text
    from actlab.experiments.models import CharTransformer
    from actlab.experiments.tasks.char_lm import DEFAULTS
    from actlab.experiments.train import _windows

    text = pydoc_text()
    block = int(DEFAULTS["block"])
    starts = torch.randint(0, len(text.train) - block - 1, (batch,),
                           generator=torch.Generator().manual_seed(0))
    xb, yb = _windows(text.train, starts, block)
    model = CharTransformer(
        text.vocab_size, block_size=block, d_model=int(DEFAULTS["d_model"]),
        n_layer=int(DEFAULTS["n_layer"]), n_head=int(DEFAULTS["n_head"]),
        d_ff=int(DEFAULTS["d_ff"]), activation=act,
    )
    yb = yb.to(device)

    def loss(out: Tensor) -> Tensor:
        return F.cross_entropy(out.flatten(0, 1), yb.flatten())

    return model, xb.to(device), loss, f"pydoc text, block {block}, char_lm's default model"


#: model name -> (activation, batch, device) -> (model, input, loss, data description)
MEMORY_MODELS: dict[str, Callable[..., tuple[nn.Module, Tensor, Callable, str]]] = {
    "cnn": _cnn,
    "char_lm": _char_lm,
}
DEFAULT_BATCH = {"cnn": 512, "char_lm": 64}


@dataclass
class MemoryRow:
    """Training memory of one model with one activation implementation, in bytes."""

    model: str
    activation: str
    impl: str
    batch: int
    before: int
    step_peak: int
    saved: int
    data: str
    seconds: float = math.nan

    @property
    def peak(self) -> int:
        return self.before + self.step_peak

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "peak": self.peak}


def _variants(act: Activation, impls: Sequence[str]) -> dict[str, Callable[[], nn.Module]]:
    from actlab.bench.modules import function_module, nn_module

    out: dict[str, Callable[[], nn.Module]] = {}
    for impl in impls:
        if impl in ("actlab", "low_memory"):
            out[impl] = act.module
        elif impl == "function":
            out[impl] = lambda act=act: function_module(act)
        elif impl == "hand" and hand_formula(act) is not None:
            out[impl] = lambda act=act: HandModule(act)
        elif impl == "torch.nn" and nn_module(act) is not None:
            out[impl] = lambda act=act: nn_module(act)
    return out


IMPLS = ("actlab", "low_memory", "function", "hand", "torch.nn")


def bench_memory(
    activations: Iterable[str | Activation] = ("relu", "leaky_relu", "mish", "gelu", "silu",
                                                "swiglu"),
    *,
    models: Sequence[str] = ("cnn", "char_lm"),
    impls: Sequence[str] = IMPLS,
    batch: dict[str, int] | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[MemoryRow], None] | None = None,
    time_steps: int = 0,
) -> list[MemoryRow]:
    """Training memory per model, activation and implementation.

    Implementations: ``actlab`` (``act.module()``), ``low_memory`` (``act.module()``
    with each step inside :func:`actlab.low_memory`), ``function`` (the
    memory-efficient custom Function), ``hand`` (the hand-written formula,
    :class:`HandModule`) and ``torch.nn`` (PyTorch's module), where each exists.
    ``time_steps``: also time that many steps of each (the fastest in ``seconds``).
    """
    unknown = [m for m in models if m not in MEMORY_MODELS]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; accepted: {', '.join(MEMORY_MODELS)}")
    bad = [i for i in impls if i not in IMPLS]
    if bad:
        raise ValueError(f"unknown implementation {bad[0]!r}; accepted: {', '.join(IMPLS)}")
    dev = torch.device(device)
    sizes = {**DEFAULT_BATCH, **(batch or {})}
    rows = []
    for model_name in models:
        for a in activations:
            act = get(a)
            torch.manual_seed(0)
            base, x, loss, data = MEMORY_MODELS[model_name](act, sizes[model_name], dev)
            for impl, make in _variants(act, impls).items():
                model = swap_activations(base, make).to(dev)
                m = step_memory(model, x, loss, recompute_outputs=impl == "low_memory",
                                time_steps=time_steps)
                row = MemoryRow(model_name, act.name, impl, sizes[model_name], m.before,
                                m.step_peak, m.saved, data, m.seconds)
                rows.append(row)
                if progress is not None:
                    progress(row)
    return rows


def markdown(rows: Sequence[MemoryRow], baseline: str = "relu") -> str:
    """A markdown table in MiB, with each row's peak over ``baseline``'s (``act.module()``)
    peak on the same model."""
    base = {r.model: r.peak for r in rows if r.activation == baseline and r.impl == "actlab"}
    timed = any(not math.isnan(r.seconds) for r in rows)
    own = {(r.model, r.activation): r.seconds for r in rows if r.impl == "actlab"}
    head = ("| model | activation | implementation | peak MiB | step MiB | saved MiB "
            f"| peak / {baseline} |")
    lines = [head + (" step time / actlab's |" if timed else ""),
             "|---|---|---|---|---|---|---|" + ("---|" if timed else "")]
    mib = 2.0**20
    for r in rows:
        ratio = f"{r.peak / base[r.model]:.2f}" if r.model in base else "-"
        line = (f"| {r.model} | {r.activation} | {r.impl} | {r.peak / mib:.1f} "
                f"| {r.step_peak / mib:.1f} | {r.saved / mib:.1f} | {ratio} |")
        if timed:
            ref = own.get((r.model, r.activation), math.nan)
            known = not (math.isnan(ref) or math.isnan(r.seconds))
            line += f" {r.seconds / ref:.2f} |" if known else " - |"
        lines.append(line)
    return "\n".join(lines)
