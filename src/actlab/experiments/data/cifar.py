"""CIFAR-10 from its python pickle batches (``cifar-10-batches-py``), optionally downloaded."""

from __future__ import annotations

import importlib
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from actlab.experiments.data.core import (
    DataError,
    DataFileMissing,
    Dataset,
    from_numpy,
    standardize,
)
from actlab.experiments.data.download import RemoteFile, fetch

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
SOURCE = RemoteFile(
    "cifar-10-python.tar.gz",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    md5="c58f30108f718f92721af3b95e74349a",
)

# only what a pickled dict of NumPy arrays needs: never arbitrary callables
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, numbers, bytes and NumPy arrays; refuses anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
            try:
                return getattr(importlib.import_module(module), name)
            except ImportError:  # NumPy 1.x
                module = module.replace("numpy._core", "numpy.core", 1)
        return getattr(importlib.import_module(module), name)


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file -> ``(images (N, 3, 32, 32) uint8, labels (N,) int64)``.

    Raises:
        DataFileMissing: the file does not exist.
        DataError: not a CIFAR pickle, or its arrays have the wrong size or labels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileMissing(f"CIFAR-10 batch {path} does not exist")
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, encoding="bytes").load()
    except Exception as e:  # pickle raises many types on garbage input
        raise DataError(
            f"{path} is not a CIFAR-10 pickle batch ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} holds a {type(batch).__name__}; expected a CIFAR-10 batch dict")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{path} has keys {sorted(batch)}; a CIFAR-10 batch has data and labels")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path} holds data of shape {data.shape} ({data.dtype}); expected uint8 (N, 3072)"
        )
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path} has {labels.shape} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path} has labels outside 0-9 (min {labels.min()}, max {labels.max()})")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _extract(archive: Path, into: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(
            f"could not extract {archive} ({e}); delete it and download again"
        ) from None


def load_cifar10(
    data_dir: str | Path, download: bool = False, source: RemoteFile | None = None
) -> Dataset:
    """CIFAR-10 from ``data_dir/cifar-10-batches-py`` (or ``data_dir`` holding the batches).

    Images are scaled to [0, 1] and standardised per channel with the training split's
    statistics; ``x``: ``(N, 3, 32, 32)``.

    Args:
        download: fetch and extract ``cifar-10-python.tar.gz`` (MD5-verified) when missing.
        source: override the download location (tests, mirrors).
    """
    data_dir = Path(data_dir).expanduser()
    candidates = [data_dir / FOLDER, data_dir]
    found = next((d for d in candidates if (d / TRAIN_FILES[0]).is_file()), None)
    if found is None and download:
        archive = fetch(source or SOURCE, data_dir)
        _extract(archive, data_dir)
        found = next((d for d in candidates if (d / TRAIN_FILES[0]).is_file()), None)
    if found is None:
        raise DataFileMissing(
            f"CIFAR-10 batch {TRAIN_FILES[0]} was not found in "
            f"{', '.join(os.fspath(c) for c in candidates)}; extract cifar-10-python.tar.gz "
            f"(from {SOURCE.urls[0]}) into {data_dir}, or download it (needs a network): "
            "`actlab study --download`, or download=True in Python"
        )
    missing = [n for n in (*TRAIN_FILES, TEST_FILE) if not (found / n).is_file()]
    if missing:
        raise DataFileMissing(f"CIFAR-10 batch {missing[0]} is missing from {found}")
    parts = [read_batch(found / n) for n in TRAIN_FILES]
    x_train = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    y_train = np.concatenate([p[1] for p in parts])
    x_test_u8, y_test = read_batch(found / TEST_FILE)
    x_train, x_test, stats = standardize(
        x_train, x_test_u8.astype(np.float32) / 255.0, axes=(0, 2, 3)
    )
    info = {"source": os.fspath(found), "normalisation": stats}
    return from_numpy("cifar10", x_train, y_train, x_test, y_test, 10, info)
