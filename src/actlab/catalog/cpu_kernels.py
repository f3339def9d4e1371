"""actlab's own C kernels for the CPU, where inductor's generated code cannot reach the floor.

One activation has one today: PAU (``csrc/pau.c``). Its exact float32 form needs a guard
against the overflow of x^5 beyond |x| = 5e7; inductor's loop can only pay for it with
selects on every element (1.15-1.2x the compiled hand formula, which has no guard), while
the C kernel tests a block of 256 elements at once and takes a slow, exact path only for
the blocks that need it (see the source's header). Forward and backward are each one pass,
threaded over ``torch.get_num_threads()``; the backward also reduces the ten parameter
gradients.

The source is compiled on first use with the system's C compiler (``$CC``, else ``cc`` or
``gcc``; ``-O3``, one binary with AVX-512, AVX2 and generic x86-64 clones chosen when
loaded) into ``$ACTLAB_CACHE/kernels`` (default ``~/.cache/actlab/kernels``), keyed by a
hash of the source, the flags and the platform, and loaded with :mod:`ctypes`. Where
there is no compiler or the build fails, :func:`cpu_kernel` returns ``None`` and the fast
path compiles the torch form as for every other activation (the reason is logged at
debug level and kept in :func:`build_error`).

Example:
    >>> k = cpu_kernel("pau")
    >>> k is None or k.forward(torch.randn(5), list(actlab.get("pau").params.values())).shape
    torch.Size([5])
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

_FLAGS = ("-O3", "-fopenmp-simd", "-shared", "-fPIC")
_LIBS = ("-lpthread", "-lm")
_LOCK = threading.Lock()
_LOADED: dict[str, CpuKernel | None] = {}
_ERRORS: dict[str, str] = {}
_PTR = ctypes.c_void_p


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _build(name: str) -> ctypes.CDLL:
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
    """PAU's forward and backward on contiguous float32 CPU tensors.

    ``p`` is the ten coefficients in the order of :attr:`names` (``a0..a5, b1..b4``),
    floats or 0-d tensors.
    """

    names: tuple[str, ...] = PAU_A + PAU_B
    n_params = len(names)

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._fwd = lib.actlab_pau_forward
        self._fwd.argtypes = [_PTR, _PTR, ctypes.c_int64, _PTR, ctypes.c_int]
        self._fwd.restype = None
        self._bwd = lib.actlab_pau_backward
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
        if len(p) != self.n_params:
            raise ValueError(f"expected {self.n_params} coefficients, got {len(p)}")
        return (ctypes.c_float * self.n_params)(*(float(v) for v in p))

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
        """``(g f'(x), gradients)``: the gradients of the ten coefficients as a float64
        tensor (``None`` unless ``params``)."""
        self._check(x, g)
        gx = torch.empty_like(x)
        sums = torch.zeros(self.n_params, dtype=torch.float64) if params else None
        self._bwd(x.data_ptr(), g.data_ptr(), gx.data_ptr(), x.numel(), self._coefficients(p),
                  None if sums is None else sums.data_ptr(), torch.get_num_threads())
        return gx, sums


_KERNELS = {"pau": CpuKernel}


def cpu_kernel(name: str) -> CpuKernel | None:
    """The C kernel of built-in activation ``name``, built on first use, or ``None`` (none
    for this activation, or it could not be built: :func:`build_error` says why)."""
    cls = _KERNELS.get(name)
    if cls is None:
        return None
    with _LOCK:
        if name not in _LOADED:
            try:
                _LOADED[name] = cls(_build(name))
            except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as exc:
                _LOADED[name] = None
                _ERRORS[name] = f"{type(exc).__name__}: {exc}"
                log.debug("actlab's C kernel for %s is not available: %s", name, _ERRORS[name])
        return _LOADED[name]


def build_error(name: str) -> str | None:
    """Why :func:`cpu_kernel` returned ``None`` for ``name`` (``None`` if it did not)."""
    return _ERRORS.get(name)


def has_cpu_kernel(name: str) -> bool:
    """Whether ``name`` has a C kernel (built or not)."""
    return name in _KERNELS


__all__ = ["CpuKernel", "build_error", "cpu_kernel", "has_cpu_kernel"]
