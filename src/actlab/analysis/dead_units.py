"""Dead-unit monitor: which units of a model's activation layers never fire.

A unit (a feature: the last dimension of ``(N, ..., F)`` outputs, the channel of
``(N, C, H, W)`` ones) is *dead* over the batches seen when its output never exceeds
``threshold`` in absolute value and, if gradients were seen, it never passed a non-zero
gradient back to its input. ReLU units whose pre-activation stays negative are the classic
case ("dying ReLU"); leaky and smooth activations are never dead at threshold 0.

The monitor attaches forward hooks (and full backward hooks) to every activation layer of
any PyTorch model, reduces each output on the fly to one flag per unit (``amax`` over the
batch and spatial dimensions, on the model's device, without synchronising), and reports
the dead fraction per layer. ``detach()`` removes every hook: the model is left as it was.

Example:
    >>> mon = DeadUnitMonitor(model)
    >>> for xb, yb in loader:
    ...     loss = F.cross_entropy(model(xb), yb); loss.backward(); opt.step()
    >>> mon.fractions()          # {"net.1": 0.12, "net.3": 0.0}
    >>> mon.reset(); mon.detach()
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

#: torch.nn activation classes the monitor finds by itself (plus actlab's modules)
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.Hardtanh,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardshrink, nn.Softshrink, nn.Tanhshrink, nn.LogSigmoid,
    nn.Threshold, nn.GLU,
)  # fmt: skip


def _is_activation(m: nn.Module) -> bool:
    if isinstance(m, ACTIVATION_TYPES):
        return True
    from actlab.catalog import Activation

    return isinstance(getattr(m, "act", None), Activation)


class _Site:
    """State of one call site of one activation module (a layer)."""

    def __init__(self, name: str, window: int | None) -> None:
        self.name = name
        self.units: int | None = None
        self.batches: deque[Tensor] = deque(maxlen=window)  # per-batch alive flags
        self.total: Tensor | None = None  # OR of all batches (window None)
        self.grad_seen = False

    def add(self, alive: Tensor) -> None:
        if self.units is not None and alive.numel() != self.units:
            raise ValueError(
                f"layer {self.name} produced {alive.numel()} units after {self.units}; "
                "pass unit_dim to DeadUnitMonitor if the unit dimension is not the default"
            )
        self.units = alive.numel()
        if self.batches.maxlen is not None:
            self.batches.append(alive)
        else:
            self.total = alive if self.total is None else self.total | alive

    def add_grad(self, alive: Tensor) -> None:
        self.grad_seen = True
        if self.batches.maxlen is not None and self.batches:
            self.batches[-1] = self.batches[-1] | alive
        elif self.total is not None:
            self.total = self.total | alive

    def alive(self) -> Tensor | None:
        if self.batches.maxlen is not None:
            if not self.batches:
                return None
            out = self.batches[0]
            for b in list(self.batches)[1:]:
                out = out | b
            return out
        return self.total

    def reset(self) -> None:
        self.batches.clear()
        self.total = None
        self.grad_seen = False


class DeadUnitMonitor:
    """Tracks dead units of a model's activation layers through hooks.

    Args:
        model: any ``nn.Module``.
        threshold: a unit is alive once ``|output| > threshold`` (0: any non-zero output).
        window: count only the last ``window`` batches (``None``: all since ``reset``).
        modules: the modules to watch (default: every activation module found in
            ``model``: ``torch.nn`` activations of :data:`ACTIVATION_TYPES` and actlab
            activation modules). With none, the monitor watches nothing and reports ``{}``
            (activations called as functions, ``F.relu(x)``, cannot be hooked: pass the
            modules whose outputs are the activations instead).
        unit_dim: the unit dimension of outputs; default: 1 for outputs with 4 or more
            dimensions (channels of N, C, H, W), else the last one.
        gradients: also require that dead units passed no gradient (full backward hooks;
            skipped for in-place modules).

    A module used at several places in one forward pass (one ``nn.ReLU()`` reused) is
    tracked per call site: ``name`` if it is called once per forward, else the names it
    is registered under in call order (or ``name#k``).
    """

    def __init__(
        self,
        model: nn.Module,
        threshold: float = 0.0,
        window: int | None = None,
        modules: Iterable[nn.Module] | None = None,
        unit_dim: int | None = None,
        gradients: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"DeadUnitMonitor needs a torch.nn.Module, got {type(model).__name__}")
        if not threshold >= 0:
            raise ValueError(f"threshold must be >= 0, got {threshold!r}")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be a positive integer or None, got {window!r}")
        self.model = model
        self.threshold = float(threshold)
        self.window = window
        self.unit_dim = unit_dim
        self.gradients = gradients
        names: dict[int, list[str]] = {}
        for n, m in model.named_modules(remove_duplicate=False):
            names.setdefault(id(m), []).append(n or type(m).__name__)
        watched = (
            list(modules)
            if modules is not None
            else [m for _, m in model.named_modules() if _is_activation(m)]
        )
        self._names = {id(m): names.get(id(m), [type(m).__name__]) for m in watched}
        self._modules = watched
        self._sites: dict[tuple[int, int], _Site] = {}
        self._calls: dict[int, int] = {}
        self._pending: dict[int, list[int]] = {}
        self._handles: list[Any] = []
        self._full_backward: dict[int, Any] = {}
        self.paused = False
        self._attach()

    # ------------------------------------------------------------------ hooks
    def _attach(self) -> None:
        self._handles.append(self.model.register_forward_pre_hook(self._new_forward))
        for m in self._modules:
            self._handles.append(m.register_forward_hook(self._forward))
            if self.gradients and not getattr(m, "inplace", False):
                self._full_backward[id(m)] = m.__dict__.get("_is_full_backward_hook")
                self._handles.append(m.register_full_backward_hook(self._backward))

    def _new_forward(self, module: nn.Module, args: Any) -> None:
        self._calls.clear()

    def _dims(self, t: Tensor) -> tuple[int, list[int]]:
        ud = self.unit_dim if self.unit_dim is not None else (1 if t.dim() >= 4 else -1)
        ud = ud % t.dim()
        return ud, [d for d in range(t.dim()) if d != ud]

    def _alive(self, t: Tensor) -> Tensor:
        if t.dim() == 0:
            t = t.reshape(1)
        _, dims = self._dims(t)
        t = t.detach()
        if not dims:
            return t.abs() > self.threshold
        hi, lo = t.amax(dim=dims), t.amin(dim=dims)
        return (hi > self.threshold) | (-lo > self.threshold)

    def _site(self, module: nn.Module, k: int) -> _Site:
        key = (id(module), k)
        if key not in self._sites:
            names = self._names[id(module)]
            name = names[k] if k < len(names) else f"{names[0]}#{k}"
            self._sites[key] = _Site(name, self.window)
            if k == 1 and len(names) < 2:  # a second call of a module registered once
                first = self._sites.get((id(module), 0))
                if first is not None and first.name == names[0]:
                    first.name = f"{names[0]}#0"
        return self._sites[key]

    def _forward(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.paused or not isinstance(output, Tensor):
            return
        k = self._calls.get(id(module), 0)
        self._calls[id(module)] = k + 1
        self._site(module, k).add(self._alive(output))
        if torch.is_grad_enabled() and output.requires_grad:
            stack = self._pending.setdefault(id(module), [])
            stack.append(k)
            del stack[:-64]

    def _backward(self, module: nn.Module, grad_input: Any, grad_output: Any) -> None:
        stack = self._pending.get(id(module))
        if self.paused or not stack:
            return
        k = stack.pop()
        g = grad_input[0] if grad_input else None
        if g is None:
            return
        alive = self._alive(g)
        site = self._sites.get((id(module), k))
        if site is None or site.units is None:
            return
        if alive.numel() == 2 * site.units:  # gated: both halves feed one unit
            alive = alive.reshape(2, site.units).any(dim=0)
        if alive.numel() == site.units:
            site.add_grad(alive)

    # ------------------------------------------------------------------ results
    def dead(self) -> dict[str, Tensor]:
        """Layer name -> indices of its dead units (layers seen at least once)."""
        out = {}
        for site in self._sites.values():
            alive = site.alive()
            if alive is not None:
                out[site.name] = torch.nonzero(~alive).flatten().cpu()
        return out

    def fractions(self) -> dict[str, float]:
        """Layer name -> fraction of its units that are dead (layers seen at least once)."""
        out = {}
        for site in self._sites.values():
            alive = site.alive()
            if alive is not None:
                out[site.name] = float((~alive).float().mean())
        return out

    def overall(self) -> float:
        """Dead units over all layers, as a fraction of all units (NaN before any batch)."""
        dead = total = 0
        for site in self._sites.values():
            alive = site.alive()
            if alive is not None:
                dead += int((~alive).sum())
                total += alive.numel()
        return dead / total if total else float("nan")

    def to_frame(self) -> Any:
        """``pandas.DataFrame``: layer, units, dead, fraction."""
        import pandas as pd

        rows = []
        for site in self._sites.values():
            alive = site.alive()
            if alive is not None:
                dead = int((~alive).sum())
                rows.append(
                    {"layer": site.name, "units": alive.numel(), "dead": dead,
                     "fraction": dead / alive.numel(), "gradients": site.grad_seen}
                )  # fmt: skip
        return pd.DataFrame(rows, columns=["layer", "units", "dead", "fraction", "gradients"])

    # ------------------------------------------------------------------ control
    def reset(self) -> None:
        """Forget every batch seen (e.g. at the start of an epoch)."""
        for site in self._sites.values():
            site.reset()
        self._pending.clear()

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """Batches inside this block are not counted (e.g. evaluation passes)."""
        before, self.paused = self.paused, True
        try:
            yield
        finally:
            self.paused = before

    def detach(self) -> None:
        """Remove every hook; the model is left as it was. Safe to call twice."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for m in self._modules:
            if id(m) in self._full_backward and not m._backward_hooks:
                # registering a full backward hook sets this flag; put back what it was
                m._is_full_backward_hook = self._full_backward[id(m)]
        self._full_backward.clear()

    def __enter__(self) -> DeadUnitMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def __repr__(self) -> str:
        return (
            f"DeadUnitMonitor({len(self._modules)} modules, threshold={self.threshold:g}, "
            f"window={self.window})"
        )
