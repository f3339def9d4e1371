"""The compiled fast path: each activation as two fused kernels.

``Activation.module(fast=True)`` and ``Activation.fast(x)`` run an activation through
two functions compiled with ``torch.compile`` (inductor; C++/OpenMP on CPU, Triton on
CUDA):

* forward ``x -> f(x)``: one pass that reads ``x`` and writes ``y`` (one "clone");
* backward ``(x, g) -> g * f'(x)``: one pass that reads ``x`` and ``g`` and writes the
  input gradient, from the spec's analytic derivative (1.5 clones).

The custom ``autograd.Function`` saves only ``x`` (and learned parameters), so a
forward plus backward moves the bytes of 2.5 clones: the memory-bandwidth floor of an
element-wise activation. Learned parameters enter the kernels as 0-d tensors; their
gradients are reduced inside the backward kernel (``torch.func.vjp``). Activations
without an analytic derivative (formulas, callables) use ``torch.func.vjp`` of their
forward inside the compiled backward.

A few built-ins have a cheaper, equally stable float32 formulation used only here (e.g.
mish with one ``exp`` instead of ``exp``, ``log1p`` and ``tanh``); the tests hold them to
the catalog's tolerances. Piecewise-linear built-ins with an exact native kernel (relu,
leaky_relu, hardtanh, ...) call ATen's single-pass forward and backward loops instead of
compiling (:data:`actlab.catalog.fast_forms.NATIVE_KERNELS`). pau, isru, isrlu and
bent_identity run actlab's own C kernels on the CPU in float32
(:mod:`actlab.catalog.cpu_kernels`: exact where their formulas overflow, and as fast as the
compiled formulas that are not), when a C compiler is there.

Compiled kernels are cached per (spec, parameter values, learned parameters, dtype,
device); tensors are flattened so that one dynamic-shape kernel serves every shape.
Where compilation is unavailable or fails, or ``ACTLAB_NO_COMPILE=1`` is set, the same
functions run eagerly (silently; the reason is logged at debug level). Under an outer
``torch.compile`` the plain functions are traced into the caller's graph. The backward
is not itself differentiable (no double backward).

Example:
    >>> m = actlab.get("mish").module(fast=True)
    >>> y = m(torch.randn(1024, requires_grad=True)); y.sum().backward()
    >>> actlab.get("gelu").fast(torch.randn(8)).shape
    torch.Size([8])
"""

from __future__ import annotations

import logging
import os
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn.modules.lazy import LazyModuleMixin

from actlab.catalog.activation import Activation, ActivationModule, _as_tensor
from actlab.catalog.cpu_kernels import cpu_kernel, has_cpu_kernel
from actlab.catalog.fast_forms import (
    APPROXIMATE_FORMS,
    COMPILED_FORWARD,
    FAST_FORMS,
    NATIVE_AUTOGRAD,
    NATIVE_FORWARD,
    NATIVE_KERNELS,
)
from actlab.catalog.recompute import hooks_suspended

log = logging.getLogger(__name__)

NO_COMPILE_ENV = "ACTLAB_NO_COMPILE"
_LOW_PRECISION = (torch.float16, torch.bfloat16)
_MAX_ENTRIES = 256
# C++ kernels: let the compiler fuse a * b + c into one FMA (faster polynomials,
# and no less accurate: one rounding instead of two)
_INDUCTOR_OPTIONS = {"cpp.enable_floating_point_contract_flag": "fast"}


@dataclass
class FastStats:
    """Counters of the fast path (process-wide).

    Attributes:
        compiles: graphs handed to the inductor compiler (grows on a cache miss or a
            recompilation; constant when calls reuse compiled kernels).
        kernels: cached kernel sets (one per activation/parameters/dtype/device).
        fallbacks: kernel sets that fell back to eager execution.
    """

    compiles: int = 0
    kernels: int = 0
    fallbacks: int = 0


_STATS = FastStats()
_CACHE: OrderedDict[tuple[Any, ...], _Kernels] = OrderedDict()
_LOCK = threading.Lock()


def fast_stats() -> FastStats:
    """A snapshot of the fast path's counters."""
    with _LOCK:
        return FastStats(_STATS.compiles, len(_CACHE), _STATS.fallbacks)


def clear_cache() -> None:
    """Forget every compiled kernel (the next call compiles again)."""
    with _LOCK:
        _CACHE.clear()


def compile_disabled() -> bool:
    """True when ``$ACTLAB_NO_COMPILE`` asks for eager execution."""
    return os.environ.get(NO_COMPILE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _inductor(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> Any:
    """The inductor backend, counting compilations."""
    from torch._inductor.compile_fx import compile_fx

    with _LOCK:
        _STATS.compiles += 1
    # The thread count goes into the options, hence into inductor's on-disk cache key:
    # a kernel generated for one thread has no OpenMP loop, and without this a later
    # process with more threads would load it from the cache and run it single-threaded.
    # (Dynamo recompiles when the thread count changes; this gives that compile its own
    # cache entry.)
    options = {**_INDUCTOR_OPTIONS, "cpp.threads": torch.get_num_threads()}
    with torch._inductor.config.patch(options):
        return compile_fx(gm, example_inputs)


def _fresh(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A copy of ``fn`` with its own code object.

    Dynamo caches compiled graphs on the code object, so closures made by one factory
    would share (and exhaust) one cache; a fresh code object per kernel set keeps them
    apart.
    """
    code = fn.__code__.replace(co_name=name, co_qualname=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


def _compute(x: Tensor) -> Tensor:
    return x.float() if x.dtype in _LOW_PRECISION else x


def _functions(
    act: Activation, learned: tuple[str, ...], precise: bool = False
) -> tuple[Callable[..., Tensor], Callable[..., tuple[Tensor, ...]]]:
    """Plain torch functions ``fwd(x, *p) -> y`` and ``bwd(x, g, *p) -> (gx, *gp)``.

    ``x`` is 1-D (or 2-D ``(rows, 2H)`` when gated); ``p`` the learned parameters as
    0-d tensors in the order of ``learned``. Unless ``precise``, float32 uses the faster
    :data:`~actlab.catalog.fast_forms.APPROXIMATE_FORMS` where there is one.
    """
    spec = act.spec
    fixed = {k: v for k, v in act.params.items() if k not in learned}
    forms = FAST_FORMS.get(spec.name) if spec.builtin else None
    if not precise and spec.builtin and spec.name in APPROXIMATE_FORMS:
        forms = APPROXIMATE_FORMS[spec.name]
    gated = spec.gated

    def pick(dtype: torch.dtype) -> tuple[Callable[..., Any] | None, ...]:
        # the cheaper forms are float32 forms; float64 keeps the catalog's own
        if forms is not None and dtype == torch.float32:
            return (*forms, None) if len(forms) == 2 else forms
        return spec.forward, spec.derivative, None

    def f(xc: Tensor, p: Sequence[Tensor]) -> Tensor:
        forward = pick(xc.dtype)[0]
        params = dict(fixed)
        params.update({n: v.to(xc.dtype) for n, v in zip(learned, p, strict=True)})
        if gated:
            a, b = xc.chunk(2, dim=-1)
            return forward(a, b, **params)
        return forward(xc, **params)

    def fwd(x: Tensor, *p: Tensor) -> Tensor:
        return f(_compute(x), p).to(x.dtype)

    def bwd(x: Tensor, g: Tensor, *p: Tensor) -> tuple[Tensor, ...]:
        xc, gc = _compute(x), _compute(g)
        derivative = pick(xc.dtype)[1]
        if derivative is None:
            _, pull = torch.func.vjp(lambda xx: f(xx, p), xc)
            (gx,) = pull(gc)
        else:
            params = dict(fixed)
            params.update({n: v.to(xc.dtype) for n, v in zip(learned, p, strict=True)})
            if gated:
                a, b = xc.chunk(2, dim=-1)
                da, db = derivative(a, b, **params)
                gx = torch.cat([gc * da, gc * db], dim=-1)
            else:
                gx = gc * derivative(xc, **params)
        if not p:
            return (gx.to(x.dtype),)
        if spec.param_derivative is not None:  # analytic partials, reduced per value
            params = dict(fixed)
            params.update({n: v.to(xc.dtype) for n, v in zip(learned, p, strict=True)})
            partials = pick(xc.dtype)[2]
            parts = (partials(xc, **params) if partials is not None
                     else act._param_derivative(xc, params, learned))
            gp = [(gc * parts[n]).sum_to_size(v.shape).to(v.dtype)
                  for n, v in zip(learned, p, strict=True)]
            return (gx.to(x.dtype), *gp)
        _, pull_p = torch.func.vjp(lambda *pp: f(xc, pp), *p)
        return (gx.to(x.dtype), *pull_p(gc))

    return fwd, bwd


def _native_functions(
    act: Activation,
) -> tuple[Callable[..., Tensor], Callable[..., tuple[Tensor, ...]]] | None:
    """ATen's exact single-pass kernels, for the piecewise-linear built-ins that have them."""
    kernels = NATIVE_KERNELS.get(act.spec.name) if act.spec.builtin else None
    if kernels is None:
        return None
    forward, backward = kernels
    params = act.params

    def fwd(x: Tensor) -> Tensor:
        return forward(x, **params)

    def bwd(x: Tensor, g: Tensor) -> tuple[Tensor]:
        return (backward(x, g, **params),)

    return fwd, bwd


class _Kernels:
    """Compiled forward and backward of one activation, for one dtype and device.

    ``path`` says how they run: ``"native"`` (the native op with PyTorch's autograd:
    :data:`~actlab.catalog.fast_forms.NATIVE_AUTOGRAD`, unless ``precise``);
    ``"compiled"``; ``"aten"`` (ATen's own single-pass kernels, for piecewise-linear
    built-ins without learned parameters);
    ``"aten+compiled"`` (ATen's forward where it is as accurate and faster, compiled
    backward); ``"compiled+aten"`` (the reverse: hardswish, whose compiled forward gives
    ATen's values faster); ``"kernel"`` (actlab's own C kernel, :mod:`actlab.catalog.cpu_kernels`:
    pau, isru, isrlu, bent_identity on the CPU in float32); or ``"eager"`` (the functions
    uncompiled, after a fall-back or with ``ACTLAB_NO_COMPILE``).
    """

    def __init__(
        self, act: Activation, learned: tuple[str, ...], tag: str, precise: bool = False,
        dtype: torch.dtype = torch.float32, device: torch.device | None = None,
    ) -> None:
        self.act = act
        self.learned = learned
        # learned per-channel parameters: x runs as rows (-1, C), channels last
        self.rows = any(n in act.spec.per_channel for n in learned)
        factory = NATIVE_AUTOGRAD.get(act.spec.name) if act.spec.builtin else None
        self.autograd = None if learned or precise or factory is None else factory(act.params)
        native = None if learned else _native_functions(act)
        self.fwd, self.bwd = native or _functions(act, learned, precise)
        # which directions run ATen's own kernels (never compiled)
        self.aten: set[str] = {"fwd", "bwd"} if native else set()
        if native and act.spec.name in COMPILED_FORWARD:  # same values, faster compiled
            self.fwd = _functions(act, learned, precise)[0]
            self.aten = {"bwd"}
        if not native and not learned and act.spec.builtin:
            factory = NATIVE_FORWARD.get(act.spec.name)
            fwd = factory(act.params) if factory is not None else None
            if fwd is not None:
                self.fwd = fwd
                self.aten.add("fwd")
        self.error: str | None = None
        self._compiled: dict[str, Callable[..., Any]] = {}
        if self.autograd is not None:
            self.aten = {"fwd", "bwd"}
        self.compiling = len(self.aten) < 2 and not compile_disabled()
        if len(self.aten) < 2 and not self.compiling:
            self.error = f"{NO_COMPILE_ENV} is set"
        self.tag = tag
        # actlab's own C kernel (float32 on the CPU), else the compiled torch form; a kernel
        # of an activation with an approximate form computes that form (not when precise)
        name = act.spec.name
        wanted = (act.spec.builtin and has_cpu_kernel(name) and self.compiling
                  and (device is None or torch.device(device).type == "cpu")
                  and dtype == torch.float32 and not (precise and name in APPROXIMATE_FORMS))
        self.cpu = cpu_kernel(name) if wanted else None

    @property
    def native(self) -> bool:
        return len(self.aten) == 2

    @property
    def path(self) -> str:
        if self.autograd is not None:
            return "native"
        if self.native:
            return "aten"
        if not self.compiling:
            return "eager"
        if self.cpu is not None:
            return "kernel"
        if self.aten == {"bwd"}:
            return "compiled+aten"
        return "aten+compiled" if self.aten else "compiled"

    def _fail(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        self.compiling = False
        with _LOCK:
            _STATS.fallbacks += 1
        log.debug("actlab fast path for %s runs eagerly: %s", self.act.name, self.error)

    def _compiled_fn(self, which: str) -> Callable[..., Any]:
        fn = self._compiled.get(which)
        if fn is None:
            raw = self.fwd if which == "fwd" else self.bwd
            fn = torch.compile(
                _fresh(raw, f"actlab_{which}_{self.tag}"),
                backend=_inductor,
                fullgraph=True,
            )
            self._compiled[which] = fn
        return fn

    def _run(self, which: str, *args: Tensor, params: bool = True) -> Any:
        # the kernels save nothing (no_grad); saved-tensor hooks (actlab.low_memory(),
        # torch's save_on_cpu, checkpointing) would stop torch.func and dynamo
        if torch._C._autograd._top_saved_tensors_default_hooks(False) is None:
            return self._run_kernel(which, *args, params=params)
        with hooks_suspended():
            return self._run_kernel(which, *args, params=params)

    def _run_cpu(self, which: str, x: Tensor, *rest: Tensor, params: bool) -> Any:
        """Through :attr:`cpu` (the C kernel): ``f(x)``, or ``(gx, *gp)`` (``gp`` when
        ``params``) for ``rest = (g, *p)``."""
        assert self.cpu is not None
        g, p = (None, rest) if which == "fwd" else (rest[0], rest[1:])
        values = {**self.act.params, **dict(zip(self.learned, p, strict=True))}
        coefficients = [values[n] for n in self.cpu.names]
        if g is None:
            return self.cpu.forward(x, coefficients)
        gx, sums = self.cpu.backward(x, g, coefficients, params=params and bool(p))
        if sums is None:
            return (gx,)
        index = {n: i for i, n in enumerate(self.cpu.learnable)}
        return (gx, *(sums[index[n]].to(v.dtype).reshape(v.shape)
                      for n, v in zip(self.learned, p, strict=True)))

    def _run_kernel(self, which: str, *args: Tensor, params: bool = True) -> Any:
        if self.cpu is not None and not torch.compiler.is_compiling():
            return self._run_cpu(which, *args, params=params)
        raw = self.fwd if which == "fwd" else self.bwd
        if self.compiling and which not in self.aten and not torch.compiler.is_compiling():
            try:
                fn = self._compiled_fn(which)
                # one kernel for every size: the number of elements (of rows, for gated
                # activations) is symbolic; a gated row's width stays static (a model has a
                # few), so that the halves are split at a constant offset and the loops
                # vectorise (a symbolic width made swiglu's backward 1.7x slower)
                for t in args[:2]:
                    torch._dynamo.maybe_mark_dynamic(t, 0)
                with torch.no_grad():
                    return fn(*args)
            except Exception as exc:  # compile unavailable or failed: run eagerly
                self._fail(exc)
        with torch.no_grad():
            return raw(*args)

    def forward(self, x: Tensor, p: Sequence[Tensor]) -> Tensor:
        return self._run("fwd", x, *p)

    def backward(
        self, x: Tensor, g: Tensor, p: Sequence[Tensor], params: bool = True
    ) -> tuple[Tensor, ...]:
        """``(gx, *gp)``; ``gp`` (the learned parameters' gradients) only when ``params``
        (``p`` is still needed for the values)."""
        out = self._run("bwd", x, g, *p, params=params)
        return out if params else out[:1]


def _kernels(
    act: Activation, learned: tuple[str, ...], x: Tensor, precise: bool = False
) -> _Kernels:
    spec = act.spec
    values = tuple(sorted((k, v) for k, v in act.params.items() if k not in learned))
    key = (id(spec), values, learned, x.dtype, str(x.device), compile_disabled(), precise)
    with _LOCK:
        k = _CACHE.get(key)
        if k is not None:
            _CACHE.move_to_end(key)
            return k
    tag = f"{spec.name}_{len(_CACHE)}".replace("-", "_")
    k = _Kernels(act, learned, "".join(c if c.isalnum() else "_" for c in tag), precise,
                 x.dtype, x.device)
    k.spec = spec  # keeps id(spec) alive while the entry is cached
    with _LOCK:
        k = _CACHE.setdefault(key, k)
        while len(_CACHE) > _MAX_ENTRIES:
            _CACHE.popitem(last=False)
    return k


def _flat(act: Activation, x: Tensor, rows: bool = False) -> Tensor:
    """``x`` as a contiguous 1-D tensor, or ``(rows, 2H)`` for gated activations
    (``(rows, C)`` with ``rows=True``: per-channel parameters on the last dimension).

    Detached, so that the compiled kernels see a tensor that is not a view (dynamo
    would otherwise guard on, and recompile for, the layout of the view's base).
    """
    if act.gated:
        act._check_gated(x)
        return x.contiguous().view(-1, x.shape[-1]).detach()
    if rows:
        return x.contiguous().view(-1, x.shape[-1] if x.dim() else 1).detach()
    return x.contiguous().view(-1).detach()


def _out_shape(act: Activation, x: Tensor) -> tuple[int, ...]:
    return (*x.shape[:-1], x.shape[-1] // 2) if act.gated else tuple(x.shape)


class _FastFn(torch.autograd.Function):
    """Forward and backward through compiled kernels; saves only x (and parameters)."""

    @staticmethod
    def forward(ctx: Any, kernels: _Kernels, x: Tensor, *p: Tensor) -> Tensor:
        xf = _flat(kernels.act, x, kernels.rows)
        ctx.kernels = kernels
        ctx.shape = x.shape
        ctx.save_for_backward(xf, *p)
        return kernels.forward(xf, p).view(_out_shape(kernels.act, x))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        xf, *p = ctx.saved_tensors
        kernels: _Kernels = ctx.kernels
        rows = (-1, xf.shape[-1] // 2) if kernels.act.gated else (-1, *xf.shape[1:])
        g = grad_out.contiguous().view(rows).detach()
        need_p = any(ctx.needs_input_grad[2:])
        # p always: frozen learned parameters still give their values
        gx, *gp = kernels.backward(xf, g, p, params=need_p)
        if not need_p:
            gp = [None] * len(p)
        grad_x = gx.view(ctx.shape) if ctx.needs_input_grad[1] else None
        return (None, grad_x, *gp)


def _apply(
    act: Activation, learned: tuple[str, ...], x: Tensor, p: Sequence[Tensor],
    precise: bool = False,
) -> Tensor:
    if x.numel() == 0:
        return act._forward(x, {**act.params, **dict(zip(learned, p, strict=True))})
    kernels = _kernels(act, learned, x, precise)
    if kernels.autograd is not None:
        if act.gated:
            act._check_gated(x)
        return kernels.autograd(x)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in p))
    if needs_grad:
        return _FastFn.apply(kernels, x, *p)
    return kernels.forward(_flat(act, x, kernels.rows), p).view(_out_shape(act, x))


def fast_call(act: Activation, x: Any, precise: bool = False) -> Any:
    """f(x) through the compiled fast path, differentiable with respect to ``x``.

    Hyper-parameters are the activation's fixed values (use
    ``act.module(fast=True)`` to learn them). Tensors in, tensor out; NumPy in, NumPy out.
    ``precise=True`` never runs the less accurate native ops
    (:data:`~actlab.catalog.fast_forms.NATIVE_AUTOGRAD`: gelu, gelu_tanh, sigmoid, tanh)
    or forms (:data:`~actlab.catalog.fast_forms.APPROXIMATE_FORMS`: geglu's erf gate,
    ``exp(x) - 1`` for elu, selu, celu and xielu, bent_identity as written).

    Example:
        >>> x = torch.randn(4, 6, requires_grad=True)
        >>> fast_call(actlab.get("swiglu"), x).shape
        torch.Size([4, 3])
    """
    t, was_numpy = _as_tensor(x)
    y = _apply(act, (), t, (), precise)
    return y.numpy() if was_numpy else y


class FastActivationModule(ActivationModule):
    """``nn.Module`` running an :class:`Activation` through compiled fused kernels.

    Same interface, parameters and state dict as :class:`ActivationModule`; the forward
    and the backward are each one compiled element-wise kernel (or ATen's own, see
    :meth:`path`), and only the input is saved for backward (or, on the ``"native"``
    path, what PyTorch's op saves: sigmoid its output). ``precise=True`` never runs the
    less accurate native ops and forms (float32 GELU's and GEGLU's lower tail,
    sigmoid's upper one).

    Shape: ``(*, H)`` -> ``(*, H)``; gated activations: ``(*, 2H)`` -> ``(*, H)``.

    Example:
        >>> m = FastActivationModule(actlab.get("prelu"))
        >>> m(torch.randn(4, 8)).shape
        torch.Size([4, 8])
    """

    def _compute(self, x: Tensor) -> Tensor:
        learned = self._learned_tensors(x)
        dims = {d % x.dim() for d in self._channel_dims.values()}
        if len(dims) > 1:
            raise ValueError(
                f"the fast path of {self.act.name} needs its per-channel parameters on one "
                f"dimension, got dimensions {sorted(self._channel_dims.values())}"
            )
        if dims and dims != {x.dim() - 1}:  # channels last for the kernels, then back
            (d,) = dims
            y = _apply(self.act, self._learned, x.movedim(d, -1), learned, self.precise)
            return y.movedim(-1, d)
        return _apply(self.act, self._learned, x, learned, self.precise)

    def path(self, x: Tensor) -> str:
        """How inputs like ``x`` run: ``"compiled"``, ``"aten"`` (ATen's own single-pass
        kernels, for piecewise-linear built-ins), ``"native"`` (the native op and its
        autograd: gelu, gelu_tanh, sigmoid, tanh unless ``precise``), ``"aten+compiled"`` (ATen
        forward, compiled backward), ``"compiled+aten"`` (hardswish: compiled forward,
        ATen's backward), ``"kernel"`` (actlab's C kernel: pau, isru, isrlu,
        bent_identity on the CPU in float32) or
        ``"eager"`` (after a fall-back)."""
        return _kernels(self.act, self._learned, x, self.precise).path

    def compiled(self, x: Tensor) -> bool:
        """Whether inputs like ``x`` run through fused kernels (compiled or ATen's)."""
        return self.path(x) != "eager"

    def extra_repr(self) -> str:
        return super().extra_repr() + ", fast"


class LazyFastActivationModule(LazyModuleMixin, FastActivationModule):
    """A :class:`FastActivationModule` whose per-channel parameters take their channel
    count from the first input; it then becomes a :class:`FastActivationModule`."""

    cls_to_become = FastActivationModule
    # the mixin's initialize_parameters is a placeholder that raises
    initialize_parameters = FastActivationModule.initialize_parameters


__all__ = [
    "FastActivationModule",
    "FastStats",
    "LazyFastActivationModule",
    "clear_cache",
    "fast_call",
    "fast_stats",
]
