"""MNIST and Fashion-MNIST from local IDX files (gzipped or not), optionally downloaded."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from actlab.experiments.data.core import (
    DataError,
    DataFileMissing,
    Dataset,
    from_numpy,
    standardize,
)
from actlab.experiments.data.download import RemoteFile, fetch

# IDX type codes -> NumPy dtypes (big-endian)
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# sub-directories of data_dir searched before data_dir itself (torchvision's layout included)
SUBDIRS = {
    "mnist": ("mnist", "MNIST/raw", "MNIST"),
    "fashion_mnist": ("fashion_mnist", "fashion-mnist", "FashionMNIST/raw", "FashionMNIST"),
}

#: Where a system package installs the files: searched after ``data_dir``. Debian's
#: ``dataset-fashion-mnist`` puts the real Fashion-MNIST (the four IDX files, gzipped) here.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (),
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

#: How to get the files, for the error message of a missing dataset.
HOW_TO_GET = {
    "mnist": "download the four IDX files from https://ossci-datasets.s3.amazonaws.com/mnist/, "
    "a mirror of http://yann.lecun.com/exdb/mnist/,",
    "fashion_mnist": "install the Debian package dataset-fashion-mnist (apt-get install "
    "dataset-fashion-mnist puts the files in /usr/share/datasets/fashion-mnist) or download "
    "the four IDX files from https://github.com/zalandoresearch/fashion-mnist",
}

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SOURCES: dict[str, dict[str, RemoteFile]] = {
    "mnist": {
        "train_images": RemoteFile("train-images-idx3-ubyte.gz",
                                   (_MNIST_URL + "train-images-idx3-ubyte.gz",),
                                   md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train_labels": RemoteFile("train-labels-idx1-ubyte.gz",
                                   (_MNIST_URL + "train-labels-idx1-ubyte.gz",),
                                   md5="d53e105ee54ea40749a09fcbcd1e9432"),
        "test_images": RemoteFile("t10k-images-idx3-ubyte.gz",
                                  (_MNIST_URL + "t10k-images-idx3-ubyte.gz",),
                                  md5="9fb629c4189551a2d022fa330f9573f3"),
        "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz",
                                  (_MNIST_URL + "t10k-labels-idx1-ubyte.gz",),
                                  md5="ec29112dd5afa0611ce80d1b7f02629c"),
    },
    "fashion_mnist": {
        "train_images": RemoteFile("train-images-idx3-ubyte.gz",
                                   (_FASHION_URL + "train-images-idx3-ubyte.gz",),
                                   md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train_labels": RemoteFile("train-labels-idx1-ubyte.gz",
                                   (_FASHION_URL + "train-labels-idx1-ubyte.gz",),
                                   md5="25c81989df183df01b3e8a0aad5dffbe"),
        "test_images": RemoteFile("t10k-images-idx3-ubyte.gz",
                                  (_FASHION_URL + "t10k-images-idx3-ubyte.gz",),
                                  md5="bef4ecab320f06d8554ea6380940ec79"),
        "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz",
                                  (_FASHION_URL + "t10k-labels-idx1-ubyte.gz",),
                                  md5="bb300cfdad3c16e7a12a480ee83cd310"),
    },
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into a NumPy array, validating its header.

    Layout: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions, then
    each dimension as a big-endian uint32, then the values.

    Raises:
        DataFileMissing: the file does not exist.
        DataError: bad magic number, unknown type, truncated or oversized payload, bad gzip.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileMissing(f"IDX file {path} does not exist")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not a readable gzip file ({e}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        magic = raw[:4].hex() if raw else "empty"
        raise DataError(
            f"{path} is not an IDX file: its magic number is {magic}, expected 0000 followed by "
            "a type code (08 for uint8) and the number of dimensions"
        )
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path} has a truncated IDX header ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path} holds {len(raw)} bytes but its header {dims} needs {expected}; the file "
            "is truncated or corrupt"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _candidates(data_dir: Path | None, variant: str) -> list[Path]:
    named = [] if data_dir is None else [data_dir / sub for sub in SUBDIRS[variant]] + [data_dir]
    return named + list(SYSTEM_DIRS.get(variant, ()))


def has_system_copy(variant: str) -> bool:
    """Whether a system package installed ``variant``'s files (e.g. Debian's Fashion-MNIST)."""
    stem = IDX_FILES["train_images"]
    return any(_find(d, stem) for d in SYSTEM_DIRS.get(variant, ()))


def locate_mnist(
    data_dir: str | Path | None,
    variant: str = "mnist",
    download: bool = False,
    sources: dict[str, RemoteFile] | None = None,
) -> Path:
    """The directory holding ``variant``'s IDX files (see :func:`load_mnist` for the search).

    Raises:
        DataFileMissing: not found; the message lists where it looked and how to get it.
    """
    if variant not in SUBDIRS:
        raise ValueError(f"unknown IDX dataset {variant!r}; accepted: {', '.join(SUBDIRS)}")
    data_dir = None if data_dir is None else Path(data_dir).expanduser()
    stem = IDX_FILES["train_images"]
    found = next((d for d in _candidates(data_dir, variant) if _find(d, stem)), None)
    if found is None and download and data_dir is not None:
        found = data_dir / SUBDIRS[variant][0]
        for key, remote in (sources or SOURCES[variant]).items():
            if _find(found, IDX_FILES[key]) is None:
                fetch(remote, found)
    if found is None:
        where = ", ".join(str(d) for d in _candidates(data_dir, variant))
        into = f"{data_dir / variant}" if data_dir is not None else f"DIR/{variant}"
        pass_dir = "" if data_dir is not None else " and pass data_dir=DIR (CLI: --data-dir DIR)"
        raise DataFileMissing(
            f"{variant} file {stem}[.gz] was not found in {where}; to get it, "
            f"{HOW_TO_GET[variant]} ({', '.join(IDX_FILES.values())}, gzipped or not) into "
            f"{into}{pass_dir}, or download them with a data directory (needs a network): "
            "`actlab study --download`, or download=True in Python"
        )
    return found


def load_mnist(
    data_dir: str | Path | None,
    variant: str = "mnist",
    download: bool = False,
    sources: dict[str, RemoteFile] | None = None,
) -> Dataset:
    """MNIST or Fashion-MNIST from the four standard IDX files.

    Looked up in ``data_dir/<variant>`` (``mnist``, ``fashion_mnist``; also torchvision's
    ``MNIST/raw``, ``FashionMNIST/raw``), in ``data_dir`` itself, then in the directories
    of :data:`SYSTEM_DIRS` (Debian's ``dataset-fashion-mnist`` installs the real
    Fashion-MNIST in ``/usr/share/datasets/fashion-mnist``), each file with or without
    ``.gz``; ``data_dir=None`` searches only the system directories. Images are scaled to
    [0, 1] and standardised with the training split's mean and std; ``x``:
    ``(N, 1, 28, 28)``.

    Args:
        download: fetch missing files (with MD5 verification) into ``data_dir/<variant>``.
        sources: override the download locations (tests, mirrors).

    Raises:
        DataFileMissing / DataError: a file is missing or corrupt (the message names it
            and says how to get the dataset).
    """
    found = locate_mnist(data_dir, variant, download=download, sources=sources)
    arrays = {}
    for key, name in IDX_FILES.items():
        path = _find(found, name)
        if path is None:
            raise DataFileMissing(f"{variant} file {name}[.gz] is missing from {found}")
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        name = IDX_FILES[f"{split}_images"]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(
                f"{found / name} holds {images.dtype} data of shape {images.shape}; "
                "expected uint8 images of shape (N, 28, 28)"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
            raise DataError(
                f"{found / IDX_FILES[f'{split}_labels']} holds {labels.shape} {labels.dtype} "
                f"labels; expected {len(images)} uint8 labels, one per image"
            )
        if labels.size and labels.max() > 9:
            raise DataError(
                f"{found / IDX_FILES[f'{split}_labels']} has label {labels.max()}; expected 0-9"
            )
    x_train = arrays["train_images"][:, None].astype(np.float32) / 255.0
    x_test = arrays["test_images"][:, None].astype(np.float32) / 255.0
    x_train, x_test, stats = standardize(x_train, x_test)
    info = {"source": os.fspath(found), "normalisation": stats}
    return from_numpy(
        variant, x_train, arrays["train_labels"], x_test, arrays["test_labels"], 10, info
    )
