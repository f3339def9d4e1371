"""Gradient flow through depth: a deep MLP at initialisation, a real forward and backward pass.

The seed article's vanishing-gradient loop multiplies ``sigmoid'(sigmoid(x))`` along a
chain of scalars: it differentiates the already-activated value, has no weights, and its
printed numbers do not follow from it. Here the experiment is done properly:

* an MLP of ``depth`` hidden layers ``h_l = W_l x_{l-1} + b_l``, ``x_l = f(h_l)``
  (width ``width``; for a gated activation ``W_l`` is ``(2 width, width)`` and f halves it),
  a random linear read-out to 10 outputs and a mean-squared-error loss on random targets;
* inputs ``x_0 ~ N(0, 1)``, a batch of ``batch`` rows; float64 by default, because the
  gradients of deep sigmoid networks fall below float32's range;
* per layer: ``||dL/dW_l||_F``, the back-propagated signal ``||dL/dh_l||_F``, the variance
  of ``x_l`` and the mean square of ``h_l`` (the mean-field q_l), averaged over ``seeds``
  independent initialisations.

Initialisations (``W ~ fan_in``-scaled, see :data:`INITS`):

* ``default``: PyTorch's ``nn.Linear`` (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and
  biases): sigma_w^2 = 1/3, sigma_b^2 = 1/(3 fan_in);
* ``kaiming``: He et al. 2015, ``N(0, 2/fan_in)``, zero bias;
* ``gain``: ``N(0, g^2/fan_in)`` with g = :func:`actlab.analysis.gain` of the activation
  (second-moment preserving), zero bias. The first layer sees the data (unit variance), not
  an activation's output, so it gets gain 1 (``calculate_gain('linear')``): q_1 = 1, the
  fixed point that the gain is designed for;
* ``critical``: the edge of chaos, sigma_w^2 = :func:`critical_weight_variance` at
  ``sigma_b2`` (default: the smallest of 0.01, 0.05, 0.1, 0.2, 0.5, 1, 2 that has one),
  biases ``N(0, sigma_b2)``; the first layer's weight variance puts q_1 at the fixed point
  q* (``(q* - sigma_b2) / fan_in``).

Mean-field theory predicts that the back-propagated signal ``||dL/dh_l||`` changes by
``sqrt(chi(q_l))`` per layer, ``chi(q) = sigma_w^2 E[f'(sqrt(q) z)^2]``, with q_l the q map
iterated from ``q_1 = sigma_w^2 + sigma_b^2``: :attr:`GradientFlow.theory_factor` against the
measured :attr:`GradientFlow.middle_factor`. Weight gradients ``dL/dW_l = sum_b delta_b
x_b^T`` also depend on how aligned the batch's errors and activations are (the correlation
map), so their profile is not a pure product of chi's; their exponential rate is the same.

Example:
    >>> r = gradient_flow("sigmoid", depth=20)
    >>> r.ratio  # first-layer / last-layer gradient norm: ~2e-17
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from actlab.analysis._eval import resolve
from actlab.catalog.runtime import require_memory, resolve_device

INITS = ("default", "kaiming", "gain", "critical")
N_OUT = 10


@dataclass
class GradientFlow:
    """Result of :func:`gradient_flow` (arrays indexed by layer, 0 = first hidden layer).

    Attributes:
        grad_norm: ``||dL/dW_l||_F``, mean over seeds.
        grad_norm_std: its standard deviation over seeds.
        delta_norm: ``||dL/dh_l||_F``, the back-propagated signal at the pre-activations.
        act_var: variance of the layer's activations ``x_l``, mean over seeds.
        preact_q: mean square of the pre-activations ``h_l`` (mean-field q_l).
        sigma_w2, sigma_b2: the init's weight variance (times fan_in) and bias variance.
        sigma_w2_first: the first layer's weight variance (times fan_in).
    """

    activation: str
    depth: int
    width: int
    init: str
    seeds: tuple[int, ...]
    batch: int
    sigma_w2: float
    sigma_b2: float
    sigma_w2_first: float
    grad_norm: np.ndarray
    grad_norm_std: np.ndarray
    delta_norm: np.ndarray
    act_var: np.ndarray
    preact_q: np.ndarray
    per_seed: np.ndarray = field(repr=False)
    #: the activation itself (a formula or non-default parameters are not found by name)
    act: Any = field(default=None, repr=False, compare=False)

    @property
    def ratio(self) -> float:
        """First-layer gradient norm / last-layer gradient norm (< 1: vanishing)."""
        return float(self.grad_norm[0] / self.grad_norm[-1])

    @property
    def per_layer_factor(self) -> float:
        """Geometric-mean change of the gradient norm per layer, first to last."""
        if self.depth < 2:
            return 1.0
        return float(self.ratio ** (1.0 / (self.depth - 1)))

    def _middle(self) -> tuple[int, int]:
        d = self.depth
        return (d // 4, d - d // 4) if d >= 8 else (0, d)

    @property
    def middle_factor(self) -> float:
        """Measured per-layer factor of the back-propagated signal ``||dL/dh_l||`` (going
        back one layer), a least-squares fit of its log over the middle half of the layers,
        away from the input and read-out edges."""
        lo, hi = self._middle()
        if hi - lo < 2:
            return math.nan
        slope = np.polyfit(np.arange(lo, hi), np.log(self.delta_norm[lo:hi]), 1)[0]
        return float(np.exp(-slope))

    @property
    def theory_factor(self) -> float:
        """Mean-field prediction of :attr:`middle_factor`: the geometric mean of
        ``sqrt(chi(q_l))`` over the same layers (NaN if undefined)."""
        from actlab.analysis.propagation import chi_at, q_trajectory

        lo, hi = self._middle()
        if hi - lo < 2:
            return math.nan
        try:
            target = self.act if self.act is not None else self.activation
            qs = q_trajectory(
                target,
                self.sigma_w2,
                self.sigma_b2,
                self.sigma_w2_first + self.sigma_b2,
                hi,
            )
            chis = [chi_at(target, self.sigma_w2, q) for q in qs[lo : hi - 1]]
        except ValueError:
            return math.nan
        if not all(math.isfinite(c) and c > 0 for c in chis):
            return math.nan
        return float(math.exp(0.5 * np.mean(np.log(chis))))

    def to_frame(self) -> Any:
        """``pandas.DataFrame`` with one row per layer."""
        import pandas as pd

        return pd.DataFrame(
            {
                "activation": self.activation,
                "init": self.init,
                "depth": self.depth,
                "layer": np.arange(1, self.depth + 1),
                "grad_norm": self.grad_norm,
                "grad_norm_std": self.grad_norm_std,
                "delta_norm": self.delta_norm,
                "act_var": self.act_var,
                "preact_q": self.preact_q,
            }
        )


CRITICAL_SIGMA_B2 = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def init_variances(
    activation: Any, init: str, width: int, sigma_b2: float | None = None
) -> tuple[float, float, float]:
    """``(sigma_w^2, sigma_b^2, first layer's sigma_w^2)`` of an init (see :data:`INITS`)."""
    if init == "default":
        return 1.0 / 3.0, 1.0 / (3.0 * width), 1.0 / 3.0
    if init == "kaiming":
        return 2.0, 0.0, 2.0
    if init == "gain":
        from actlab.analysis.gain import gain

        return gain(activation) ** 2, 0.0, 1.0
    if init == "critical":
        from actlab.analysis.propagation import critical_weight_variance, fixed_point

        for sb2 in CRITICAL_SIGMA_B2 if sigma_b2 is None else (sigma_b2,):
            sw2 = critical_weight_variance(activation, sb2)
            if math.isfinite(sw2):
                q_star = fixed_point(activation, sw2, sb2).q_star
                first = q_star - sb2 if math.isfinite(q_star) and q_star > 2 * sb2 else sw2
                return sw2, sb2, first
        name = resolve(activation).name
        tried = CRITICAL_SIGMA_B2 if sigma_b2 is None else (sigma_b2,)
        where = ", ".join(f"{v:g}" for v in tried)
        raise ValueError(
            f"{name} has no edge of chaos at sigma_b2 = {where}; try another sigma_b2 or "
            "init 'gain', 'kaiming' or 'default'"
        )
    raise ValueError(f"unknown init {init!r}; accepted: {', '.join(INITS)}")


def _params(
    gen: torch.Generator, init: str, fan_out: int, fan_in: int, sw2: float, sb2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    if init == "default":
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(fan_out, fan_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        return w, b
    w = torch.randn(fan_out, fan_in, generator=gen, dtype=torch.float64) * math.sqrt(sw2 / fan_in)
    b = torch.randn(fan_out, generator=gen, dtype=torch.float64) * math.sqrt(sb2)
    return w, b


def _one_seed(
    module: torch.nn.Module,
    gated: bool,
    depth: int,
    width: int,
    batch: int,
    init: str,
    sw2: float,
    sb2: float,
    sw2_first: float,
    seed: int,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    fan_out = 2 * width if gated else width
    layers = [
        _params(gen, init, fan_out, width, sw2 if i else sw2_first, sb2) for i in range(depth)
    ]
    readout = torch.randn(N_OUT, width, generator=gen, dtype=torch.float64) / math.sqrt(width)
    x = torch.randn(batch, width, generator=gen, dtype=torch.float64)
    target = torch.randn(batch, N_OUT, generator=gen, dtype=torch.float64)

    def put(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype)

    weights = [put(w).requires_grad_(True) for w, _ in layers]
    biases = [put(b) for _, b in layers]
    hs, h_sq, x_var = [], [], []
    out = put(x)
    for w, b in zip(weights, biases, strict=True):
        h = torch.addmm(b, out, w.t())
        out = module(h)
        hs.append(h)
        h_sq.append(h.detach().square().mean())
        x_var.append(out.detach().var())
    y = out @ put(readout).t()
    loss = 0.5 * (y - put(target)).square().sum(dim=1).mean()
    grads = torch.autograd.grad(loss, weights + hs)
    norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
    as_np = lambda ts: torch.stack(ts).double().cpu().numpy()  # noqa: E731
    n = norms.double().cpu().numpy()
    return n[:depth], n[depth:], as_np(x_var), as_np(h_sq)


def memory_estimate(
    depth: int, width: int, batch: int, gated: bool = False,
    dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
) -> int:
    """Peak bytes of one seed of :func:`gradient_flow`: per layer the float64 weights as
    drawn, their copy in ``dtype`` on ``device`` (when either differs) and their gradients,
    the pre-activations and their gradients, and the activations saved for backward."""
    fan_out = 2 * width if gated else width
    item = torch.empty((), dtype=dtype).element_size()
    copy = dtype != torch.float64 or torch.device(device).type != "cpu"
    weights = fan_out * width
    per_layer = 8 * weights + item * (weights * (1 + int(copy)) + 2 * batch * fan_out
                                      + batch * width)
    return int(depth) * per_layer


def gradient_flow(
    activation: Any,
    depth: int,
    width: int = 128,
    init: str = "default",
    seeds: int | Sequence[int] = 3,
    batch: int = 256,
    sigma_b2: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
) -> GradientFlow:
    """Per-layer gradient norms and activation variances of a deep MLP at initialisation.

    Args:
        activation: anything :func:`actlab.get` accepts; gated activations get
            ``Linear(width, 2 width)`` layers.
        depth: number of hidden layers (>= 1).
        width: hidden width.
        init: ``"default"``, ``"kaiming"``, ``"gain"`` or ``"critical"`` (see module doc).
        seeds: number of seeds (0, 1, ...) or an explicit sequence of seeds.
        batch: input rows.
        sigma_b2: bias variance of the ``"critical"`` init (default: see module doc).
        dtype: compute dtype (float64 keeps 1e-40 gradients representable).
        device: default: ``$ACTLAB_DEVICE``, else CUDA when available, else CPU.

    Returns:
        :class:`GradientFlow`; ``.ratio`` is first-layer / last-layer gradient norm.

    Example:
        >>> gradient_flow("relu", 50, init="kaiming").ratio  # ~1
    """
    for label, value, low in (("depth", depth, 1), ("width", width, 1), ("batch", batch, 2)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; accepted: {', '.join(INITS)}")
    seed_list = tuple(range(seeds)) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
    if not seed_list:
        raise ValueError(f"seeds must be a positive count or a non-empty list, got {seeds!r}")
    act = resolve(activation)
    dev = resolve_device(device)
    require_memory(
        memory_estimate(depth, width, batch, act.gated, dtype, dev),
        dev,
        f"gradient flow at depth {depth}, width {width}, batch {batch}",
        "lower the depth, width or batch",
    )
    sw2, sb2, sw2_first = init_variances(act, init, width, sigma_b2)
    module = act.module().to(dev)
    runs = [
        _one_seed(module, act.gated, depth, width, batch, init, sw2, sb2, sw2_first, s, dtype, dev)
        for s in seed_list
    ]
    g = np.stack([r[0] for r in runs])
    return GradientFlow(
        activation=act.name,
        depth=int(depth),
        width=int(width),
        init=init,
        seeds=seed_list,
        batch=int(batch),
        sigma_w2=sw2,
        sigma_b2=sb2,
        sigma_w2_first=sw2_first,
        grad_norm=g.mean(axis=0),
        grad_norm_std=g.std(axis=0),
        delta_norm=np.stack([r[1] for r in runs]).mean(axis=0),
        act_var=np.stack([r[2] for r in runs]).mean(axis=0),
        preact_q=np.stack([r[3] for r in runs]).mean(axis=0),
        per_seed=g,
        act=act,
    )
