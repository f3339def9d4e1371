"""Bytes that autograd keeps for the backward pass, per element of the input.

:func:`saved_bytes` runs a forward under ``torch.autograd.graph.saved_tensors_hooks``
and adds up the sizes of the *distinct* storages the graph saves (a tensor saved twice,
or two views of one storage, count once). The memory-efficient modules save only their
input: 4 bytes per float32 element. A composite forward written with torch ops (e.g.
``x * tanh(softplus(x))``) saves its intermediate results as well.

Example:
    >>> x = torch.randn(1000)
    >>> saved_bytes_per_element(torch.relu, x)   # relu saves its output
    4.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def saved_bytes(fn: Callable[[Tensor], Any], x: Tensor) -> int:
    """Bytes of the distinct storages saved for backward while ``fn(x)`` runs.

    ``x`` is detached and made to require grad first, so the graph starts at it.
    """
    storages: dict[tuple[str, int], int] = {}

    def pack(t: Tensor) -> Tensor:
        st = t.untyped_storage()
        if st.nbytes():
            storages[(str(t.device), st.data_ptr())] = st.nbytes()
        return t

    xr = x.detach().requires_grad_(True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(xr)
    del out
    return sum(storages.values())


def saved_bytes_per_element(fn: Callable[[Tensor], Any], x: Tensor) -> float:
    """:func:`saved_bytes` divided by the number of input elements."""
    return saved_bytes(fn, x) / max(x.numel(), 1)
