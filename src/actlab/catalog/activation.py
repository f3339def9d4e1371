"""The activation object: a spec bound to parameter values.

``Activation`` is what ``actlab.get`` returns. It is callable on tensors (and NumPy
arrays), knows its analytic derivative, and builds ``nn.Module`` s that run PyTorch's
native op where it saves no more than the input (:mod:`actlab.catalog.native`), and a
memory-efficient custom ``autograd.Function`` (it saves only its input) otherwise.

NaN and +-inf inputs get one answer on every path (``act(x)``, ``act.derivative(x)``,
the modules, the fast path): an activation that PyTorch implements gives PyTorch's values
of f and f' (e.g. relu'(NaN) = 1, gelu'(+-inf) = NaN, as ``torch.nn`` computes them, so
that swapping modules never changes a model's numbers); any other gives NaN at NaN and
the limits of f and f' at +-inf (NaN where there is none, e.g. ``sine``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import is_lazy

from actlab.catalog import recompute
from actlab.catalog.native import (
    APPROXIMATE,
    GradFn,
    native_inplace_fn,
    native_module_fn,
    native_output_grad_fn,
)
from actlab.catalog.spec import ActivationSpec

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _as_tensor(x: Any) -> tuple[Tensor, bool]:
    """Return ``(tensor, was_numpy)``; integer and bool inputs become floating point."""
    if isinstance(x, Tensor):
        t = x
        was_numpy = False
    elif isinstance(x, np.ndarray | np.generic | float | int | list | tuple):
        arr = np.asarray(x)
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
        t = torch.from_numpy(np.ascontiguousarray(arr))
        was_numpy = True
    else:
        raise TypeError(
            f"expected a torch.Tensor or a NumPy array, got {type(x).__name__}"
        )
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t, was_numpy


def finite_float(value: Any) -> float | None:
    """``float(value)`` if it is a finite number (bools excluded), else ``None``."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _upcast(x: Tensor) -> Tensor:
    """Half-precision inputs are computed in float32 (PyTorch's own 'opmath' rule)."""
    return x.float() if x.dtype in _LOW_PRECISION else x


class Activation:
    """An activation function with fixed hyper-parameters.

    Args:
        spec: the :class:`ActivationSpec` it implements.
        learn: names of parameters that ``module()`` makes learnable
            (default: the spec's ``learned_by_default``).
        **params: hyper-parameter values overriding the spec's defaults.

    Example:
        >>> import actlab, torch
        >>> act = actlab.get("leaky_relu", alpha=0.1)
        >>> act(torch.tensor([-1.0, 2.0]))
        tensor([-0.1000,  2.0000])
    """

    def __init__(
        self, spec: ActivationSpec, *, learn: Iterable[str] | None = None, **params: float
    ) -> None:
        unknown = set(params) - set(spec.params)
        if unknown:
            accepted = ", ".join(sorted(spec.params)) or "none"
            raise ValueError(
                f"{spec.name} has no parameter {', '.join(sorted(unknown))}; "
                f"accepted parameters: {accepted}"
            )
        values: dict[str, float] = dict(spec.params)
        for key, value in params.items():
            number = finite_float(value)
            if number is None:
                raise ValueError(
                    f"{spec.name} parameter {key} must be a finite number, got {value!r}"
                )
            values[key] = number
            low, high = spec.param_ranges.get(key, (None, None))
            if (low is not None and values[key] < low) or (high is not None and values[key] > high):
                raise ValueError(
                    f"{spec.name} parameter {key}={value!r} is out of range; "
                    f"accepted: [{low if low is not None else '-inf'}, "
                    f"{high if high is not None else 'inf'}]"
                )
        problem = spec.check(**values)
        if problem:
            raise ValueError(f"{spec.name}: {problem}")
        learned = tuple(spec.learned_by_default if learn is None else learn)
        bad = set(learned) - set(spec.learnable)
        if bad:
            accepted = ", ".join(spec.learnable) or "none"
            raise ValueError(
                f"{spec.name} cannot learn {', '.join(sorted(bad))}; learnable: {accepted}"
            )
        self.spec = spec
        self._params = values
        self.learn = learned

    # ------------------------------------------------------------------ metadata
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def formula(self) -> str:
        return self.spec.formula

    @property
    def reference(self) -> str:
        return self.spec.reference

    @property
    def params(self) -> dict[str, float]:
        """The hyper-parameter values (a copy)."""
        return dict(self._params)

    @property
    def native(self) -> str | None:
        """Name of the native PyTorch equivalent for these parameters, if any."""
        return self.spec.native if self.native_fn is not None else None

    @property
    def native_fn(self) -> Any:
        """The native PyTorch callable for these parameters, or ``None``."""
        if self.spec.native_factory is None:
            return None
        return self.spec.native_factory(self._params)

    @property
    def gated(self) -> bool:
        return self.spec.gated

    @property
    def key(self) -> str:
        """A string that :func:`actlab.get` turns back into this activation's function.

        The registered name, or ``"formula:<text>"`` for a formula activation; used to
        send activations to worker processes and to store them in a study database.
        """
        return f"formula:{self.spec.source}" if self.spec.source is not None else self.name

    def __reduce__(self) -> tuple[Any, ...]:
        from actlab.catalog.registry import _rebuild

        return (_rebuild, (self.key, self.spec.name, self._params, self.learn))

    def with_params(self, **params: float) -> Activation:
        """A copy with some hyper-parameters changed."""
        return Activation(self.spec, learn=self.learn, **{**self._params, **params})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self._params.items())
        return f"Activation({self.name}{', ' if args else ''}{args})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Activation)
            and other.spec is self.spec
            and other._params == self._params
            and other.learn == self.learn
        )

    def __hash__(self) -> int:
        return hash((self.spec.name, tuple(sorted(self._params.items())), self.learn))

    # ------------------------------------------------------------------ maths
    def _check_gated(self, x: Tensor) -> None:
        if x.dim() == 0 or x.shape[-1] % 2:
            raise ValueError(
                f"{self.name} splits the last dimension into two halves and needs it to be "
                f"even; got a tensor of shape {tuple(x.shape)}"
            )

    def _forward(self, x: Tensor, params: Mapping[str, Any]) -> Tensor:
        """f(x) on a tensor already in compute precision."""
        if self.spec.gated:
            self._check_gated(x)
            a, b = x.chunk(2, dim=-1)
            return self.spec.forward(a, b, **params)
        return self.spec.forward(x, **params)

    def _derivative(self, x: Tensor, params: Mapping[str, Any]) -> Tensor:
        """f'(x) (for gated: the two partials concatenated), in compute precision."""
        if self.spec.derivative is None:
            with torch.enable_grad():
                xr = x.detach().requires_grad_(True)
                detached = {
                    k: (v.detach() if isinstance(v, Tensor) else v) for k, v in params.items()
                }
                y = self._forward(xr, detached)
                if not y.requires_grad:  # f does not depend on x (e.g. a constant formula)
                    return torch.zeros_like(x)
                if self.spec.gated:
                    # out_i depends on a_i and b_i only: d(sum out)/dx gives both partials
                    (g,) = torch.autograd.grad(y.sum(), xr)
                else:
                    (g,) = torch.autograd.grad(y, xr, torch.ones_like(y))
            return g
        if self.spec.gated:
            self._check_gated(x)
            a, b = x.chunk(2, dim=-1)
            da, db = self.spec.derivative(a, b, **params)
            return torch.cat([da, db], dim=-1)
        return self.spec.derivative(x, **params)

    def __call__(self, x: Any) -> Any:
        """f(x). Tensors in, tensor out (same dtype and device); NumPy in, NumPy out."""
        t, was_numpy = _as_tensor(x)
        y = self._forward(_upcast(t), self._params).to(t.dtype)
        return y.numpy() if was_numpy else y

    def derivative(self, x: Any) -> Any:
        """The analytic first derivative f'(x), element-wise.

        For gated activations (GLU family) the result has the input's shape: the first
        half holds df/da and the second half df/db for each output element.
        """
        t, was_numpy = _as_tensor(x)
        with torch.no_grad():
            g = self._derivative(_upcast(t), self._params).to(t.dtype)
        return g.numpy() if was_numpy else g

    def _param_derivative(
        self, x: Tensor, params: Mapping[str, Any], names: Iterable[str]
    ) -> dict[str, Any]:
        """``{name: df/dparam}`` element-wise (broadcastable to f(x)), in compute precision.

        From the spec's analytic ``param_derivative``, or else by autograd of the forward
        with each parameter expanded to the output's shape (one value per element).
        """
        names = tuple(names)
        fn = self.spec.param_derivative
        if fn is not None:
            if self.spec.gated:
                self._check_gated(x)
                a, b = x.chunk(2, dim=-1)
                parts = fn(a, b, **params)
            else:
                parts = fn(x, **params)
            return {n: parts[n] for n in names}
        out: dict[str, Any] = {}
        with torch.enable_grad():
            xd = x.detach()
            shape = self._forward(xd, params).shape
            for n in names:
                value = torch.as_tensor(params[n], dtype=x.dtype, device=x.device)
                leaf = value.detach().expand(shape).clone().requires_grad_(True)
                y = self._forward(xd, {**params, n: leaf})
                (g,) = torch.autograd.grad(y, leaf, torch.ones_like(y), allow_unused=True)
                out[n] = torch.zeros_like(leaf) if g is None else g.detach()
        return out

    def param_derivative(self, x: Any) -> dict[str, Any]:
        """Partial derivatives of f with respect to each learnable parameter, element-wise.

        ``{name: df/dparam}``, each of f(x)'s shape (analytic where the spec gives them,
        else exact autograd); NumPy in, NumPy out. A per-channel parameter is evaluated
        at its scalar value: the derivative with respect to the channel's own value.

        Example:
            >>> d = actlab.get("star_relu").param_derivative(torch.tensor([-1.0, 2.0]))
            >>> d["s"], d["b"]
            (tensor([0., 4.]), tensor([1., 1.]))
        """
        t, was_numpy = _as_tensor(x)
        xc = _upcast(t)
        with torch.no_grad():
            shape = self._forward(xc, self._params).shape
            parts = self._param_derivative(xc, self._params, self.spec.learnable)
        out = {}
        for n, d in parts.items():
            full = torch.as_tensor(d, dtype=xc.dtype, device=xc.device).expand(shape)
            full = full.to(t.dtype).clone()
            out[n] = full.numpy() if was_numpy else full
        return out

    def module(
        self, fast: bool = False, channels: int | None = None, precise: bool = False
    ) -> nn.Module:
        """A ``torch.nn.Module`` computing this activation.

        Where PyTorch has the op (and its autograd saves no more than the input) the
        module runs it directly, as fast as ``torch.nn``'s; otherwise its backward is a
        custom ``autograd.Function`` that saves only the input and recomputes f'(x) from
        it (see :mod:`actlab.catalog.native`). Learnable parameters are
        ``nn.Parameter`` s. ``fast=True`` compiles forward and derivative (see
        :mod:`actlab.catalog.fast`); ``precise=True`` never runs a native op that is
        less accurate than the catalog (e.g. float32 ``F.gelu``'s lower tail).

        ``channels``: the number of channels of per-channel parameters (the spec's
        ``per_channel``, e.g. DyT's gamma and beta on the last dimension). Without it,
        such a module is lazy (:class:`torch.nn.modules.lazy.LazyModuleMixin`): its
        per-channel parameters take their size from the first input, so it can replace
        an activation in any model; run one batch through the model before creating
        its optimizer (or pass ``channels``). Ignored by activations without
        per-channel parameters.
        """
        lazy = channels is None and any(n in self.spec.per_channel for n in self.learn)
        if fast:
            from actlab.catalog.fast import FastActivationModule, LazyFastActivationModule

            cls = LazyFastActivationModule if lazy else FastActivationModule
            return cls(self, channels, precise=precise)
        return (LazyActivationModule if lazy else ActivationModule)(self, channels, precise=precise)

    def fast(self, x: Tensor, precise: bool = False) -> Tensor:
        """f(x) through the compiled fast path (falls back to eager silently)."""
        from actlab.catalog.fast import fast_call

        return fast_call(self, x, precise=precise)


#: elements per chunk of the memory-efficient Function's eager computations, per device
#: type (absent: the whole tensor at once). On the CPU, chunks that fit in the L2 cache keep
#: the formulas' intermediate tensors small: a backward then holds the gradient it returns
#: plus a few chunks, not several input-sized temporaries (``benchmarks/memory.py``).
EAGER_CHUNK: dict[str, int] = {"cpu": 1 << 18}


def _chunked(
    fn: Any, x: Tensor, others: tuple[Tensor, ...], out_last: int, dtype: torch.dtype
) -> Tensor | None:
    """``fn(x, *others)`` computed in row chunks of the last dimension into one output of
    shape ``(*x.shape[:-1], out_last)``; ``None`` when ``x`` is small enough (or on a
    device without chunking) to compute at once."""
    size = EAGER_CHUNK.get(x.device.type)
    if size is None or x.numel() <= size or x.dim() == 0:
        return None
    width = x.shape[-1]
    rows = [t.reshape(-1, t.shape[-1]) for t in (x, *others)]
    out = torch.empty((rows[0].shape[0], out_last), dtype=dtype, device=x.device)
    step = max(1, size // max(width, 1))
    for i in range(0, rows[0].shape[0], step):
        out[i : i + step] = fn(*(r[i : i + step] for r in rows))
    return out.view(*x.shape[:-1], out_last)


def _channel_view(x: Tensor, p: Tensor, dim: int) -> Tensor:
    """A per-channel parameter ``(C,)`` shaped to broadcast along dimension ``dim`` of x."""
    if p.dim() == 0:
        return p
    shape = [1] * x.dim()
    shape[dim] = p.shape[0]
    return p.view(shape)


def bind_params(
    act: Activation, names: tuple[str, ...], learned: Iterable[Tensor], x: Tensor
) -> dict[str, Any]:
    """The activation's parameters with learned tensors in place of ``names``
    (per-channel ones shaped to broadcast along their dimension of ``x``)."""
    params: dict[str, Any] = dict(act._params)
    per = act.spec.per_channel
    for n, p in zip(names, learned, strict=True):
        params[n] = _channel_view(x, p, per[n]) if n in per else p
    return params


def reduce_param_grads(
    act: Activation,
    x: Tensor,
    grad_out: Tensor,
    params: Mapping[str, Any],
    names: tuple[str, ...],
    learned: list[Tensor],
    wanted: list[int],
) -> dict[int, Tensor]:
    """Gradients of the learned parameters ``wanted`` (indices into ``names``) from the
    spec's analytic element-wise partials: ``sum(grad_out * df/dp)`` over the elements
    each parameter value acts on."""
    parts = act._param_derivative(x, params, [names[i] for i in wanted])
    g = grad_out.to(x.dtype)
    out = {}
    for i in wanted:
        shape = params[names[i]].shape if isinstance(params[names[i]], Tensor) else ()
        total = (g * parts[names[i]]).sum_to_size(shape)
        out[i] = total.reshape(learned[i].shape).to(learned[i].dtype)
    return out


class _MemoryEfficientFn(torch.autograd.Function):
    """Forward saves only x (and learned parameters); backward recomputes f'(x).

    Without learned parameters, large tensors are computed in chunks
    (:data:`EAGER_CHUNK`), so that the formulas' intermediates stay chunk-sized.
    """

    @staticmethod
    def forward(ctx: Any, act: Activation, names: tuple[str, ...], x: Tensor, *learned: Tensor):
        params = bind_params(act, names, learned, x)
        ctx.act, ctx.names = act, names
        ctx.save_for_backward(x, *learned)
        with torch.no_grad():
            if not learned and x.dim() > 0:
                if act.gated:
                    act._check_gated(x)  # the error names the whole tensor, not a chunk
                width = x.shape[-1] // 2 if act.gated else x.shape[-1]
                y = _chunked(lambda t: act._forward(_upcast(t), params).to(t.dtype), x, (),
                             width, x.dtype)
                if y is not None:
                    return y
            return act._forward(_upcast(x), params).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor):
        x, *learned = ctx.saved_tensors
        act: Activation = ctx.act
        params = bind_params(act, ctx.names, learned, x)
        grad_x = None
        if ctx.needs_input_grad[2]:

            def grad(xs: Tensor, gs: Tensor) -> Tensor:
                d = act._derivative(_upcast(xs), params).to(gs.dtype)
                # gated: out_i depends on a_i and b_i, so both halves take the same grad_out
                return (torch.cat([gs, gs], dim=-1) if act.gated else gs) * d

            if not learned:
                grad_x = _chunked(grad, x, (grad_out,), x.shape[-1], grad_out.dtype)
            if grad_x is None:
                grad_x = grad(x, grad_out)
        grads_p: list[Tensor | None] = [None] * len(learned)
        wanted = [i for i, _ in enumerate(learned) if ctx.needs_input_grad[3 + i]]
        if wanted and act.spec.param_derivative is not None:
            # analytic: the spec's element-wise partials, reduced over each value's elements
            with torch.no_grad():
                got = reduce_param_grads(
                    act, _upcast(x), grad_out, params, ctx.names, learned, wanted
                )
            for i, g in got.items():
                grads_p[i] = g
        elif wanted:
            xc = _upcast(x)
            # parameter gradients: recompute f from the saved input with autograd
            with torch.enable_grad():
                leaves = [p.detach().requires_grad_(True) for p in learned]
                p2 = bind_params(act, ctx.names, leaves, xc)
                y = act._forward(xc.detach(), p2)
                got = torch.autograd.grad(
                    y, [leaves[i] for i in wanted], grad_out.to(y.dtype), allow_unused=True
                )
            for i, g in zip(wanted, got, strict=True):
                grads_p[i] = torch.zeros_like(learned[i]) if g is None else g.to(learned[i].dtype)
        return (None, None, grad_x, *grads_p)


def _check_channels(channels: Any) -> int | None:
    if channels is None:
        return None
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer or None, got {channels!r}")
    return channels


class ActivationModule(nn.Module):
    """``nn.Module`` wrapper of an :class:`Activation`, memory-efficient and fast.

    Where PyTorch has the activation as a native op whose autograd saves no more than
    the input (relu, leaky_relu, elu, silu, mish, gelu, ...; the list and the reasons are
    in :mod:`actlab.catalog.native`), the module calls that op: a training step costs what
    it costs with ``torch.nn``'s module. Otherwise (no native op, learned parameters,
    ``precise=True``) its backward is a custom ``autograd.Function`` that saves only the
    input and recomputes f'(x) from the analytic derivative.

    Args:
        act: the activation.
        channels: ``C`` for per-channel parameters (see :meth:`Activation.module`).
        precise: never run a native op that is less accurate than the catalog's
            tolerance (``gelu``, ``gelu_tanh``, ``sigmoid``, ``tanh``, ``glu``: see
            :data:`actlab.catalog.native.APPROXIMATE`); use the catalog's stable formulas.
        inplace: write the output into the input's memory, as ``torch.nn.ReLU(inplace=True)``,
            where the native op allows it at no cost (its autograd keeps only the output:
            relu, leaky_relu, elu, selu, sigmoid, tanh, ...; see
            :data:`actlab.catalog.native.NATIVE_INPLACE`); elsewhere, and inside
            :func:`actlab.low_memory`, the module computes out of place. Only for inputs that
            nothing else reads (a layer's fresh output).

    Shape: ``(*, H)`` -> ``(*, H)``; gated activations: ``(*, 2H)`` -> ``(*, H)``.
    Learned per-channel parameters (the spec's ``per_channel``) have shape ``(C,)`` and
    act along their input dimension, whose size must be ``C``.

    Example:
        >>> m = actlab.get("silu", learn=["beta"]).module()
        >>> m(torch.randn(4, 8)).shape
        torch.Size([4, 8])
        >>> actlab.get("dyt").module(channels=8).gamma.shape
        torch.Size([8])
    """

    def __init__(
        self, act: Activation, channels: int | None = None, precise: bool = False,
        inplace: bool = False,
    ) -> None:
        super().__init__()
        self.act = act
        self.precise = bool(precise)
        self.inplace = bool(inplace)
        self._learned = tuple(act.learn)
        self._channel_dims = {n: d for n, d in act.spec.per_channel.items() if n in self._learned}
        self.channels = _check_channels(channels)
        dtype = torch.get_default_dtype()
        for name in self._learned:
            value = act.params[name]
            param: nn.Parameter
            if name not in self._channel_dims:
                param = nn.Parameter(torch.tensor(value, dtype=dtype))
            elif self.channels is None:
                param = nn.UninitializedParameter(dtype=dtype)
            else:
                param = nn.Parameter(torch.full((self.channels,), value, dtype=dtype))
            self.register_parameter(name, param)
        native = native_module_fn(act, self._learned)
        if self.precise and act.spec.name in APPROXIMATE:
            native = None
        self._native = native
        self._native_inplace = native_inplace_fn(act, self._learned) if native else None
        self._gated = act.gated

    def _channels_of(self, x: Tensor, name: str) -> int:
        """The size of ``x`` along ``name``'s channel dimension (``ValueError`` if none)."""
        dim = self._channel_dims[name]
        if not -x.dim() <= dim < x.dim():
            raise ValueError(
                f"{self.act.name}'s parameter {name} has one value per channel along "
                f"dimension {dim}, but the input has shape {tuple(x.shape)}"
            )
        return int(x.shape[dim])

    def initialize_parameters(self, x: Tensor) -> None:
        """Give uninitialized (lazy) per-channel parameters the channel count of ``x``,
        each channel at the activation's value (called at a lazy module's first call)."""
        for name in self._channel_dims:
            p = getattr(self, name)
            if is_lazy(p):
                c = self._channels_of(x, name)
                with torch.no_grad():
                    p.materialize((c,))
                    p.fill_(self.act.params[name])
                self.channels = c

    def _learned_tensors(self, x: Tensor) -> list[Tensor]:
        """The learned parameters, per-channel ones checked against ``x``'s channels."""
        if self._channel_dims and any(is_lazy(getattr(self, n)) for n in self._channel_dims):
            self.initialize_parameters(x)  # built directly, not by Activation.module()
        for name in self._channel_dims:
            p = getattr(self, name)
            c = self._channels_of(x, name)
            if not is_lazy(p) and p.shape[0] != c:
                raise ValueError(
                    f"{self.act.name}'s parameter {name} has {p.shape[0]} channels on "
                    f"dimension {self._channel_dims[name]}, but the input has {c} there "
                    f"(shape {tuple(x.shape)})"
                )
        return [getattr(self, n) for n in self._learned]

    @property
    def native(self) -> bool:
        """Whether the module runs PyTorch's native op (see :mod:`actlab.catalog.native`)."""
        return self._native is not None

    @property
    def output_grad(self) -> GradFn | None:
        """For a module that runs in place: ``(g, y) -> g * f'(x)`` from its output
        ``y = f(x)`` (the kernel its autograd runs), for loops that write the backward
        out; ``None`` otherwise."""
        if not self.inplace or self._native_inplace is None:
            return None
        return native_output_grad_fn(self.act, self._learned)

    def forward(self, x: Tensor) -> Tensor:
        if self.inplace and self._native_inplace is not None and not recompute.active():
            return self._native_inplace(x)
        y = self._compute(x)
        if recompute.active():  # inside actlab.low_memory(): later layers need not keep y
            recompute.register_output(y, x, [getattr(self, n) for n in self._learned],
                                      self._compute)
        return y

    def _compute(self, x: Tensor) -> Tensor:
        if self._native is not None:
            if self._gated:
                self.act._check_gated(x)
            return self._native(x)
        learned = self._learned_tensors(x)
        return _MemoryEfficientFn.apply(self.act, self._learned, x, *learned)

    def current(self) -> Activation:
        """The activation with learned parameters at their current values.

        A per-channel parameter counts when all its channels hold one value (before the
        first call of a lazy module: its initial value); otherwise ``ValueError``.
        """
        values = {}
        for n in self._learned:
            p = getattr(self, n)
            if is_lazy(p):
                continue
            flat = p.detach().reshape(-1)
            if not bool((flat == flat[0]).all()):
                raise ValueError(
                    f"{self.act.name}'s parameter {n} differs across its {flat.numel()} "
                    f"channels, and an Activation holds one value per parameter; read "
                    f"the module's {n} for the per-channel values"
                )
            values[n] = float(flat[0])
        return self.act.with_params(**values)

    def extra_repr(self) -> str:
        params = self.act.params
        fixed = ", ".join(f"{k}={v:g}" for k, v in params.items() if k not in self._learned)
        learned = ", ".join(
            f"{k}=learned per channel" if k in self._channel_dims else f"{k}=learned"
            for k in self._learned
        )
        flags = ("precise" if self.precise else "", "inplace" if self.inplace else "")
        inner = ", ".join(s for s in (fixed, learned, *flags) if s)
        if self._channel_dims and self.channels is not None:
            inner += f", channels={self.channels}"
        return f"{self.act.name}{', ' if inner else ''}{inner}"


class LazyActivationModule(LazyModuleMixin, ActivationModule):
    """An :class:`ActivationModule` whose per-channel parameters take their channel count
    from the first input (``torch.nn.LazyLinear``'s pattern); it then becomes an
    :class:`ActivationModule`.

    Example:
        >>> m = actlab.get("dyt").module()  # lazy: gamma and beta not sized yet
        >>> m(torch.randn(2, 16)).shape, m.gamma.shape
        (torch.Size([2, 16]), torch.Size([16]))
    """

    cls_to_become = ActivationModule
    # the mixin's initialize_parameters is a placeholder that raises
    initialize_parameters = ActivationModule.initialize_parameters
