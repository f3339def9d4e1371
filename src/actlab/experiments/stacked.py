"""Stacked models: the seeds of one configuration trained together as one model.

``stack_models(models)`` takes the per-seed models of one (task, activation,
configuration), each built with its own seed exactly as a one-by-one run builds it, and
returns one module whose parameters carry the seeds on a leading dimension ``S``:

- linear layers become batched matmuls (``torch.baddbmm`` over ``(S, N, in)``);
- convolutions run on the seeds' channels side by side: one grouped convolution
  (``groups=S``) for narrow layers, one convolution per seed's channel slice for wide ones
  (faster on CPUs);
- embeddings one lookup in the seeds' tables laid end to end; layer norms keep one scale
  and shift per seed; attention runs on ``S * N`` sequences;
- activation modules (stateless: no learned parameters) act element-wise on the stacked
  tensors; gated ones split each seed's own last (or channel) dimension.

Every seed's arithmetic is its own: seed ``s`` sees only its own parameters and its own
batch, and the loss of the stack is the sum of the seeds' losses, so each seed's gradient
is the gradient of its own loss. An element-wise optimiser (Adam, AdamW, SGD with
momentum) over the stacked parameters is therefore ``S`` independent optimisers, and a
stacked run gives each seed the numbers of its one-by-one run up to float rounding
(batched and grouped kernels sum in another order).

The stacked model takes per-seed inputs ``(S, N, *input_shape)``; ``shared=True`` takes
one input ``(N, *input_shape)`` for all seeds (evaluation on a common test set). It also
records, for each activation layer, each seed's running peak ``max |output|`` per unit
(:class:`StackedPeaks`): the dead-unit fractions of the one-by-one loop, per seed, for
the cost of one reduction per layer and step.

Example:
    >>> models = []
    >>> for seed in (0, 1, 2):
    ...     torch.manual_seed(seed)
    ...     models.append(MLP(40, (64,), 10, "relu"))
    >>> stacked = stack_models(models)
    >>> stacked(torch.randn(3, 8, 40)).shape      # (S, N, classes)
    torch.Size([3, 8, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actlab.catalog import ActivationModule
from actlab.experiments.models import (
    CNN,
    MLP,
    MNIST1DCNN,
    Block,
    ChannelActivation,
    CharTransformer,
)


def stack_problem(activation: str) -> str | None:
    """Why runs with this activation cannot be stacked, or ``None`` if they can.

    Stacking needs an element-wise activation without learned parameters: a built-in or
    a formula (both element-wise by construction). Learned parameters (``prelu``'s alpha)
    and user callables (which may mix elements across the batch) run one by one.
    """
    from actlab.catalog import get

    try:
        act = get(activation)
    except (KeyError, ValueError, TypeError) as exc:
        return f"activation {activation!r} cannot be resolved ({exc})"
    if act.learn:
        return f"{act.name} learns {', '.join(act.learn)} (one value per model, not stacked)"
    if not act.spec.builtin and act.spec.source is None:
        return f"{act.name} is a user callable (it may not be element-wise)"
    return None


def can_stack(activation: str) -> bool:
    """Whether runs with this activation can train as one stacked model."""
    return stack_problem(activation) is None


#: a stack of seeds holds at most about this many activation values per step (32 MB of
#: float32); beyond it a model is bound by its arithmetic or by memory, and stacking gains
#: nothing (measured on 1 CPU thread, 8 seeds against one by one: mlp/mnist1d, 0.1M
#: values a step per seed, 1.4-1.9x; char_lm at its --quick sizes, 0.15M, 2.4x; cnn/mnist1d,
#: 0.85M, 1.1x; the article's CNN on 28x28 images, 11M, 0.63x; char_lm's defaults, 4.4M,
#: 0.85x)
STACK_BUDGET = 8_000_000


def activation_volume(model: nn.Module, example: Tensor) -> int:
    """Values the model's leaf modules produce for the input ``example`` (a batch).

    Build the model and the input on the ``meta`` device: only shapes are computed.
    """
    total = 0

    def count(module: nn.Module, args: object, output: object) -> None:
        nonlocal total
        if isinstance(output, Tensor):
            total += output.numel()

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return total


def seeds_within_budget(volume: int, budget: int = STACK_BUDGET) -> int:
    """How many seeds whose model produces ``volume`` values per step fit one stack."""
    return max(1, budget // max(1, int(volume)))


def _stack(tensors: Sequence[Tensor]) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]).clone())


def _check_stateless(module: nn.Module, where: str) -> nn.Module:
    """``module`` (an activation) for the stack, or ``ValueError`` if it learns.

    The stack's activations act on tensors no one else reads (a layer's fresh output),
    so an actlab module whose native op can overwrite its input is rebuilt in place
    (``inplace=True``: relu, elu, sigmoid, tanh, ...): a stacked step writes no new
    tensor per activation (8 seeds of mlp/mnist1d: 6 % faster). Other modules are kept.
    """
    if any(True for _ in module.parameters()):
        raise ValueError(f"{where} has learned parameters, which are not stacked")
    if type(module) is ActivationModule and not module.inplace:
        return ActivationModule(module.act, precise=module.precise, inplace=True)
    return module


class StackedPeaks:
    """Per activation layer and stacked seed: the running peak ``max |output|`` per unit.

    A unit is dead over the batches seen when its peak is not above 0 (its output was
    never non-zero): the dead-unit fractions of
    :class:`~actlab.analysis.dead_units.DeadUnitMonitor` with ``gradients=False``, per
    seed. Peaks stay on the device (``fmax``: a NaN batch leaves them as they were).
    """

    def __init__(self) -> None:
        self.peaks: dict[str, Tensor] = {}
        self.enabled = False

    def add(self, name: str, peak: Tensor) -> None:
        """``peak``: ``(S, units)``, this batch's largest ``|output|`` per seed and unit."""
        if not self.enabled:
            return
        current = self.peaks.get(name)
        if current is None:
            self.peaks[name] = peak
        else:
            torch.fmax(current, peak, out=current)

    def reset(self) -> None:
        self.peaks = {}

    def keep(self, index: Tensor) -> None:
        """Keep the seeds at ``index`` (a seed left the stack)."""
        self.peaks = {k: v[index] for k, v in self.peaks.items()}

    def fractions(self, threshold: float = 0.0) -> list[tuple[float, dict[str, float]]]:
        """Per seed: (dead fraction of all units, dead fraction per layer); one host sync."""
        if not self.peaks:
            return []
        names = list(self.peaks)
        dead = [(p <= threshold) | p.isnan() for p in self.peaks.values()]
        counts = torch.stack([d.sum(dim=1) for d in dead], dim=1).tolist()  # (S, layers)
        units = [d.shape[1] for d in dead]
        total = sum(units)
        out = []
        for row in counts:
            layers = {n: c / u for n, c, u in zip(names, row, units, strict=True)}
            out.append((sum(row) / total, layers))
        return out


class StackedModule(nn.Module):
    """Base of the stacked models: every parameter has the seeds on dimension 0."""

    def __init__(self) -> None:
        super().__init__()
        self.peaks = StackedPeaks()

    @property
    def seeds(self) -> int:
        """How many seeds the stack holds now."""
        return next(self.parameters()).shape[0]

    def _peak(self, name: str, out: Tensor, seed_dim: int, unit_dims: Sequence[int]) -> None:
        """Record the peak of an activation output whose seeds lie on ``seed_dim`` and
        units on ``unit_dims`` (every other dimension is reduced)."""
        if not self.peaks.enabled:
            return
        keep = {seed_dim % out.dim(), *(d % out.dim() for d in unit_dims)}
        dims = [d for d in range(out.dim()) if d not in keep]
        peak = out.detach().abs()
        if dims:
            peak = peak.amax(dim=dims)
        self.peaks.add(name, peak.reshape(peak.shape[0], -1))

    @torch.no_grad()
    def keep(self, index: Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Keep only the seeds at ``index``, and their optimiser state.

        Each parameter is replaced by a new one holding the kept seeds (autograd records
        a leaf's shape, so a leaf cannot shrink in place); ``optimizer`` is pointed at the
        new parameters, with their state sliced the same way.
        """
        swap: dict[nn.Parameter, nn.Parameter] = {}
        for module in self.modules():
            for name, old in list(module._parameters.items()):
                if old is None:
                    continue
                new = swap.get(old)
                if new is None:
                    new = swap[old] = nn.Parameter(old.detach()[index].clone(),
                                                   requires_grad=old.requires_grad)
                module._parameters[name] = new
        if optimizer is not None:
            for group in optimizer.param_groups:
                group["params"] = [swap.get(p, p) for p in group["params"]]
            for old, new in swap.items():
                state = optimizer.state.pop(old, None)
                if state is not None:
                    optimizer.state[new] = {
                        k: v[index] if isinstance(v, Tensor) and v.shape == old.shape else v
                        for k, v in state.items()
                    }
        self.peaks.keep(index)


class StackedLinear(nn.Module):
    """``S`` linear layers applied as one batched matmul.

    The weights are kept transposed, ``(S, in, out)``, so that the weight gradient of
    ``baddbmm`` comes out contiguous (no copy per step).

    Shape: ``(S, *, in)`` -> ``(S, *, out)``; :meth:`shared` takes ``(N, in)`` (one input
    for every seed) -> ``(S, N, out)``.
    """

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = _stack([m.weight.t() for m in layers])
        self.bias = None if layers[0].bias is None else _stack([m.bias for m in layers])

    def forward(self, x: Tensor) -> Tensor:
        s, *mid, n_in = x.shape
        flat = x if x.dim() == 3 else x.reshape(s, -1, n_in)  # no view (and copy) when 3-D
        if self.bias is None:
            out = torch.bmm(flat, self.weight)
        else:
            out = torch.baddbmm(self.bias.unsqueeze(1), flat, self.weight)
        return out if x.dim() == 3 else out.reshape(s, *mid, out.shape[-1])

    def shared(self, x: Tensor) -> Tensor:
        h = x.expand(self.weight.shape[0], *x.shape)  # (S, N, in), no copy
        if self.bias is None:
            return torch.bmm(h, self.weight)
        return torch.baddbmm(self.bias.unsqueeze(1), h, self.weight)


class StackedMLP(StackedModule):
    """:class:`~actlab.experiments.models.MLP` s (same shape and activation), stacked.

    Shape: ``(S, N, *)`` -> ``(S, N, classes)``; ``shared=True``: ``(N, *)`` -> same.
    """

    def __init__(self, models: Sequence[MLP]) -> None:
        super().__init__()
        first = models[0]
        self.linears = nn.ModuleList(
            StackedLinear([m.linears[i] for m in models]) for i in range(len(first.linears))
        )
        self.acts = nn.ModuleList(
            _check_stateless(a, f"activation acts.{i}") for i, a in enumerate(first.acts)
        )
        self.skips = list(first.skips)
        self.head = StackedLinear([m.head for m in models])

    def forward(self, x: Tensor, shared: bool = False) -> Tensor:
        return self.trace(x, shared)[2]

    def trace(self, x: Tensor, shared: bool = False) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """The forward, keeping its pieces: ``(inputs, outputs, logits)``, each linear
        layer's input (the head's last) and each activation's output (what a written-out
        backward needs, :func:`~actlab.experiments.train_stacked.mlp_step`)."""
        keep = 2 if shared else 3
        h = x if x.dim() == keep else x.flatten(keep - 1)
        inputs, outputs = [], []
        for i, (lin, act, skip) in enumerate(zip(self.linears, self.acts, self.skips,
                                                 strict=True)):
            inputs.append(h)
            out = act(lin.shared(h) if shared and i == 0 else lin(h))
            self._peak(f"acts.{i}", out, 0, [-1])
            outputs.append(out)
            h = h + out if skip else out
        inputs.append(h)
        if shared and not len(self.linears):
            return inputs, outputs, self.head.shared(h)
        return inputs, outputs, self.head(h)


class StackedConv(nn.Module):
    """``S`` convolutions (1-D or 2-D) over side-by-side channels:
    ``(N, S * C_in, *)`` -> ``(N, S * C_out, *)``.

    Layers with few input channels per seed run as one grouped convolution
    (``groups=S``); wider ones as one convolution per seed on its channel slice, which
    oneDNN runs faster on CPUs than the grouped kernel (measured: 0.77x the time for
    32 -> 64 channels, 8 seeds).
    """

    GROUPED_BELOW = 8  # input channels per seed

    def __init__(self, layers: Sequence[nn.Conv1d | nn.Conv2d]) -> None:
        super().__init__()
        first = layers[0]
        if first.groups != 1 or first.padding_mode != "zeros":
            raise ValueError("only plain convolutions (groups=1, zero padding) are stacked")
        self.conv = F.conv1d if isinstance(first, nn.Conv1d) else F.conv2d
        self.stride, self.padding, self.dilation = first.stride, first.padding, first.dilation
        self.weight = _stack([m.weight for m in layers])  # (S, out, in, *k)
        self.bias = None if first.bias is None else _stack([m.bias for m in layers])

    def forward(self, x: Tensor) -> Tensor:
        s, c_out, c_in = self.weight.shape[:3]
        args = (self.stride, self.padding, self.dilation)
        if c_in < self.GROUPED_BELOW:
            weight = self.weight.reshape(s * c_out, *self.weight.shape[2:])
            bias = None if self.bias is None else self.bias.reshape(-1)
            return self.conv(x, weight, bias, *args, s)
        outs = [
            self.conv(part, self.weight[i], None if self.bias is None else self.bias[i], *args)
            for i, part in enumerate(x.chunk(s, dim=1))
        ]
        return torch.cat(outs, dim=1)


class StackedConvNet(StackedModule):
    """The article's :class:`~actlab.experiments.models.CNN` or the MNIST-1D paper's
    :class:`~actlab.experiments.models.MNIST1DCNN`, stacked.

    Shape: ``(S, N, *input_shape)`` -> ``(S, N, classes)``; ``shared=True``:
    ``(N, *input_shape)`` -> same.
    """

    def __init__(self, models: Sequence[CNN | MNIST1DCNN]) -> None:
        super().__init__()
        first = models[0]
        if isinstance(first, CNN):
            self.input_shape = tuple(first.input_shape)
        else:
            self.input_shape = (1, first.length)
        layers: list[nn.Module] = []
        self.sites: list[tuple[int, str, bool]] = []  # (layer index, name, gated)
        for j, layer in enumerate(first.features):
            if isinstance(layer, nn.Conv1d | nn.Conv2d):
                layers.append(StackedConv([m.features[j] for m in models]))
            elif isinstance(layer, nn.MaxPool1d | nn.MaxPool2d):
                layers.append(layer)
            elif isinstance(layer, ChannelActivation):
                layers.append(_check_stateless(layer.act, f"activation features.{j}"))
                self.sites.append((j, f"features.{j}.act", layer.gated))
            else:
                raise ValueError(f"layer features.{j} ({type(layer).__name__}) is not stacked")
        self.features = nn.ModuleList(layers)
        self.fc = StackedLinear([m.fc for m in models]) if isinstance(first, CNN) else None
        self.fc_act = _check_stateless(first.fc_act, "fc_act") if self.fc is not None else None
        self.head = StackedLinear([m.head for m in models])

    def _channel_act(self, act: nn.Module, x: Tensor, name: str, gated: bool) -> Tensor:
        if not gated:
            out = act(x)
            n, sc = out.shape[:2]
            s = self.seeds
            self._peak(name, out.reshape(n, s, sc // s, -1), 1, [2])
            return out
        n, sc, *space = x.shape
        s = self.seeds
        rows = x.reshape(n, s, sc // s, *space).movedim(2, -1)  # (N, S, *space, 2C)
        out = act(rows)
        self._peak(name, out, 1, [-1])
        return out.movedim(-1, 2).reshape(n, -1, *space)

    def forward(self, x: Tensor, shared: bool = False) -> Tensor:
        s = self.seeds
        c, *space = self.input_shape
        if shared:
            n = x.shape[0]
            h = x.reshape(n, c, *space).repeat(1, s, *([1] * len(space)))
        else:
            n = x.shape[1]
            h = x.reshape(s, n, c, *space).transpose(0, 1).reshape(n, s * c, *space)
        sites = {j: (name, gated) for j, name, gated in self.sites}
        for j, layer in enumerate(self.features):
            h = self._channel_act(layer, h, *sites[j]) if j in sites else layer(h)
        h = h.reshape(n, s, -1).transpose(0, 1)  # (S, N, features), each seed's C-major order
        if self.fc is not None and self.fc_act is not None:
            h = self.fc_act(self.fc(h))
            self._peak("fc_act", h, 0, [-1])
        return self.head(h)


class StackedLayerNorm(nn.Module):
    """``S`` layer norms over the last dimension: one scale and shift per seed."""

    def __init__(self, layers: Sequence[nn.LayerNorm]) -> None:
        super().__init__()
        self.eps = layers[0].eps
        self.shape = tuple(layers[0].normalized_shape)
        self.weight = _stack([m.weight for m in layers])
        self.bias = _stack([m.bias for m in layers])

    def forward(self, x: Tensor) -> Tensor:  # (S, *, D)
        view = (x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1])
        y = F.layer_norm(x, self.shape, eps=self.eps)
        return torch.addcmul(self.bias.reshape(view), y, self.weight.reshape(view))


class StackedBlock(nn.Module):
    """:class:`~actlab.experiments.models.Block` s, stacked: ``(S, N, T, D)`` in and out."""

    def __init__(self, blocks: Sequence[Block], name: str) -> None:
        super().__init__()
        first = blocks[0]
        self.n_head = first.attn.n_head
        self.ln1 = StackedLayerNorm([b.ln1 for b in blocks])
        self.qkv = StackedLinear([b.attn.qkv for b in blocks])
        self.proj = StackedLinear([b.attn.proj for b in blocks])
        self.ln2 = StackedLayerNorm([b.ln2 for b in blocks])
        self.up = StackedLinear([b.ffn.up for b in blocks])
        self.act = _check_stateless(first.ffn.act, f"{name}.ffn.act")
        self.down = StackedLinear([b.ffn.down for b in blocks])

    def forward(self, x: Tensor) -> Tensor:
        s, n, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=-1)
        heads = (s * n, t, self.n_head, c // self.n_head)
        q, k, v = (z.reshape(heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(s, n, t, c))
        return x + self.down(self.act(self.up(self.ln2(x))))


class StackedCharTransformer(StackedModule):
    """:class:`~actlab.experiments.models.CharTransformer` s, stacked.

    Shape: ``(S, N, T)`` token ids -> ``(S, N, T, vocab)``; ``shared=True``: ``(N, T)``.
    """

    def __init__(self, models: Sequence[CharTransformer]) -> None:
        super().__init__()
        first = models[0]
        self.block_size = first.block_size
        self.tok = _stack([m.tok.weight for m in models])  # (S, V, D)
        self.pos = _stack([m.pos.weight for m in models])  # (S, block, D)
        self.blocks = nn.ModuleList(
            StackedBlock([m.blocks[i] for m in models], f"blocks.{i}")
            for i in range(len(first.blocks))
        )
        self.ln = StackedLayerNorm([m.ln for m in models])
        self.head = StackedLinear([m.head for m in models])

    def forward(self, idx: Tensor, shared: bool = False) -> Tensor:
        s, vocab, d = self.tok.shape
        if shared:
            idx = idx.expand(s, *idx.shape)
        t = idx.shape[-1]
        if t > self.block_size:
            raise ValueError(f"sequence length {t} exceeds block_size {self.block_size}")
        offset = (torch.arange(s, device=idx.device) * vocab).reshape(s, 1, 1)
        x = F.embedding(idx + offset, self.tok.reshape(s * vocab, d))
        x = x + self.pos[:, None, :t]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def stack_models(models: Sequence[nn.Module]) -> StackedModule:
    """One stacked module from per-seed models of one kind and shape.

    Accepts :class:`~actlab.experiments.models.MLP` (and ``DeepMLP``),
    :class:`~actlab.experiments.models.CNN`, :class:`~actlab.experiments.models.MNIST1DCNN`
    and :class:`~actlab.experiments.models.CharTransformer`, with activations that have
    no learned parameters.

    Raises:
        ValueError: no models, models of different kinds or shapes, or a model that
            cannot be stacked (say which).
    """
    models = list(models)
    if not models:
        raise ValueError("stack_models needs at least one model")
    kind = type(models[0])
    if any(type(m) is not kind for m in models):
        kinds = sorted({type(m).__name__ for m in models})
        raise ValueError(f"stacked models must be of one kind, got {', '.join(kinds)}")
    shapes = {tuple((n, tuple(p.shape)) for n, p in m.named_parameters()) for m in models}
    if len(shapes) > 1:
        raise ValueError("stacked models must have the same parameter shapes")
    stacked: StackedModule
    if isinstance(models[0], MLP):
        stacked = StackedMLP(models)  # type: ignore[arg-type]
    elif isinstance(models[0], CNN | MNIST1DCNN):
        stacked = StackedConvNet(models)  # type: ignore[arg-type]
    elif isinstance(models[0], CharTransformer):
        stacked = StackedCharTransformer(models)  # type: ignore[arg-type]
    else:
        raise ValueError(
            f"{kind.__name__} cannot be stacked; stackable: MLP, CNN, MNIST1DCNN, "
            "CharTransformer"
        )
    device = next(models[0].parameters()).device
    return stacked.to(device)


__all__ = [
    "STACK_BUDGET",
    "StackedCharTransformer",
    "StackedConvNet",
    "StackedLinear",
    "StackedMLP",
    "StackedModule",
    "StackedPeaks",
    "activation_volume",
    "can_stack",
    "seeds_within_budget",
    "stack_models",
    "stack_problem",
]
