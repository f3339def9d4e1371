"""Dead-unit monitor: which units of a model's activation layers never fire.

A unit (a feature: the last dimension of ``(N, ..., F)`` outputs, the channel of
``(N, C, H, W)`` ones) is *dead* over the batches seen when its output never exceeds
``threshold`` in absolute value and, if gradients were seen, it never passed a non-zero
gradient back to its input. ReLU units whose pre-activation stays negative are the classic
case ("dying ReLU"); leaky and smooth activations are never dead at threshold 0.

The monitor attaches forward hooks to every activation layer of any PyTorch model (and a
tensor hook on each layer's input for the gradient), folds each output and each input
gradient on the fly into a running peak ``max |value|`` per unit (one ``abs().amax`` over
the batch and spatial dimensions and one in-place ``fmax``, on the model's device, without
synchronising), and reports the dead fraction per layer. ``detach()`` removes every hook:
the model is left as it was.

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
    """State of one call site of one activation module (a layer).

    Per unit it keeps the largest ``|output|`` and the largest ``|gradient|`` passed to the
    input (``fmax``: a NaN batch leaves the peak as it was), on the model's device; a unit
    is alive when either peak exceeds the threshold. With a window, one pair of peaks per
    batch is kept instead.
    """

    def __init__(self, name: str, window: int | None) -> None:
        self.name = name
        self.units: int | None = None
        self.batches: deque[list[Tensor | None]] = deque(maxlen=window)  # [out, grad] peaks
        self.out_peak: Tensor | None = None  # running peaks (window None)
        self.grad_peak: Tensor | None = None
        self.grad_seen = False

    def add(self, peak: Tensor) -> None:
        if self.units is not None and peak.numel() != self.units:
            raise ValueError(
                f"layer {self.name} produced {peak.numel()} units after {self.units}; "
                "pass unit_dim to DeadUnitMonitor if the unit dimension is not the default"
            )
        self.units = peak.numel()
        if self.batches.maxlen is not None:
            self.batches.append([peak, None])
        elif self.out_peak is None:
            self.out_peak = peak
        else:
            torch.fmax(self.out_peak, peak, out=self.out_peak)

    def add_grad(self, peak: Tensor) -> None:
        self.grad_seen = True
        if self.batches.maxlen is not None:
            if self.batches:
                last = self.batches[-1]
                last[1] = peak if last[1] is None else torch.fmax(last[1], peak)
        elif self.grad_peak is None:
            self.grad_peak = peak
        elif self.grad_peak.shape == peak.shape:
            torch.fmax(self.grad_peak, peak, out=self.grad_peak)

    def _alive(self, out: Tensor, grad: Tensor | None, threshold: float) -> Tensor:
        alive = out > threshold
        if grad is not None:
            g = grad > threshold
            if g.numel() == 2 * alive.numel():  # gated: both halves feed one unit
                g = g.reshape(2, alive.numel()).any(dim=0)
            if g.numel() == alive.numel():
                alive = alive | g.reshape(alive.shape)
        return alive

    def alive(self, threshold: float) -> Tensor | None:
        if self.batches.maxlen is not None:
            if not self.batches:
                return None
            flags = [self._alive(o, g, threshold) for o, g in self.batches if o is not None]
            out = flags[0]
            for f in flags[1:]:
                out = out | f
            return out
        if self.out_peak is None:
            return None
        return self._alive(self.out_peak, self.grad_peak, threshold)

    def reset(self) -> None:
        self.batches.clear()
        self.out_peak = self.grad_peak = None
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
        gradients: also require that dead units passed no gradient (a tensor hook on a
            view of the module's input, so it sees only the gradient the module passes
            back; skipped for in-place modules).

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
        self._reduce: dict[int, list[int]] = {}
        self._handles: list[Any] = []
        self.paused = False
        self._attach()

    # ------------------------------------------------------------------ hooks
    def _attach(self) -> None:
        self._handles.append(self.model.register_forward_pre_hook(self._new_forward))
        for m in self._modules:
            if self.gradients and not getattr(m, "inplace", False):
                self._handles.append(m.register_forward_pre_hook(self._alias_input))
            self._handles.append(m.register_forward_hook(self._forward))

    def _new_forward(self, module: nn.Module, args: Any) -> None:
        self._calls.clear()

    def _alias_input(self, module: nn.Module, args: Any) -> Any:
        """Feed the module a fresh view of its input, so that a hook on that view sees
        exactly the gradient the module passes back (a tensor hook, much cheaper than a
        full backward hook)."""
        if self.paused or not args or not isinstance(args[0], Tensor):
            return None
        x = args[0]
        if not (torch.is_grad_enabled() and x.requires_grad):
            return None
        return (x.view_as(x), *args[1:])

    def _dims(self, ndim: int) -> list[int]:
        """The dimensions reduced for an output of ``ndim`` dimensions (cached)."""
        dims = self._reduce.get(ndim)
        if dims is None:
            ud = self.unit_dim if self.unit_dim is not None else (1 if ndim >= 4 else -1)
            ud = ud % ndim
            dims = self._reduce[ndim] = [d for d in range(ndim) if d != ud]
        return dims

    def _peak(self, t: Tensor) -> Tensor:
        """Largest ``|t|`` per unit (one reduction; ``abs().amax`` is the fastest on CPU)."""
        t = t.detach().abs()
        ndim = t.dim()
        if ndim == 0:
            return t.reshape(1)
        dims = self._dims(ndim)
        return t.amax(dim=dims) if dims else t

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
        key = id(module)
        k = self._calls.get(key, 0)
        self._calls[key] = k + 1
        site = self._sites.get((key, k)) or self._site(module, k)
        site.add(self._peak(output))
        x = args[0] if args else None
        if (
            self.gradients
            and isinstance(x, Tensor)
            and x.requires_grad
            and x is not output
            and torch.is_grad_enabled()
            and output.requires_grad
        ):
            x.register_hook(lambda g, site=site: self._backward(site, g))

    def _backward(self, site: _Site, grad: Tensor) -> None:
        if not self.paused and site.units is not None:
            site.add_grad(self._peak(grad))

    # ------------------------------------------------------------------ results
    def _alive_by_site(self) -> list[tuple[_Site, Tensor]]:
        out = []
        for site in self._sites.values():
            alive = site.alive(self.threshold)
            if alive is not None:
                out.append((site, alive))
        return out

    def dead(self) -> dict[str, Tensor]:
        """Layer name -> indices of its dead units (layers seen at least once)."""
        return {
            site.name: torch.nonzero(~alive).flatten().cpu()
            for site, alive in self._alive_by_site()
        }

    def fractions(self) -> dict[str, float]:
        """Layer name -> fraction of its units that are dead (layers seen at least once)."""
        return {site.name: float((~alive).float().mean()) for site, alive in self._alive_by_site()}

    def overall(self) -> float:
        """Dead units over all layers, as a fraction of all units (NaN before any batch)."""
        dead = total = 0
        for _, alive in self._alive_by_site():
            dead += int((~alive).sum())
            total += alive.numel()
        return dead / total if total else float("nan")

    def to_frame(self) -> Any:
        """``pandas.DataFrame``: layer, units, dead, fraction."""
        import pandas as pd

        rows = []
        for site, alive in self._alive_by_site():
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

    def __enter__(self) -> DeadUnitMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def __repr__(self) -> str:
        return (
            f"DeadUnitMonitor({len(self._modules)} modules, threshold={self.threshold:g}, "
            f"window={self.window})"
        )
