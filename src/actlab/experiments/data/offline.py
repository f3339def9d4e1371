"""Real datasets that need no network: scikit-learn digits, MNIST-1D, Python's pydoc text."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile

import numpy as np
import torch

from actlab.catalog.runtime import cache_dir
from actlab.experiments.data.core import Dataset, TextData, from_numpy, standardize


def digits(split_seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """scikit-learn's bundled digits: 1797 real 8x8 grey images of 0-9.

    A stratified split (``test_fraction`` of the images, chosen by ``split_seed``; fixed
    across run seeds so every run is scored on the same test images); pixels (0-16) are
    standardised with the training split's mean and std. ``x``: ``(N, 1, 8, 8)``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    bunch = load_digits()
    x = bunch.data.reshape(-1, 1, 8, 8).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=split_seed
    )
    x_train, x_test, stats = standardize(x_train, x_test)
    info = {
        "source": "sklearn.datasets.load_digits",
        "split_seed": split_seed,
        "test_fraction": test_fraction,
        "normalisation": stats,
    }
    return from_numpy("digits", x_train, y_train, x_test, y_test, 10, info)


def _mnist1d_args(**overrides: object):
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    unknown = set(overrides) - set(args)
    if unknown:
        raise ValueError(
            f"unknown MNIST-1D argument(s) {sorted(unknown)}; accepted: {sorted(args)}"
        )
    args.update(overrides)
    args.pop("url", None)  # never used: we generate, we do not download
    return args


def mnist1d(cache: bool = True, **overrides: object) -> Dataset:
    """MNIST-1D (Greydanus & Kobak, 2024) generated offline with ``mnist1d.make_dataset``.

    The default arguments give the paper's 4000/1000 split of length-40 signals
    (``x``: ``(N, 40)``, already centred and scaled by the generator). ``overrides`` change
    ``get_dataset_args()`` fields (e.g. ``num_samples=10000``). Generated arrays are
    cached as ``.npz`` under :func:`cache_dir` so repeated runs load in milliseconds.
    """
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    args = _mnist1d_args(**overrides)
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / f"mnist1d-{digest}.npz"
    arrays = None
    if cache and path.exists():
        try:
            with np.load(path) as f:
                arrays = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
        except (OSError, ValueError, KeyError):
            arrays = None  # a damaged cache file is regenerated below
    if arrays is None:
        # make_dataset reseeds the global NumPy and `random` generators: keep ours intact
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            raw = make_dataset(ObjectView(dict(args)))
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        arrays = {k: np.asarray(raw[k]) for k in ("x", "y", "x_test", "y_test")}
        if cache:
            _atomic_savez(path, arrays)
    info = {"source": "mnist1d.make_dataset", "args": args, "cache": str(path) if cache else None}
    return from_numpy(
        "mnist1d", arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"], 10, info
    )


def _atomic_savez(path, arrays: dict) -> None:
    """Write ``.npz`` via a temporary file and a rename (safe with parallel workers)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs regeneration time


def pydoc_text(val_fraction: float = 0.1) -> TextData:
    """The English text of Python's own ``pydoc_data.topics`` (about 465k characters).

    Topics are joined in sorted order; the last ``val_fraction`` of the characters is the
    validation split. Character-level vocabulary (about 100 symbols).
    """
    import pydoc_data.topics

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    topics = pydoc_data.topics.topics
    text = "\n\n".join(topics[k] for k in sorted(topics))
    vocab = tuple(sorted(set(text)))
    lookup = np.zeros(max(map(ord, vocab)) + 1, dtype=np.int64)
    lookup[[ord(c) for c in vocab]] = np.arange(len(vocab))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    ids = torch.from_numpy(lookup[codes])
    split = int(len(ids) * (1 - val_fraction))
    return TextData("pydoc", ids[:split].clone(), ids[split:].clone(), vocab)
