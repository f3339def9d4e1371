"""Where computations run: the device, and whether the memory a computation needs is there.

Every stage chooses its device with :func:`resolve_device` (an explicit name, else
``$ACTLAB_DEVICE``, else CUDA when available, else the CPU) and checks large allocations
with :func:`require_memory` before making them, so that a request that cannot fit is one
clear sentence with the figures instead of an allocation failure (or the out-of-memory
killer) minutes later.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> require_memory(2**60, "cpu", "a 2**60-element tensor")   # doctest: +SKIP
    ValueError: a 2**60-element tensor needs about 1 EiB; the cpu has 21.3 GiB available
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

DEVICE_ENV = "ACTLAB_DEVICE"
CACHE_ENV = "ACTLAB_CACHE"
_KINDS = ("cpu", "cuda", "mps", "xpu")
#: the share of the available memory a single computation may plan to use
MEMORY_FRACTION = 0.8


def _available(kind: str) -> bool:
    if kind == "cpu":
        return True
    backend = getattr(torch, kind, None) if kind != "mps" else getattr(torch.backends, "mps", None)
    is_available = getattr(backend, "is_available", None)
    return bool(is_available and is_available())


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """The device to compute on, checked.

    Args:
        name: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, a ``torch.device``, or ``None``
            for ``$ACTLAB_DEVICE`` if set, else CUDA when available, else the CPU.

    Raises:
        ValueError: the name is not a device, or that device is not available here (one
            sentence saying what is).
    """
    source = "device"
    if name is None:
        env = os.environ.get(DEVICE_ENV, "").strip()
        if not env:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        name, source = env, f"${DEVICE_ENV}"
    if isinstance(name, torch.device):
        device = name
    else:
        try:
            device = torch.device(str(name).strip())
        except (RuntimeError, ValueError):
            raise ValueError(
                f"{source} {name!r} is not a device; use cpu, cuda, cuda:N or mps"
            ) from None
    if device.type not in _KINDS:
        raise ValueError(f"{source} {name!r} is not supported; use cpu, cuda, cuda:N or mps")
    if not _available(device.type):
        here = ", ".join(k for k in _KINDS if _available(k))
        raise ValueError(
            f"{source} {str(name)!r} is not available on this machine (torch "
            f"{torch.__version__} sees no {device.type.upper()} device); available: {here}"
        )
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise ValueError(
                f"{source} {str(name)!r}: this machine has {count} CUDA device(s), "
                f"cuda:0..cuda:{count - 1}"
            )
    return device


def available_memory(device: str | torch.device = "cpu") -> int | None:
    """Bytes that a new allocation on ``device`` can use now, or ``None`` if unknown.

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (Linux), else the physical memory; CUDA: the
    free memory reported by the driver.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"`` (binary units up to EiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"


def require_memory(
    nbytes: float, device: str | torch.device, what: str, hint: str = ""
) -> None:
    """Refuse, before allocating, a computation that needs more than
    :data:`MEMORY_FRACTION` of the memory available on ``device``.

    Args:
        nbytes: the estimated bytes the computation holds at its peak.
        device: where it runs.
        what: what needs it, for the message (e.g. ``"gradient flow at depth 100000"``).
        hint: what the user can change, appended to the message.

    Raises:
        ValueError: one sentence with the estimate and what is available.
    """
    have = available_memory(device)
    if have is None or nbytes <= MEMORY_FRACTION * have:
        return
    tail = f"; {hint}" if hint else ""
    raise ValueError(
        f"{what} needs about {format_bytes(nbytes)}, more than the "
        f"{format_bytes(have)} available on {torch.device(device)}{tail}"
    )


def cache_dir() -> Path:
    """Where actlab caches what it generates (data, built kernels): ``$ACTLAB_CACHE``, else
    ``~/.cache/actlab``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "actlab"
