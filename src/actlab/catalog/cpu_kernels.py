"""actlab's own C kernels for the CPU, where inductor's generated code cannot reach the floor.

pau, isru, isrlu and bent_identity have one (``csrc/kernels.c``). Their exact float32 forms
need a guard: against the overflow of x^5 beyond |x| = 5e7 (pau) or of x^2 beyond 1.8e19,
and for the limits at +-inf. Inside inductor's loop a guard costs selects on every element
(pau's forward+backward 1.17x the compiled hand formula, which has no guard and returns inf
or NaN there; isru, isrlu, bent_identity 1.03-1.09x forward); the C kernels test a block of
256 elements at once and evaluate again, in double, only the elements of a block that holds
one beyond the direct form's range (see the source's header). Forward and backward are each
one pass, threaded over ``torch.get_num_threads()``; pau's backward also reduces its ten
coefficient gradients. bent_identity's kernel is its default (approximate) fast form, so
``precise=True`` compiles the precise one instead (:mod:`actlab.catalog.fast`).

The source is compiled on first use with the system's C compiler (``$CC``, else ``cc`` or
``gcc``; ``-O3``, one binary with AVX-512, AVX2 and generic x86-64 clones chosen when
loaded, about a second) into ``$ACTLAB_CACHE/kernels`` (default ``~/.cache/actlab/kernels``),
keyed by a hash of the source, the flags, the compiler and the platform, and loaded with
:mod:`ctypes`. Where there is no compiler or the build fails, :func:`cpu_kernel` returns
``None`` and the fast path compiles the torch forms as for every other activation (the
reason is logged at debug level and kept in :func:`build_error`).

Example:
    >>> k = cpu_kernel("isru")
    >>> k is None or k.forward(torch.tensor([0.0, 1e30]), [1.0]).tolist() == [0.0, 1.0]
    True
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor

from actlab.catalog.builtins import PAU_A, PAU_B
from actlab.catalog.runtime import cache_dir

log = logging.getLogger(__name__)

_FLAGS = ("-O3", "-fno-math-errno", "-fopenmp-simd", "-shared", "-fPIC")
_LIBS = ("-lpthread", "-lm")
_LOCK = threading.Lock()
_LOADED: dict[str, ctypes.CDLL | None] = {}
_ERRORS: dict[str, str] = {}
_PTR = ctypes.c_void_p


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _build(name: str = "kernels") -> ctypes.CDLL:
    """Compile ``csrc/<name>.c`` into the cache (once per source, flags and platform)."""
    source = resources.files("actlab.catalog").joinpath("csrc", f"{name}.c").read_bytes()
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (set $CC, or install cc or gcc)")
    key = hashlib.sha256(
        b"\0".join([source, " ".join((*_FLAGS, *_LIBS)).encode(), cc.encode(),
                    platform.platform().encode()])
    ).hexdigest()[:16]
    target = cache_dir() / "kernels" / f"{name}-{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            src, out = Path(tmp) / f"{name}.c", Path(tmp) / f"{name}.so"
            src.write_bytes(source)
            done = subprocess.run([cc, *_FLAGS, "-o", str(out), str(src), *_LIBS],
                                  capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise RuntimeError(f"{cc} failed: {done.stderr.strip()[-500:]}")
            os.replace(out, target)  # atomic: concurrent processes build the same bytes
    return ctypes.CDLL(str(target))


class CpuKernel:
    """One activation's forward and backward on contiguous float32 CPU tensors.

    ``p`` is the activation's parameters in the order of :attr:`names` (pau: the ten
    coefficients ``a0..a5, b1..b4``; isru, isrlu: ``alpha``; bent_identity: none), floats or
    0-d tensors; :attr:`learnable` are those whose gradients the backward can sum.
    """

    def __init__(self, lib: ctypes.CDLL, name: str, names: tuple[str, ...],
                 learnable: bool = False) -> None:
        self.name, self.names = name, names
        self.learnable = names if learnable else ()
        self._fwd = getattr(lib, f"actlab_{name}_forward")
        self._fwd.argtypes = [_PTR, _PTR, ctypes.c_int64, _PTR, ctypes.c_int]
        self._fwd.restype = None
        self._bwd = getattr(lib, f"actlab_{name}_backward")
        self._bwd.argtypes = [_PTR, _PTR, _PTR, ctypes.c_int64, _PTR, _PTR, ctypes.c_int]
        self._bwd.restype = None

    @staticmethod
    def _check(*ts: Tensor) -> None:
        for t in ts:
            if t.device.type != "cpu" or t.dtype != torch.float32 or not t.is_contiguous():
                raise ValueError("the C kernel takes contiguous float32 CPU tensors")
        if any(t.numel() != ts[0].numel() for t in ts):
            raise ValueError("the C kernel's tensors must have one number of elements")

    def _coefficients(self, p: Sequence[float | Tensor]) -> ctypes.Array:
        n = len(self.names)
        if len(p) != n:
            raise ValueError(f"{self.name} takes {n} parameters, got {len(p)}")
        return (ctypes.c_float * max(1, n))(*(float(v) for v in p))

    def forward(self, x: Tensor, p: Sequence[float | Tensor]) -> Tensor:
        """f(x), same shape."""
        self._check(x)
        y = torch.empty_like(x)
        self._fwd(x.data_ptr(), y.data_ptr(), x.numel(), self._coefficients(p),
                  torch.get_num_threads())
        return y

    def backward(
        self, x: Tensor, g: Tensor, p: Sequence[float | Tensor], params: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """``(g f'(x), gradients)``: the gradients of :attr:`learnable` as a float64 tensor
        (``None`` unless ``params`` and there are any)."""
        self._check(x, g)
        gx = torch.empty_like(x)
        want = params and bool(self.learnable)
        sums = torch.zeros(len(self.learnable), dtype=torch.float64) if want else None
        self._bwd(x.data_ptr(), g.data_ptr(), gx.data_ptr(), x.numel(), self._coefficients(p),
                  None if sums is None else sums.data_ptr(), torch.get_num_threads())
        return gx, sums


#: name -> (parameter names, whether they are learnable: the backward sums their gradients)
_KERNELS: dict[str, tuple[tuple[str, ...], bool]] = {
    "pau": (PAU_A + PAU_B, True),
    "isru": (("alpha",), False),
    "isrlu": (("alpha",), False),
    "bent_identity": ((), False),
}


def cpu_kernel(name: str) -> CpuKernel | None:
    """The C kernel of built-in activation ``name``, built on first use, or ``None`` (none
    for this activation, or it could not be built: :func:`build_error` says why)."""
    entry = _KERNELS.get(name)
    if entry is None:
        return None
    with _LOCK:
        if "lib" not in _LOADED:
            try:
                _LOADED["lib"] = _build()
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                _LOADED["lib"] = None
                _ERRORS["lib"] = f"{type(exc).__name__}: {exc}"
                log.debug("actlab's C kernels are not available: %s", _ERRORS["lib"])
        lib = _LOADED["lib"]
        return None if lib is None else CpuKernel(lib, name, *entry)


def build_error() -> str | None:
    """Why the C kernels could not be built (``None`` if they were, or were not tried)."""
    return _ERRORS.get("lib")


def has_cpu_kernel(name: str) -> bool:
    """Whether ``name`` has a C kernel (built or not)."""
    return name in _KERNELS


__all__ = ["CpuKernel", "build_error", "cpu_kernel", "has_cpu_kernel"]
