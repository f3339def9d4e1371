"""Datasets as tensors: offline by default, local files when a directory is named.

Offline: ``xor``, ``spirals``, ``digits`` (scikit-learn), ``mnist1d`` (generated), and the
``pydoc`` text for language models. From files under ``data_dir`` (optionally
downloaded with checksum verification): ``mnist``, ``fashion_mnist``, ``cifar10``; the real
Fashion-MNIST is also found where Debian's ``dataset-fashion-mnist`` package installs it
(``/usr/share/datasets/fashion-mnist``), with no ``data_dir``.

Example:
    >>> from actlab.experiments.data import load_dataset
    >>> load_dataset("digits").input_shape
    (1, 8, 8)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from actlab.catalog.runtime import cache_dir
from actlab.experiments.data.cifar import load_cifar10, read_batch
from actlab.experiments.data.core import (
    DataError,
    DataFileMissing,
    Dataset,
    TextData,
    standardize,
)
from actlab.experiments.data.download import RemoteFile, fetch, file_digest
from actlab.experiments.data.idx import (
    SYSTEM_DIRS,
    has_system_copy,
    load_mnist,
    locate_mnist,
    read_idx,
)
from actlab.experiments.data.offline import digits, mnist1d, pydoc_text
from actlab.experiments.data.synthetic import spirals, xor

OFFLINE = ("xor", "spirals", "digits", "mnist1d")
FROM_FILES = ("mnist", "fashion_mnist", "cifar10")
DATASETS = OFFLINE + FROM_FILES


def _data_dir(name: str, data_dir: str | None) -> Path | None:
    """The directory named for ``name``'s files; ``None`` when only a system copy can serve."""
    if data_dir:
        return Path(data_dir)
    if SYSTEM_DIRS.get(name):
        return None  # load_mnist searches the system directories (and says how to get them)
    raise DataFileMissing(
        f"dataset {name!r} is read from local files: name their directory with "
        "data_dir=... (CLI: --data-dir) or $ACTLAB_DATA_DIR"
    )


@functools.lru_cache(maxsize=4)
def _load(name: str, data_dir: str | None, download: bool, options: tuple) -> Dataset:
    kw = dict(options)
    if name == "xor":
        return xor(**kw)
    if name == "spirals":
        return spirals(**kw)
    if name == "digits":
        return digits(**kw)
    if name == "mnist1d":
        return mnist1d(**kw)
    path = _data_dir(name, data_dir)
    if name in ("mnist", "fashion_mnist"):
        return load_mnist(path, name, download=download, **kw)
    return load_cifar10(path, download=download, **kw)


def _key(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")
    return key


def check_dataset(name: str, data_dir: str | os.PathLike | None = None) -> None:
    """Raise the loader's error now if ``name``'s files cannot be found (reads no data).

    Offline datasets always pass; ``mnist`` / ``fashion_mnist`` are looked up as
    :func:`load_dataset` would (``data_dir``, ``$ACTLAB_DATA_DIR``, then the system copy).

    Raises:
        ValueError: unknown name. DataFileMissing: the files are not there (the message
            says how to get them).
    """
    key = _key(name)
    if key in OFFLINE:
        return
    chosen = data_dir if data_dir is not None else os.environ.get("ACTLAB_DATA_DIR") or None
    path = _data_dir(key, None if chosen is None else os.fspath(chosen))
    if key in ("mnist", "fashion_mnist"):
        locate_mnist(path, key)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    device: Any = None,
    **options: Any,
) -> Dataset:
    """Load a classification dataset by name (kept in a small per-process cache).

    Args:
        name: one of :data:`DATASETS`.
        data_dir: directory of local files (``mnist``, ``fashion_mnist``, ``cifar10``);
            default ``$ACTLAB_DATA_DIR``. Both are searched before the system copy of
            Fashion-MNIST (Debian's ``dataset-fashion-mnist``), which needs neither.
        download: fetch missing files (checksum-verified); needs a network.
        device: move the tensors there (default: stay on the CPU).
        **options: loader options, e.g. ``split_seed=1`` for digits.

    Raises:
        ValueError: unknown name. DataError / DataFileMissing: missing or corrupt files.
    """
    key = _key(name)
    chosen = data_dir if data_dir is not None else os.environ.get("ACTLAB_DATA_DIR") or None
    ds = _load(
        key,
        os.fspath(chosen) if chosen is not None else None,
        bool(download),
        tuple(sorted(options.items())),
    )
    return ds.to(device) if device is not None else ds


__all__ = [
    "DATASETS",
    "FROM_FILES",
    "OFFLINE",
    "DataError",
    "DataFileMissing",
    "Dataset",
    "RemoteFile",
    "TextData",
    "cache_dir",
    "check_dataset",
    "digits",
    "fetch",
    "file_digest",
    "has_system_copy",
    "load_cifar10",
    "load_dataset",
    "load_mnist",
    "locate_mnist",
    "mnist1d",
    "pydoc_text",
    "read_batch",
    "read_idx",
    "spirals",
    "standardize",
    "xor",
]
