"""Training at ReLU's memory with any activation: outputs recomputed, not kept.

ReLU saves its output for backward, and the layer after it (a linear layer, a max-pool)
saves that same tensor: one tensor per layer. Mish, GELU, SiLU, SwiGLU, ... need their
*input* for the backward, and the next layer still saves their *output*: two tensors per
layer (1.4x ReLU's training peak on the article's CNN, ``benchmarks/memory.py``).

Inside :func:`low_memory`, the output of actlab's activation modules is not kept: when a
later layer saves it for backward, autograd stores a reference to the activation's input
(which the activation's own backward keeps anyway) and recomputes the output from it
when the backward needs it (``torch.autograd.graph.saved_tensors_hooks``). The graph
then holds one tensor per layer, as with ReLU, and the cost is one more forward of the
activation per saved use, in the backward. A max-pool's backward reads only the shape and
layout of what it saved (the gradient goes where the forward's indices say): for it the
activation's input, laid out as the output, stands in, and nothing is recomputed
(:data:`SHAPE_ONLY_NODES`).

It is exact (the same kernel on the same input gives the same bits) and safe:

* the output is only replaced where the activation's input is itself saved by the graph
  (so nothing is kept alive that was not already): ReLU, sigmoid and tanh save their
  output, and are left alone;
* the output must be an unmodified, dense tensor of its own storage, and the input and
  learned parameters unmodified when the backward comes: an in-place change in between
  raises ``RuntimeError`` in the backward, as autograd does for saved tensors;
* not under autocast (the backward does not run under the forward's autocast state).

Example:
    >>> model = nn.Sequential(nn.Linear(8, 32), actlab.get("mish").module(), nn.Linear(32, 1))
    >>> with low_memory():
    ...     loss = model(torch.randn(4, 8)).sum()
    >>> loss.backward()      # outside the block is fine: the graph keeps its hooks
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

_STATE = threading.local()


def _packer() -> _LowMemory | None:
    return getattr(_STATE, "packer", None)


def _storage_key(t: Tensor) -> tuple[str, int]:
    return (str(t.device), t.untyped_storage().data_ptr())


@dataclass
class _Output:
    """An activation's output that may be recomputed instead of kept."""

    out: weakref.ref[Tensor]
    version: int
    x: weakref.ref[Tensor]  # weak: only a _Recomputed holds it, when the graph saves it
    x_version: int
    params: tuple[Tensor, ...]
    param_versions: tuple[int, ...]
    recompute: Callable[[Tensor], Tensor]
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype


# Backward nodes that read only the shape, strides and dtype of their saved input, never
# its values (ATen's max-pool backwards scatter the gradient by the saved indices): for
# them the activation's input, laid out as the output, stands in for the recomputed
# output, so no output is materialised at all. CPU and CUDA only (their kernels were read;
# MPS builds its max-pool gradient from the input values).
SHAPE_ONLY_NODES = frozenset({
    "MaxPool2DWithIndicesBackward0", "MaxPool3DWithIndicesBackward0",
    "AdaptiveMaxPool2DBackward0", "AdaptiveMaxPool3DBackward0",
})


class _Recomputed:
    """What autograd stores in place of an activation's output (or a view of it)."""

    __slots__ = ("entry", "offset", "size", "stride", "x")

    def __init__(self, entry: _Output, x: Tensor, t: Tensor) -> None:
        self.entry, self.x = entry, x
        self.size, self.stride, self.offset = tuple(t.shape), t.stride(), t.storage_offset()

    def unpack(self) -> Tensor:
        e, x = self.entry, self.x
        if x._version != e.x_version or any(
            p._version != v for p, v in zip(e.params, e.param_versions, strict=True)
        ):
            raise RuntimeError(
                "an activation's input or parameter was modified by an inplace operation "
                "between the forward and the backward of actlab.low_memory(): its output "
                "cannot be recomputed (modify a clone, or step the optimizer after backward)"
            )
        if (x.device.type in ("cpu", "cuda") and x.dtype == e.dtype
                and tuple(x.shape) == e.size and x.stride() == e.stride
                and (node := torch._C._current_autograd_node()) is not None
                and node.name() in SHAPE_ONLY_NODES):
            return x.as_strided(self.size, self.stride, x.storage_offset() + self.offset)
        _STATE.recomputing = getattr(_STATE, "recomputing", 0) + 1
        try:
            full = e.recompute(x)
        finally:
            _STATE.recomputing -= 1
        if full.stride() != e.stride:
            full = torch.empty_strided(e.size, e.stride, dtype=full.dtype,
                                       device=full.device).copy_(full)
        return full.as_strided(self.size, self.stride, self.offset)


class _LowMemory:
    """The pack and unpack hooks of one :func:`low_memory` block."""

    def __init__(self) -> None:
        # storages the graph saves (weak: a saved tensor lives as long as its graph)
        self.saved: dict[tuple[str, int], weakref.ref[Tensor]] = {}
        self.outputs: dict[tuple[str, int], _Output] = {}

    @staticmethod
    def _ref(table: dict[tuple[str, int], Any], key: tuple[str, int], t: Tensor) -> Any:
        """A weak reference to ``t`` that removes ``table[key]`` when ``t`` dies (unless
        the key was taken by another tensor since)."""

        def gone(ref: Any) -> None:
            item = table.get(key)
            if item is ref or getattr(item, "out", None) is ref:
                table.pop(key, None)

        return weakref.ref(t, gone)

    def _alive(self, table: dict[tuple[str, int], Any], key: tuple[str, int], ref: Any) -> Any:
        t = ref() if ref is not None else None
        if t is None or _storage_key(t) != key:
            table.pop(key, None)
            return None
        return t

    def register(self, out: Tensor, x: Tensor, params: Sequence[Tensor],
                 recompute: Callable[[Tensor], Tensor]) -> None:
        """Let later saves of ``out`` store ``x`` and ``recompute(x)`` instead."""
        if getattr(_STATE, "recomputing", 0) or not out.requires_grad:
            return
        if out.untyped_storage().nbytes() != out.numel() * out.element_size() or (
            out.storage_offset() != 0
        ):
            return  # a view or a part of a larger buffer: keep it as it is
        key = _storage_key(out)
        self.outputs[key] = _Output(
            self._ref(self.outputs, key, out), out._version, weakref.ref(x), x._version,
            tuple(params),
            tuple(p._version for p in params), recompute, tuple(out.shape), out.stride(),
            out.dtype,
        )

    def pack(self, t: Tensor) -> Any:
        """The pack hook: an activation's output whose input is saved becomes a
        :class:`_Recomputed`; anything else is stored as it is."""
        if t.layout != torch.strided or not t.untyped_storage().nbytes():
            return t
        key = _storage_key(t)
        entry = self.outputs.get(key)
        if entry is not None:
            out = self._alive(self.outputs, key, entry.out)
            x = entry.x()
            if (out is not None and x is not None and t.dtype == out.dtype
                    and out._version == entry.version == t._version
                    and self._alive(self.saved, _storage_key(x),
                                    self.saved.get(_storage_key(x))) is not None):
                return _Recomputed(entry, x, t)
        self.saved[key] = self._ref(self.saved, key, t)
        return t


@contextmanager
def hooks_suspended() -> Iterator[None]:
    """No saved-tensor hooks within the block (this thread's, restored after it): for
    code that saves nothing and that ``torch.func`` or dynamo would refuse under hooks."""
    autograd = torch._C._autograd
    stack = []
    while (top := autograd._top_saved_tensors_default_hooks(False)) is not None:
        stack.append(top)
        autograd._pop_saved_tensors_default_hooks()
    try:
        yield
    finally:
        for pack, unpack in reversed(stack):
            autograd._push_saved_tensors_default_hooks(pack, unpack)


def current_pack() -> Callable[[Tensor], Any] | None:
    """The pack hook of this thread's open :func:`low_memory` block, or ``None`` (for
    measuring code that installs hooks of its own, e.g. ``actlab.bench.memory``)."""
    packer = _packer()
    return packer.pack if packer is not None else None


def unpack(packed: Any) -> Tensor:
    """The unpack hook of :func:`low_memory` (and of code that wraps its pack hook)."""
    return packed.unpack() if isinstance(packed, _Recomputed) else packed


def stored(packed: Any) -> Tensor:
    """The tensor a packed value keeps alive (for counting saved bytes)."""
    return packed.x if isinstance(packed, _Recomputed) else packed


def active() -> bool:
    """Whether a :func:`low_memory` block is open in this thread."""
    return _packer() is not None


def register_output(out: Tensor, x: Tensor, params: Sequence[Tensor],
                    recompute: Callable[[Tensor], Tensor]) -> None:
    """Called by actlab's modules: inside :func:`low_memory`, ``out`` (computed from ``x``
    and ``params`` by ``recompute``) need not be kept by the layers after it."""
    packer = _packer()
    if packer is None or torch.is_autocast_enabled(out.device.type):
        return
    packer.register(out, x, params, recompute)


@contextmanager
def low_memory() -> Iterator[None]:
    """Within the block, the layers after actlab's activation modules do not keep their
    outputs for backward: they are recomputed from the activation's input, which the
    activation keeps anyway (module docstring). The backward may run after the block.

    Example:
        >>> m = nn.Sequential(nn.Linear(4, 16), actlab.get("gelu").module(), nn.Linear(16, 2))
        >>> with low_memory():
        ...     m(torch.randn(3, 4)).sum().backward()
    """
    outer = _packer()
    packer = _LowMemory()
    _STATE.packer = packer
    try:
        with torch.autograd.graph.saved_tensors_hooks(packer.pack, unpack):
            yield
    finally:
        _STATE.packer = outer


__all__ = [
    "active", "current_pack", "hooks_suspended", "low_memory", "register_output", "stored",
    "unpack",
]
