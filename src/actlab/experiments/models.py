"""The seed article's models, each taking its activation as a parameter.

``activation`` is anything :func:`actlab.get` accepts: a name (``"relu"``), an
:class:`~actlab.Activation`, or ``"formula:x * tanh(softplus(x))"``. Every layer gets its
own ``act.module()`` (the memory-efficient module that saves only its input).

Gated activations (GLU family: ``glu``, ``reglu``, ``geglu``, ``swiglu``, ``bilinear``)
halve the last dimension, so the layer before them produces twice the width:
``Linear(n_in, 2 * n_out)`` then the activation gives ``n_out`` features (an MLP or CNN
with a gated activation has about twice the first-matrix parameters of the plain one).
Convolutions gate over channels. The transformer FFN instead keeps the parameter count
equal (Shazeer, 2020): its gated hidden width is ``round(2/3 * d_ff)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actlab.catalog import Activation, get

ActivationLike = Any  # str | Activation | ActivationSpec | callable


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def resolve(activation: ActivationLike) -> Activation:
    """The :class:`Activation` for a name, object or ``formula:`` string."""
    return get(activation)


def gate_factor(activation: ActivationLike) -> int:
    """2 for gated (GLU-family) activations, else 1: the width multiplier before them."""
    return 2 if resolve(activation).gated else 1


class ChannelActivation(nn.Module):
    """Applies an activation over dimension 1 (channels) of ``(N, C, *)`` feature maps.

    Element-wise activations act directly; gated ones split the channels into two halves:
    ``(N, 2C, *)`` -> ``(N, C, *)``, computed on a ``(N * positions, 2C)`` view so that the
    activation module sees units on dimension 1 (what a dead-unit monitor reads). So are
    activations with learned per-channel parameters (DyT's gamma and beta, which live on
    the last dimension): one value per feature-map channel.
    """

    def __init__(self, activation: ActivationLike) -> None:
        super().__init__()
        act = resolve(activation)
        self.gated = act.gated
        self.rows = act.gated or any(n in act.spec.per_channel for n in act.learn)
        self.act = act.module()

    def forward(self, x: Tensor) -> Tensor:
        if not self.rows:
            return self.act(x)
        rows = x.movedim(1, -1)
        out = self.act(rows.reshape(-1, rows.shape[-1]))
        return out.reshape(*rows.shape[:-1], out.shape[-1]).movedim(-1, 1)


class MLP(nn.Module):
    """Fully connected classifier: ``in -> hidden[0] -> ... -> hidden[-1] -> classes``.

    The article's network is ``MLP(784, (256, 128), 10)``. Each hidden layer is
    ``Linear`` then the activation; inputs of any shape are flattened. With
    ``residual=True`` a hidden layer whose width equals the previous one adds its input
    (``h + f(W h + b)``, the MNIST-1D paper's MLP).

    Shape: ``(N, *)`` -> ``(N, num_classes)``.

    Example:
        >>> m = MLP(64, (256, 128), 10, activation="swiglu")
        >>> m(torch.randn(5, 1, 8, 8)).shape
        torch.Size([5, 10])
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (256, 128),
        num_classes: int = 10,
        activation: ActivationLike = "relu",
        residual: bool = False,
    ) -> None:
        super().__init__()
        k = gate_factor(activation)
        widths = [int(in_features), *map(int, hidden)]
        if any(w < 1 for w in widths) or num_classes < 1:
            raise ValueError(
                f"layer sizes must be positive, got {widths} and {num_classes} classes"
            )
        pairs = list(itertools.pairwise(widths))
        self.linears = nn.ModuleList(nn.Linear(a, k * b) for a, b in pairs)
        self.acts = nn.ModuleList(resolve(activation).module() for _ in pairs)
        self.skips = [residual and a == b for a, b in pairs]
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for lin, act, skip in zip(self.linears, self.acts, self.skips, strict=True):
            out = act(lin(h))
            h = h + out if skip else out
        return self.head(h)


class DeepMLP(MLP):
    """``depth`` hidden layers of equal ``width`` (the Mish paper's depth experiment).

    ``init``: ``"default"`` (PyTorch's), ``"kaiming"`` (He normal, fan-in, for ReLU) or
    ``"xavier"`` (Glorot normal); biases start at zero for the latter two.

    Shape: ``(N, *)`` -> ``(N, num_classes)``.
    """

    def __init__(
        self,
        in_features: int,
        width: int = 64,
        depth: int = 10,
        num_classes: int = 10,
        activation: ActivationLike = "relu",
        init: str = "default",
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1 hidden layer, got {depth}")
        super().__init__(in_features, [width] * depth, num_classes, activation)
        if init not in ("default", "kaiming", "xavier"):
            raise ValueError(f"unknown init {init!r}; accepted: default, kaiming, xavier")
        if init != "default":
            for lin in [*self.linears, self.head]:
                if init == "kaiming":
                    nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
                else:
                    nn.init.xavier_normal_(lin.weight)
                nn.init.zeros_(lin.bias)


def _conv_pool(dim: int):
    return (nn.Conv1d, nn.MaxPool1d) if dim == 1 else (nn.Conv2d, nn.MaxPool2d)


class CNN(nn.Module):
    """The article's CNN: conv 32 -> act -> max-pool, conv 64 -> act -> max-pool, fc 128, fc.

    Works for images ``(C, H, W)`` (2-D convolutions) and signals ``(C, L)`` or ``(L,)``
    (1-D convolutions, e.g. MNIST-1D). Convolutions are 3-wide with padding 1; each
    max-pool halves the size (skipped once a spatial size is 1).

    With ``channels_last=True`` (the default) 2-D feature maps are kept in NHWC memory
    layout, which oneDNN's CPU convolutions and max-pooling run faster (about 1.2x per
    training step here); the values are those of the NCHW model up to float rounding, and
    the flattening before ``fc`` keeps PyTorch's (C, H, W) order.

    Shape: ``(N, *input_shape)`` -> ``(N, num_classes)``.

    Example:
        >>> CNN((1, 8, 8), 10, "gelu")(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int = 10,
        activation: ActivationLike = "relu",
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        kernel_size: int = 3,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if len(shape) == 1:
            shape = (1, *shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(
                f"CNN input shape must be (C, H, W), (C, L) or (L,), got {tuple(input_shape)}"
            )
        self.input_shape = shape
        dim = len(shape) - 1
        conv, pool = _conv_pool(dim)
        k = gate_factor(activation)
        layers: list[nn.Module] = []
        c, size = shape[0], list(shape[1:])
        for out in channels:
            layers += [conv(c, k * out, kernel_size, padding=kernel_size // 2),
                       ChannelActivation(activation)]
            size = [s + 2 * (kernel_size // 2) - kernel_size + 1 for s in size]
            if min(size) >= 2:
                layers.append(pool(2))
                size = [s // 2 for s in size]
            c = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c * math.prod(size), k * hidden)
        self.fc_act = resolve(activation).module()
        self.head = nn.Linear(hidden, num_classes)
        self.channels_last = bool(channels_last) and dim == 2
        if self.channels_last:  # the convolutions only (lazy per-channel parameters wait)
            for m in self.features:
                if isinstance(m, nn.Conv2d):
                    m.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], *self.input_shape)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        h = self.features(x).flatten(1)
        return self.head(self.fc_act(self.fc(h)))


class MNIST1DCNN(nn.Module):
    """The MNIST-1D paper's small 1-D CNN (Greydanus & Kobak, 2024, ``ConvBase``).

    ``conv(1->25, k=5, s=2, p=1)``, ``conv(25->25, k=3, s=2, p=1)`` twice, each followed by
    the activation, then one linear layer (``25 * 5 = 125 -> 10`` for length-40 inputs).

    Shape: ``(N, L)`` or ``(N, 1, L)`` -> ``(N, num_classes)``.
    """

    def __init__(
        self,
        length: int = 40,
        num_classes: int = 10,
        activation: ActivationLike = "relu",
        channels: int = 25,
    ) -> None:
        super().__init__()
        k = gate_factor(activation)
        specs = [(1, 5), (channels, 3), (channels, 3)]
        layers: list[nn.Module] = []
        size = int(length)
        for c_in, kernel in specs:
            layers += [nn.Conv1d(c_in, k * channels, kernel, stride=2, padding=1),
                       ChannelActivation(activation)]
            size = (size + 2 - kernel) // 2 + 1
        if size < 1:
            raise ValueError(f"MNIST1DCNN needs inputs of length >= 5, got {length}")
        self.length = int(length)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels * size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x.reshape(x.shape[0], 1, self.length))
        return self.head(h.flatten(1))


class FeedForward(nn.Module):
    """The transformer FFN block: ``Linear(d_model, d_ff) -> act -> Linear(d_ff, d_model)``.

    Gated activations get ``Linear(d_model, 2 h) -> act -> Linear(h, d_model)`` with
    ``h = round(2/3 * d_ff)``: the same number of weights (3 d_model h ~ 2 d_model d_ff).

    Shape: ``(*, d_model)`` -> ``(*, d_model)``.

    Example:
        >>> ffn = FeedForward(512, 2048, "swiglu")
        >>> ffn.d_hidden
        1365
    """

    def __init__(
        self, d_model: int = 512, d_ff: int = 2048, activation: ActivationLike = "gelu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        act = resolve(activation)
        self.d_hidden = round(2 * d_ff / 3) if act.gated else int(d_ff)
        k = 2 if act.gated else 1
        self.up = nn.Linear(d_model, k * self.d_hidden, bias=bias)
        self.act = act.module()
        self.down = nn.Linear(self.d_hidden, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.act(self.up(x)))


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (``scaled_dot_product_attention``)."""

    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model={d_model} must be divisible by n_head={n_head}")
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + ffn(ln(x))``."""

    def __init__(self, d_model: int, n_head: int, d_ff: int, activation: ActivationLike) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head)
        self.ln2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, activation)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class CharTransformer(nn.Module):
    """A small GPT-style character language model whose FFN activation is varied.

    Token and learned position embeddings, ``n_layer`` pre-norm blocks, a final LayerNorm
    and a linear head (nanoGPT's layout at toy size).

    Shape: ``(N, T)`` int64 token ids with ``T <= block_size`` -> ``(N, T, vocab_size)``.

    Example:
        >>> lm = CharTransformer(100, block_size=32, d_model=32, n_layer=1, n_head=2)
        >>> lm(torch.zeros(2, 32, dtype=torch.long)).shape
        torch.Size([2, 32, 100])
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 64,
        d_model: int = 64,
        n_layer: int = 2,
        n_head: int = 4,
        d_ff: int = 256,
        activation: ActivationLike = "gelu",
    ) -> None:
        super().__init__()
        self.block_size = int(block_size)
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(block_size, d_model)
        self.blocks = nn.ModuleList(
            Block(d_model, n_head, d_ff, activation) for _ in range(n_layer)
        )
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[1]
        if t > self.block_size:
            raise ValueError(f"sequence length {t} exceeds block_size {self.block_size}")
        pos = torch.arange(t, device=idx.device)
        x = self.tok(idx) + self.pos(pos)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))
