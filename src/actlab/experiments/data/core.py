"""The in-memory dataset types and the error type of every loader."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor


class DataError(ValueError):
    """A dataset file is missing, corrupt, or fails its checksum (one-sentence message)."""


class DataFileMissing(DataError, FileNotFoundError):
    """An expected dataset file does not exist."""


@dataclass(frozen=True)
class Dataset:
    """A classification dataset held as tensors (move it once with :meth:`to`).

    Attributes:
        name: dataset name (``"digits"``, ``"mnist1d"``, ...).
        x_train, y_train: inputs ``(N, *input_shape)`` float32 and labels ``(N,)`` int64.
        x_test, y_test: the held-out split, same layout.
        num_classes: number of classes; labels are ``0 .. num_classes - 1``.
        info: JSON-able notes (source, normalisation, split).

    Example:
        >>> ds = load_dataset("digits")
        >>> ds.input_shape, ds.num_classes
        ((1, 8, 8), 10)
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    info: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(1, 28, 28)`` for images, ``(40,)`` for MNIST-1D."""
        return tuple(self.x_train.shape[1:])

    @property
    def in_features(self) -> int:
        """Number of input values per example (what an MLP's first layer takes)."""
        return int(np.prod(self.input_shape))

    def to(self, device: torch.device | str) -> Dataset:
        """The same dataset with every tensor on ``device``."""
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )

    def subset(self, train: int | None = None, test: int | None = None, seed: int = 0) -> Dataset:
        """A fixed random subset of each split (``None``, or a size >= the split: all of it).

        The images are drawn without replacement by a generator seeded with ``seed`` and
        kept in their original order, so every run that asks for the same sizes sees the
        same images, whatever its own seed (paired comparisons stay paired). The
        normalisation is the full training split's.

        Example:
            >>> load_dataset("digits").subset(train=100).y_train.shape
            torch.Size([100])
        """
        out = self
        for split, size in (("train", train), ("test", test)):
            if size is None:
                continue
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"{split} subset size must be an integer >= 1, got {size!r}")
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if size >= len(y):
                continue
            gen = torch.Generator().manual_seed(int(seed))
            idx = torch.randperm(len(y), generator=gen)[:size].sort().values.to(y.device)
            out = replace(out, **{f"x_{split}": x[idx], f"y_{split}": y[idx]})
        if out is not self:
            out = replace(out, info={**self.info, "subset": {"train": train, "test": test,
                                                             "seed": int(seed)}})
        return out

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, classes={self.num_classes})"
        )


@dataclass(frozen=True)
class TextData:
    """A character-level corpus: token ids for training and validation, and the vocabulary.

    Attributes:
        name: corpus name.
        train, val: 1-D int64 tensors of character ids.
        vocab: the characters; id ``i`` is ``vocab[i]``.
    """

    name: str
    train: Tensor
    val: Tensor
    vocab: tuple[str, ...]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> Tensor:
        """Character ids of ``text`` (every character must be in the vocabulary)."""
        index = {c: i for i, c in enumerate(self.vocab)}
        missing = sorted({c for c in text if c not in index})
        if missing:
            raise ValueError(f"characters {missing!r} are not in the vocabulary of {self.name}")
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, ids: Tensor) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def to(self, device: torch.device | str) -> TextData:
        return replace(self, train=self.train.to(device), val=self.val.to(device))


def standardize(
    x_train: np.ndarray, x_test: np.ndarray, axes: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Scale both splits with the training split's mean and std (per channel if ``axes``).

    ``axes`` are the axes averaged over (default: all), e.g. ``(0, 2, 3)`` for
    per-channel statistics of ``(N, C, H, W)`` images.
    """
    mean = x_train.mean(axis=axes, keepdims=axes is not None, dtype=np.float64)
    std = x_train.std(axis=axes, keepdims=axes is not None, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    out_train = ((x_train - mean) / std).astype(np.float32)
    out_test = ((x_test - mean) / std).astype(np.float32)
    stats = {"mean": np.ravel(mean).tolist(), "std": np.ravel(std).tolist()}
    return out_train, out_test, stats


def from_numpy(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    info: dict | None = None,
) -> Dataset:
    """Build a :class:`Dataset` from NumPy arrays (float32 inputs, int64 labels)."""
    return Dataset(
        name=name,
        x_train=torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32)),
        y_train=torch.from_numpy(np.ascontiguousarray(y_train, dtype=np.int64)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test, dtype=np.float32)),
        y_test=torch.from_numpy(np.ascontiguousarray(y_test, dtype=np.int64)),
        num_classes=int(num_classes),
        info=dict(info or {}),
    )
