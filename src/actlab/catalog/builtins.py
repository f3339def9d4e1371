"""The built-in activation zoo: one :class:`ActivationSpec` per activation.

Conventions for stability (checked by ``tests/catalog`` and ``actlab audit``):

* never ``exp`` of a large positive number: clamp the argument, or use ``expm1`` of the
  non-positive part, ``softplus``/``logsigmoid`` forms, or ``sigmoid``;
* ``sech^2(x)`` is ``4 sigmoid(2x) sigmoid(-2x)``, not ``1 - tanh^2`` (no cancellation);
* ``sigmoid'(x)`` is ``sigmoid(x) sigmoid(-x)``;
* both branches of ``torch.where`` stay finite, so autograd of the forward has no NaN;
* half-precision inputs are computed in float32 by :class:`Activation`.

At NaN and +-inf (``tests/catalog/test_nonfinite.py``): an activation with a native
PyTorch op gives that op's values for f and f' (its comparisons in the same order, so that
NaN takes the same branch: relu'(NaN) = 1 as ``threshold_backward`` gives); any other gives
NaN at NaN and the limits of f and f' at +-inf. A product ``x g(x)`` whose factor g
vanishes at -inf is written ``_lower(x) g(x)`` (0 there, not ``-inf * 0 = NaN``), and a
term ``x h(x)`` with h vanishing at both ends ``_finite(x) h(x)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from actlab.catalog.spec import ActivationSpec

SQRT_2 = math.sqrt(2.0)
SQRT_2PI = math.sqrt(2.0 * math.pi)
GELU_TANH_K = math.sqrt(2.0 / math.pi)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

SPECS: list[ActivationSpec] = []


def spec(**kwargs) -> ActivationSpec:
    s = ActivationSpec(**kwargs)
    SPECS.append(s)
    return s


def _sig_prime(z: Tensor) -> Tensor:
    """sigmoid'(z) = sigmoid(z) sigmoid(-z), accurate in both tails."""
    return torch.sigmoid(z) * torch.sigmoid(-z)


def _sech2(z: Tensor) -> Tensor:
    """sech^2(z) = 4 sigmoid(2z) sigmoid(-2z), accurate in both tails."""
    return 4.0 * _sig_prime(2.0 * z)


def _softplus(z: Tensor) -> Tensor:
    """log(1 + e^z) = logaddexp(z, 0): no overflow, exact in both tails.

    (``relu(z) + log1p(e^-|z|)`` has the same values, but autograd through it gives
    0 instead of 1/2 at z = 0, because relu'(0) = |z|'(0) = 0; ``logaddexp``'s
    gradient is ``exp(z - f) = sigmoid(z)`` everywhere.)
    """
    return torch.logaddexp(z, torch.zeros_like(z))


def _phi(x: Tensor) -> Tensor:
    """Standard normal density."""
    return torch.exp(-0.5 * x * x) / SQRT_2PI


def _Phi(x: Tensor) -> Tensor:
    """Standard normal CDF via erfc: accurate in the lower tail."""
    return 0.5 * torch.special.erfc(-x / SQRT_2)


def _step(cond: Tensor, x: Tensor) -> Tensor:
    return cond.to(x.dtype)


def _nan(x: Tensor) -> Tensor:
    """``x.isnan()`` written ``x != x``: the same mask, but a compiled kernel vectorises
    the comparison (inductor's CPU code tests ``isnan`` one element at a time)."""
    return x != x


def _inf(x: Tensor) -> Tensor:
    """``x.isinf()`` written ``|x| == inf``, vectorised like :func:`_nan`."""
    return x.abs() == math.inf


def _step_nan(cond: Tensor, x: Tensor) -> Tensor:
    """``cond`` as 0/1, and NaN where ``x`` is NaN (a step's derivative without a native op)."""
    return torch.where(_nan(x), x, cond.to(x.dtype))


# |x| beyond which every factor g below is exactly 0 or 1 (in float32 and float64)
_BIG = 1e30


def _lower(x: Tensor) -> Tensor:
    """x with -inf made finite: ``_lower(x) * g(x)`` is 0 (not NaN) where g(-inf) = 0."""
    return x.clamp(min=-_BIG)


def _finite(x: Tensor) -> Tensor:
    """x with +-inf made finite: ``_finite(x) * h(x)`` is 0 where h(+-inf) = 0."""
    return x.clamp(-_BIG, _BIG)


def _native(fn):
    """Native factory that is valid for every parameter value."""
    return lambda p: (lambda x: fn(x, **p))


# ----------------------------------------------------------------------------- linear
spec(
    name="identity", aliases=("linear", "none"), family="linear", formula="f(x) = x",
    reference="linear baseline (no activation)",
    forward=lambda x: x.clone(),
    derivative=lambda x: torch.where(_nan(x), x, 1.0),
)

# ----------------------------------------------------------------------------- sigmoid family
spec(
    name="sigmoid", aliases=("logistic",), family="sigmoid", formula="f(x) = 1 / (1 + e^-x)",
    reference="logistic function (Verhulst 1838); Rumelhart et al. 1986",
    forward=torch.sigmoid, derivative=_sig_prime,
    native="torch.sigmoid", native_factory=lambda p: torch.sigmoid,
)
spec(
    name="tanh", family="sigmoid", formula="f(x) = tanh(x)",
    reference="LeCun et al. 1998, Efficient BackProp",
    forward=torch.tanh, derivative=_sech2,
    native="torch.tanh", native_factory=lambda p: torch.tanh,
)
spec(
    name="hardsigmoid", aliases=("hard_sigmoid",), family="sigmoid",
    formula="f(x) = relu6(x + 3) / 6",
    reference="Howard et al. 2019, Searching for MobileNetV3",
    forward=lambda x: F.relu6(x + 3.0) / 6.0,
    derivative=lambda x: _step((x > -3.0) & (x < 3.0), x) / 6.0,
    native="F.hardsigmoid", native_factory=lambda p: F.hardsigmoid,
    kinks=lambda: (-3.0, 3.0),
)
spec(
    name="logsigmoid", aliases=("log_sigmoid",), family="sigmoid",
    formula="f(x) = log(sigmoid(x)) = -softplus(-x)",
    reference="log of the logistic function",
    forward=lambda x: -_softplus(-x), derivative=lambda x: torch.sigmoid(-x),
    native="F.logsigmoid", native_factory=lambda p: F.logsigmoid,
)
spec(
    name="hardtanh", aliases=("hard_tanh",), family="sigmoid",
    formula="f(x) = clamp(x, min_val, max_val)",
    reference="Collobert 2004, Large scale machine learning",
    params={"min_val": -1.0, "max_val": 1.0},
    forward=lambda x, min_val, max_val: x.clamp(min_val, max_val),
    derivative=lambda x, min_val, max_val: _step(~((x <= min_val) | (x >= max_val)), x),
    native="F.hardtanh", native_factory=_native(F.hardtanh),
    kinks=lambda min_val, max_val: (min_val, max_val),
    check=lambda min_val, max_val: (
        None if min_val < max_val
        else f"min_val={min_val:g} must be less than max_val={max_val:g}"
    ),
)
spec(
    name="softsign", family="sigmoid", formula="f(x) = x / (1 + |x|)",
    reference="Bergstra et al. 2009; Glorot & Bengio 2010",
    forward=lambda x: x / (1.0 + x.abs()),
    # NaN at +-inf like PyTorch (its autograd of x / (1 + |x|) meets inf / inf there)
    derivative=lambda x: torch.where(_inf(x), torch.nan, (1.0 + x.abs()).reciprocal().square()),
    native="F.softsign", native_factory=lambda p: F.softsign,
)
spec(
    name="arctan", aliases=("atan",), family="sigmoid", formula="f(x) = arctan(x)",
    reference="inverse tangent squashing function",
    forward=torch.atan, derivative=lambda x: (1.0 + x * x).reciprocal(),
)


def _isru(x: Tensor, alpha: float) -> Tensor:
    x = _finite(x)  # +-1/sqrt(alpha) at +-inf, not inf/inf
    return x / torch.hypot(torch.ones_like(x), math.sqrt(alpha) * x)


def _isru_prime(x: Tensor, alpha: float) -> Tensor:
    return torch.hypot(torch.ones_like(x), math.sqrt(alpha) * x).reciprocal().pow(3)


spec(
    name="isru", family="sigmoid", formula="f(x) = x / sqrt(1 + alpha x^2)",
    reference="Carlile et al. 2017, Improving Deep Learning by Inverse Square Root Linear Units",
    params={"alpha": 1.0}, param_ranges={"alpha": (1e-12, None)},
    forward=_isru, derivative=_isru_prime,
)

# ----------------------------------------------------------------------------- ReLU family
spec(
    name="relu", family="relu", formula="f(x) = max(0, x)",
    reference="Nair & Hinton 2010; Glorot et al. 2011",
    forward=torch.relu, derivative=lambda x: _step(~(x <= 0), x),
    native="F.relu", native_factory=lambda p: F.relu,
    kinks=lambda: (0.0,),
)
spec(
    name="leaky_relu", aliases=("leakyrelu", "lrelu"), family="relu",
    formula="f(x) = x if x > 0 else alpha x",
    reference="Maas et al. 2013, Rectifier Nonlinearities Improve Neural Network Acoustic Models",
    params={"alpha": 0.01},
    forward=lambda x, alpha: torch.where(x > 0, x, alpha * x),
    derivative=lambda x, alpha: torch.where(x > 0, torch.ones_like(x), alpha * torch.ones_like(x)),
    native="F.leaky_relu", native_factory=lambda p: (lambda x: F.leaky_relu(x, p["alpha"])),
    kinks=lambda alpha: (0.0,),
)
spec(
    name="prelu", family="relu", formula="f(x) = x if x > 0 else alpha x, alpha learned",
    reference="He et al. 2015, Delving Deep into Rectifiers",
    params={"alpha": 0.25}, learnable=("alpha",), learned_by_default=("alpha",),
    forward=lambda x, alpha: torch.where(x > 0, x, alpha * x),
    derivative=lambda x, alpha: torch.where(x > 0, torch.ones_like(x), alpha * torch.ones_like(x)),
    native="F.prelu",
    native_factory=lambda p: (lambda x: F.prelu(x, torch.tensor([p["alpha"]], dtype=x.dtype))),
    kinks=lambda alpha: (0.0,),
)
spec(
    name="rrelu", family="relu",
    formula="f(x) = x if x > 0 else (lower + upper) / 2 x   (evaluation mode)",
    reference="Xu et al. 2015, Empirical Evaluation of Rectified Activations",
    params={"lower": 1.0 / 8.0, "upper": 1.0 / 3.0},
    forward=lambda x, lower, upper: torch.where(x >= 0, x, 0.5 * (lower + upper) * x),
    derivative=lambda x, lower, upper: torch.where(
        x > 0, torch.ones_like(x), 0.5 * (lower + upper) * torch.ones_like(x)
    ),
    native="F.rrelu",
    native_factory=lambda p: (lambda x: F.rrelu(x, p["lower"], p["upper"], training=False)),
    kinks=lambda lower, upper: (0.0,),
    check=lambda lower, upper: (
        None if lower <= upper else f"lower={lower:g} must not exceed upper={upper:g}"
    ),
)
spec(
    name="relu6", family="relu", formula="f(x) = min(max(0, x), 6)",
    reference="Krizhevsky 2010, Convolutional Deep Belief Networks on CIFAR-10",
    forward=lambda x: x.clamp(0.0, 6.0),
    derivative=lambda x: _step(~((x <= 0) | (x >= 6.0)), x),
    native="F.relu6", native_factory=lambda p: F.relu6,
    kinks=lambda: (0.0, 6.0),
)
spec(
    name="threshold", family="relu", formula="f(x) = x if x > threshold else value",
    reference="torch.nn.Threshold",
    params={"threshold": 0.0, "value": 0.0},
    forward=lambda x, threshold, value: torch.where(x <= threshold, value, x),
    derivative=lambda x, threshold, value: _step(~(x <= threshold), x),
    native="F.threshold",
    native_factory=lambda p: (lambda x: F.threshold(x, p["threshold"], p["value"])),
    kinks=lambda threshold, value: (threshold,),
    continuous=False,
)
spec(
    name="squared_relu", aliases=("relu_squared", "relu2"), family="relu",
    formula="f(x) = max(0, x)^2",
    reference="So et al. 2021, Primer: Searching for Efficient Transformers",
    forward=lambda x: torch.relu(x).square(), derivative=lambda x: 2.0 * torch.relu(x),
)


def _elu(x: Tensor, alpha: float) -> Tensor:
    return torch.where(x > 0, x, alpha * torch.expm1(x.clamp(max=0.0)))


def _elu_prime(x: Tensor, alpha: float) -> Tensor:
    return torch.where(x <= 0, alpha * torch.exp(x.clamp(max=0.0)), 1.0)


spec(
    name="elu", family="exponential", formula="f(x) = x if x > 0 else alpha (e^x - 1)",
    reference="Clevert et al. 2016, Fast and Accurate Deep Network Learning by ELUs",
    params={"alpha": 1.0},
    forward=_elu, derivative=_elu_prime,
    native="F.elu", native_factory=lambda p: (lambda x: F.elu(x, p["alpha"])),
    kinks=lambda alpha: () if alpha == 1.0 else (0.0,),
)
spec(
    name="selu", family="exponential",
    formula="f(x) = scale (x if x > 0 else alpha (e^x - 1)), alpha=1.6733, scale=1.0507",
    reference="Klambauer et al. 2017, Self-Normalizing Neural Networks",
    forward=lambda x: SELU_SCALE * _elu(x, SELU_ALPHA),
    derivative=lambda x: SELU_SCALE * _elu_prime(x, SELU_ALPHA),
    native="F.selu", native_factory=lambda p: F.selu,
    kinks=lambda: (0.0,),
)
spec(
    name="celu", family="exponential", formula="f(x) = x if x > 0 else alpha (e^(x/alpha) - 1)",
    reference="Barron 2017, Continuously Differentiable Exponential Linear Units",
    params={"alpha": 1.0}, param_ranges={"alpha": (1e-12, None)},
    forward=lambda x, alpha: torch.where(x > 0, x, alpha * torch.expm1(x.clamp(max=0.0) / alpha)),
    derivative=lambda x, alpha: torch.where(x <= 0, torch.exp(x.clamp(max=0.0) / alpha), 1.0),
    native="F.celu", native_factory=lambda p: (lambda x: F.celu(x, p["alpha"])),
)


def _isrlu(x: Tensor, alpha: float) -> Tensor:
    return torch.where(x >= 0, x, _isru(x, alpha))


spec(
    name="isrlu", family="exponential", formula="f(x) = x if x >= 0 else x / sqrt(1 + alpha x^2)",
    reference="Carlile et al. 2017, Improving Deep Learning by Inverse Square Root Linear Units",
    params={"alpha": 1.0}, param_ranges={"alpha": (1e-12, None)},
    forward=_isrlu,
    derivative=lambda x, alpha: torch.where(x >= 0, torch.ones_like(x), _isru_prime(x, alpha)),
)


def _elish(x: Tensor) -> Tensor:
    return torch.where(x >= 0, x, torch.expm1(x.clamp(max=0.0))) * torch.sigmoid(x)


def _elish_prime(x: Tensor) -> Tensor:
    s, sp = torch.sigmoid(x), _sig_prime(x)
    xn = x.clamp(max=0.0)
    return torch.where(x >= 0, s + _finite(x) * sp, torch.exp(xn) * s + torch.expm1(xn) * sp)


spec(
    name="elish", family="exponential",
    formula="f(x) = x sigmoid(x) if x >= 0 else (e^x - 1) sigmoid(x)",
    reference="Basirat & Roth 2018, The Quest for the Golden Activation Function",
    forward=_elish, derivative=_elish_prime,
)

# ----------------------------------------------------------------------------- smooth gates
spec(
    name="gelu", aliases=("gelu_erf",), family="gating",
    formula="f(x) = x Phi(x) = x/2 (1 + erf(x / sqrt 2))",
    reference="Hendrycks & Gimpel 2016, Gaussian Error Linear Units",
    forward=lambda x: x * _Phi(x),
    derivative=lambda x: _Phi(x) + x * _phi(x),
    native="F.gelu", native_factory=lambda p: F.gelu,
)


def _gelu_tanh_u(x: Tensor) -> tuple[Tensor, Tensor]:
    # 0.5 (1 + tanh(v)) = sigmoid(2 v): no 1 + (-1) cancellation in the lower tail
    u = 2.0 * GELU_TANH_K * (x + 0.044715 * x * x * x)
    du = 2.0 * GELU_TANH_K * (1.0 + 3.0 * 0.044715 * x * x)
    return u, du


def _gelu_tanh(x: Tensor) -> Tensor:
    u, _ = _gelu_tanh_u(x)
    return x * torch.sigmoid(u)


def _gelu_tanh_prime(x: Tensor) -> Tensor:
    u, du = _gelu_tanh_u(x)
    return torch.sigmoid(u) + x * _sig_prime(u) * du


spec(
    name="gelu_tanh", aliases=("gelu_approx", "gelu_new"), family="gating",
    formula="f(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
    reference="Hendrycks & Gimpel 2016 (tanh approximation, used by GPT-2 and BERT)",
    forward=_gelu_tanh, derivative=_gelu_tanh_prime,
    native="F.gelu(approximate='tanh')",
    native_factory=lambda p: (lambda x: F.gelu(x, approximate="tanh")),
)
spec(
    name="quick_gelu", aliases=("gelu_sigmoid",), family="gating",
    formula="f(x) = x sigmoid(1.702 x)",
    reference="Hendrycks & Gimpel 2016 (sigmoid approximation, used by CLIP)",
    forward=lambda x: _lower(x) * torch.sigmoid(1.702 * x),
    derivative=lambda x: torch.sigmoid(1.702 * x) + 1.702 * _finite(x) * _sig_prime(1.702 * x),
)


def _silu_native(p):
    return F.silu if p["beta"] == 1.0 else None


spec(
    name="silu", aliases=("swish", "swish1"), family="gating",
    formula="f(x) = x sigmoid(beta x)",
    reference=(
        "Elfwing et al. 2018 (SiLU); "
        "Ramachandran et al. 2017, Searching for Activation Functions (Swish)"
    ),
    params={"beta": 1.0}, learnable=("beta",),
    forward=lambda x, beta: x * torch.sigmoid(beta * x),
    derivative=lambda x, beta: torch.sigmoid(beta * x) + beta * x * _sig_prime(beta * x),
    native="F.silu", native_factory=_silu_native,
)


def _mish(x: Tensor) -> Tensor:
    return x * torch.tanh(_softplus(x))


def _mish_prime(x: Tensor) -> Tensor:
    sp = _softplus(x)
    return torch.tanh(sp) + x * _sech2(sp) * torch.sigmoid(x)


spec(
    name="mish", family="gating", formula="f(x) = x tanh(softplus(x))",
    reference="Misra 2019, Mish: A Self Regularized Non-Monotonic Activation Function",
    forward=_mish, derivative=_mish_prime,
    native="F.mish", native_factory=lambda p: F.mish,
)
spec(
    name="hardswish", aliases=("hard_swish",), family="gating",
    formula="f(x) = x relu6(x + 3) / 6",
    reference="Howard et al. 2019, Searching for MobileNetV3",
    forward=lambda x: x * F.relu6(x + 3.0) / 6.0,
    # at the kinks +-3: the values of PyTorch's native backward and of autograd (0 and 1)
    derivative=lambda x: torch.where(
        x <= -3.0, torch.zeros_like(x), torch.where(x < 3.0, x / 3.0 + 0.5, torch.ones_like(x))
    ),
    native="F.hardswish", native_factory=lambda p: F.hardswish,
    kinks=lambda: (-3.0, 3.0),
)


def _serf(x: Tensor) -> Tensor:
    return _lower(x) * torch.erf(_softplus(x))


def _serf_prime(x: Tensor) -> Tensor:
    sp = _softplus(x)
    k = 2.0 / math.sqrt(math.pi)
    return torch.erf(sp) + _finite(x) * k * torch.exp(-sp * sp) * torch.sigmoid(x)


spec(
    name="serf", family="gating", formula="f(x) = x erf(softplus(x))",
    reference="Nag & Bhattacharyya 2021, SERF: Towards better training of deep neural networks",
    forward=_serf, derivative=_serf_prime,
)


def _tanhexp(x: Tensor) -> Tensor:
    # tanh(e^x) == 1 in float64 once x > 20, so clamping keeps e^x finite and f exact
    return _lower(x) * torch.tanh(torch.exp(x.clamp(max=20.0)))


def _tanhexp_prime(x: Tensor) -> Tensor:
    e = torch.exp(x.clamp(max=20.0))
    return torch.tanh(e) + _finite(x) * (e * _sech2(e))


spec(
    name="tanhexp", family="gating", formula="f(x) = x tanh(e^x)",
    reference="Liu & Di 2020, TanhExp: A Smooth Activation Function with High Convergence Speed",
    forward=_tanhexp, derivative=_tanhexp_prime,
)
spec(
    name="lisht", family="gating", formula="f(x) = x tanh(x)",
    reference="Roy et al. 2019, LiSHT: Non-Parametric Linearly Scaled Hyperbolic Tangent",
    forward=lambda x: x * torch.tanh(x),
    derivative=lambda x: torch.tanh(x) + _finite(x) * _sech2(x),
)


def _smelu(x: Tensor, beta: float) -> Tensor:
    quad = (x + beta).square() / (4.0 * beta)
    return torch.where(x >= beta, x, torch.where(x <= -beta, torch.zeros_like(x), quad))


def _smelu_prime(x: Tensor, beta: float) -> Tensor:
    lin = (x + beta) / (2.0 * beta)
    inner = torch.where(x <= -beta, torch.zeros_like(x), lin)
    return torch.where(x >= beta, torch.ones_like(x), inner)


spec(
    name="smelu", family="relu",
    formula="f(x) = 0 if x <= -beta; (x + beta)^2 / (4 beta) if |x| < beta; x if x >= beta",
    reference=(
        "Shamir et al. 2022, Real World Large Scale Recommendation Systems "
        "Reproducibility and Smooth Activations"
    ),
    params={"beta": 2.0}, param_ranges={"beta": (1e-6, None)},
    forward=_smelu, derivative=_smelu_prime,
)

# ------------------------------------------------------------------------ softplus and shrinkage
spec(
    name="softplus", family="softplus",
    formula="f(x) = log(1 + e^(beta x)) / beta  (x where beta x > threshold)",
    reference="Dugas et al. 2001, Incorporating Second-Order Functional Knowledge",
    params={"beta": 1.0, "threshold": 20.0}, param_ranges={"beta": (1e-12, None)},
    forward=lambda x, beta, threshold: torch.where(
        beta * x > threshold, x, _softplus(beta * x) / beta
    ),
    derivative=lambda x, beta, threshold: torch.where(
        beta * x > threshold, torch.ones_like(x), torch.sigmoid(beta * x)
    ),
    native="F.softplus",
    native_factory=lambda p: (lambda x: F.softplus(x, p["beta"], p["threshold"])),
    kinks=lambda beta, threshold: (threshold / beta,),
)


# Taylor coefficients of x - tanh(x) = sum_k c_k x^(2k+3), k = 0..11 (from Bernoulli numbers)
_TANHSHRINK_SERIES = (
    1.0 / 3.0, -2.0 / 15.0, 17.0 / 315.0, -62.0 / 2835.0, 8.8632355299021965689e-3,
    -3.5921280365724810169e-3, 1.4558343870513182682e-3, -5.9002744094558598138e-4,
    2.3912911424355248149e-4, -9.6915379569294503256e-5, 3.9278323883316834053e-5,
    -1.5918905069328964741e-5,
)
_TANHSHRINK_SWITCH = 0.3


def _tanhshrink(x: Tensor) -> Tensor:
    # x - tanh(x) loses ~6 eps / x^2 relative to cancellation for small |x|: below 0.3
    # use the series (truncation error < 1e-17 relative there); above it the loss is < 70 eps
    x2 = x * x
    acc = torch.full_like(x, _TANHSHRINK_SERIES[-1])
    for c in reversed(_TANHSHRINK_SERIES[:-1]):
        acc = acc * x2 + c
    return torch.where(x.abs() < _TANHSHRINK_SWITCH, x * x2 * acc, x - torch.tanh(x))


spec(
    name="tanhshrink", family="shrinkage", formula="f(x) = x - tanh(x)",
    reference="torch.nn.Tanhshrink",
    forward=_tanhshrink, derivative=lambda x: torch.tanh(x).square(),
    native="F.tanhshrink", native_factory=lambda p: F.tanhshrink,
)
spec(
    name="softshrink", family="shrinkage",
    formula="f(x) = x - lambd if x > lambd; x + lambd if x < -lambd; else 0",
    reference="Donoho 1995, soft thresholding",
    params={"lambd": 0.5}, param_ranges={"lambd": (0.0, None)},
    forward=lambda x, lambd: torch.where(
        x > lambd, x - lambd, torch.where(x < -lambd, x + lambd, x * 0.0)
    ),
    derivative=lambda x, lambd: _step(~(x.abs() <= lambd), x),
    native="F.softshrink", native_factory=lambda p: (lambda x: F.softshrink(x, p["lambd"])),
    kinks=lambda lambd: (-lambd, lambd),
)
spec(
    name="hardshrink", family="shrinkage", formula="f(x) = x if |x| > lambd else 0",
    reference="Donoho & Johnstone 1994, hard thresholding",
    params={"lambd": 0.5}, param_ranges={"lambd": (0.0, None)},
    forward=lambda x, lambd: torch.where(x.abs() <= lambd, 0.0, x),
    derivative=lambda x, lambd: _step(~(x.abs() <= lambd), x),
    native="F.hardshrink", native_factory=lambda p: (lambda x: F.hardshrink(x, p["lambd"])),
    kinks=lambda lambd: (-lambd, lambd), continuous=False,
)


def _bent(x: Tensor) -> Tensor:
    # (sqrt(x^2 + 1) - 1) / 2 = x^2 / (2 (sqrt(x^2 + 1) + 1)): no cancellation near 0
    xf = _finite(x)  # x / (h + 1) is +-1, not inf/inf, at +-inf
    h = torch.hypot(xf, torch.ones_like(x))
    return x * (1.0 + 0.5 * (xf / (h + 1.0)))  # -inf at -inf, not -inf + inf


spec(
    name="bent_identity", aliases=("bent",), family="other",
    formula="f(x) = (sqrt(x^2 + 1) - 1) / 2 + x",
    reference="bent identity (e.g. Godfrey & Gashler 2015)",
    forward=_bent,
    derivative=lambda x: 0.5 * _finite(x) / torch.hypot(_finite(x), torch.ones_like(x)) + 1.0,
)
spec(
    name="gaussian", family="other", formula="f(x) = exp(-x^2)",
    reference="radial basis activation (Broomhead & Lowe 1988)",
    forward=lambda x: torch.exp(-x * x),
    derivative=lambda x: -2.0 * _finite(x) * torch.exp(-x * x),
)
spec(
    name="sine", aliases=("sin", "siren"), family="periodic", formula="f(x) = sin(w0 x)",
    reference=(
        "Sitzmann et al. 2020, Implicit Neural Representations with Periodic Activation Functions"
    ),
    params={"w0": 1.0},
    forward=lambda x, w0: torch.sin(w0 * x), derivative=lambda x, w0: w0 * torch.cos(w0 * x),
)
def _snake_d(x: Tensor, alpha: float | Tensor) -> Tensor:
    # 1 + sin(2 alpha x) = 2 sin^2(alpha x + pi/4): exact near the double roots of f',
    # where 1 + sin(...) cancels to ~eps absolute (relative error ~1e-3 in float32)
    return 2.0 * torch.sin(alpha * x + math.pi / 4).square()


spec(
    name="snake", family="periodic", formula="f(x) = x + sin^2(alpha x) / alpha",
    reference=(
        "Ziyin et al. 2020, Neural Networks Fail to Learn Periodic Functions and How to Fix It"
    ),
    params={"alpha": 1.0}, learnable=("alpha",), learned_by_default=("alpha",),
    param_ranges={"alpha": (1e-9, None)},
    forward=lambda x, alpha: x + torch.sin(alpha * _finite(x)).square() / alpha,
    derivative=_snake_d,
)

# ----------------------------------------------------------------------------- GLU family (gated)
# forward(a, b): a is the value half, b the gate half (torch.nn.functional.glu's order)
spec(
    name="glu", family="gated", formula="f(a, b) = a sigmoid(b),  [a, b] = split(x, 2, dim=-1)",
    reference="Dauphin et al. 2017, Language Modeling with Gated Convolutional Networks",
    gated=True,
    forward=lambda a, b: a * torch.sigmoid(b),
    derivative=lambda a, b: (torch.sigmoid(b), a * _sig_prime(b)),
    native="F.glu", native_factory=lambda p: (lambda x: F.glu(x, dim=-1)),
)
spec(
    name="reglu", family="gated", formula="f(a, b) = a relu(b)",
    reference="Shazeer 2020, GLU Variants Improve Transformer",
    gated=True,
    forward=lambda a, b: a * torch.relu(b),
    derivative=lambda a, b: (torch.relu(b), a * _step_nan(b > 0, b)),
    kinks=lambda: (0.0,),
)
spec(
    name="geglu", family="gated", formula="f(a, b) = a gelu(b)",
    reference="Shazeer 2020, GLU Variants Improve Transformer",
    gated=True,
    forward=lambda a, b: a * (_lower(b) * _Phi(b)),
    derivative=lambda a, b: (_lower(b) * _Phi(b), a * (_Phi(b) + _finite(b) * _phi(b))),
)
spec(
    name="swiglu", family="gated", formula="f(a, b) = a silu(b)",
    reference="Shazeer 2020, GLU Variants Improve Transformer",
    gated=True,
    forward=lambda a, b: a * (_lower(b) * torch.sigmoid(b)),
    derivative=lambda a, b: (
        _lower(b) * torch.sigmoid(b), a * (torch.sigmoid(b) + _finite(b) * _sig_prime(b))
    ),
)
spec(
    name="bilinear", family="gated", formula="f(a, b) = a b",
    reference="Shazeer 2020, GLU Variants Improve Transformer",
    gated=True,
    forward=lambda a, b: a * b,
    derivative=lambda a, b: (b.clone(), torch.where(_nan(b), b, a)),
)

# ----------------------------------------------------------------------------- recent, learnable
# Each gives the analytic partial derivatives of f with respect to its learnable
# parameters (``param_derivative``): the memory-efficient and fast backwards use them.


def _as_param(v: float | Tensor, x: Tensor) -> Tensor:
    """A parameter as a tensor next to x (a learned one is already a tensor)."""
    return v if isinstance(v, Tensor) else torch.tensor(v, dtype=x.dtype, device=x.device)


def _sign(v: float | Tensor) -> float | Tensor:
    return torch.sign(v) if isinstance(v, Tensor) else float((v > 0) - (v < 0))


def _softplus_inverse(y: float) -> float:
    """The a with softplus(a) = y > 0: log(expm1(y)), without cancellation."""
    return y + math.log(-math.expm1(-y))


XIELU_ALPHA_P = 0.8
XIELU_ALPHA_N = 0.8
XIELU_BETA = 0.5
XIELU_EPS = -1e-6


def _xielu_alphas(x: Tensor, a_p, a_n, beta) -> tuple[Tensor, Tensor]:
    """``(alpha_p, alpha_n) = (softplus(a_p), beta + softplus(a_n))``."""
    return F.softplus(_as_param(a_p, x)), beta + F.softplus(_as_param(a_n, x))


def _xielu_neg(x: Tensor, eps) -> Tensor:
    """expm1(min(x, eps)) - x, finite for every x.

    It cancels for small |x| (~x^2 / 2 from two terms ~x), but its absolute error stays
    ~eps |x|, and f = beta x + alpha_n (this) is ~beta x there: f keeps full relative
    accuracy in every dtype (checked against mpmath and float64).
    """
    return torch.expm1(x.clamp(max=eps)) - x


def _xielu(x: Tensor, a_p, a_n, beta, eps) -> Tensor:
    alpha_p, alpha_n = _xielu_alphas(x, a_p, a_n, beta)
    xp = x.clamp(min=0.0)
    # x <= 0 as alpha_n expm1(min(x, eps)) + (beta - alpha_n) x: the same value, and the
    # limit +inf at x = -inf (beta x + alpha_n (expm1(x) - x) would be -inf + inf there)
    neg = alpha_n * torch.expm1(x.clamp(max=eps)) + (beta - alpha_n) * x
    return torch.where(x > 0, beta * x + alpha_p * xp * xp, neg)


def _xielu_prime(x: Tensor, a_p, a_n, beta, eps) -> Tensor:
    alpha_p, alpha_n = _xielu_alphas(x, a_p, a_n, beta)
    # x <= eps: alpha_n (e^x - 1) + beta; eps < x <= 0: min(x, eps) = eps is constant
    # (written so that NaN takes the expm1 branch and stays NaN)
    neg = torch.where(x > eps, -alpha_n, alpha_n * torch.expm1(x.clamp(max=eps)))
    return beta + torch.where(x > 0, 2.0 * alpha_p * x.clamp(min=0.0), neg)


def _xielu_params(x: Tensor, a_p, a_n, beta, eps) -> dict[str, Tensor]:
    pos = x > 0
    xp = x.clamp(min=0.0)
    zero = torch.zeros_like(x)
    return {
        "a_p": torch.where(pos, xp * xp * torch.sigmoid(_as_param(a_p, x)), zero),
        "a_n": torch.where(pos, zero, _xielu_neg(x, eps) * torch.sigmoid(_as_param(a_n, x))),
    }


spec(
    name="xielu", family="exponential",
    formula=(
        "f(x) = alpha_p x^2 + beta x if x > 0 else alpha_n (expm1(min(x, eps)) - x) + beta x, "
        "alpha_p = softplus(a_p), alpha_n = beta + softplus(a_n)"
    ),
    reference=(
        "Huang & Schlag 2024, Deriving Activation Functions Using Integration (used in the "
        "Apertus models); reference code: github.com/rubber-duck-debug/xielu, "
        "xielu/ops/wrappers.py (alpha_p = alpha_n = 0.8, beta = 0.5, eps = -1e-6)"
    ),
    params={
        "a_p": _softplus_inverse(XIELU_ALPHA_P),
        "a_n": _softplus_inverse(XIELU_ALPHA_N - XIELU_BETA),
        "beta": XIELU_BETA,
        "eps": XIELU_EPS,
    },
    learnable=("a_p", "a_n"), learned_by_default=("a_p", "a_n"),
    param_ranges={"eps": (None, 0.0)},
    forward=_xielu, derivative=_xielu_prime, param_derivative=_xielu_params,
    # f' jumps at eps and at 0; f itself jumps at 0 by alpha_n expm1(eps) (-8e-7 at the
    # initial values), as in the reference code
    kinks=lambda a_p, a_n, beta, eps: tuple(sorted({eps, 0.0})),
    continuous=False,
)

# StarReLU: E[relu(z)^2] = 1/2, E[relu(z)^4] = 3/2, so s = 1 / sqrt(3/2 - 1/4) = 2 / sqrt(5)
# and b = -s / 2 give zero mean and unit variance for z ~ N(0, 1); the paper rounds them
STAR_RELU_S = 0.8944
STAR_RELU_B = -0.4472

spec(
    name="star_relu", aliases=("starrelu",), family="relu",
    formula="f(x) = s relu(x)^2 + b",
    reference=(
        "Yu et al. 2022, MetaFormer Baselines for Vision (s = 0.8944, b = -0.4472: zero mean "
        "and unit variance for N(0, 1) inputs); reference code: github.com/sail-sg/metaformer, "
        "metaformer_baselines.py"
    ),
    params={"s": STAR_RELU_S, "b": STAR_RELU_B},
    learnable=("s", "b"), learned_by_default=("s", "b"),
    forward=lambda x, s, b: s * torch.relu(x).square() + b,
    derivative=lambda x, s, b: 2.0 * s * torch.relu(x),
    param_derivative=lambda x, s, b: {"s": torch.relu(x).square(), "b": torch.ones_like(x)},
)

# PAU (Molina et al. 2020), "safe" denominator (version A): P(x) / (1 + sum_k |b_k| |x|^k),
# numerator degree 5, denominator degree 4, initialised to the least-squares fit of
# leaky ReLU (slope 0.01) on [-3, 3] published by the authors' rational_activations package
# (rational/rationals_config.json, "Rational_version_A5/4" -> "leaky_relu")
PAU_NUMERATOR = (
    0.029792778657264946, 0.6183735264987601, 2.323309062531321, 3.051936237265109,
    1.4854203263828845, 0.2510244961111299,
)
PAU_DENOMINATOR = (
    -1.1419548357285474, 4.393159974992486, 0.8714712309957245, 0.34719662339598834,
)
PAU_A = tuple(f"a{k}" for k in range(6))
PAU_B = tuple(f"b{k}" for k in range(1, 5))


def _pau_frame(x: Tensor, p: dict) -> tuple[list, list, Tensor, Tensor, Tensor]:
    """``(a, |b|, small, xs, t)``: coefficients, ``|x| <= 1``, x there (else 0), 1/x elsewhere.

    ``|x| <= 1``: P(x) / Q(x) directly. ``|x| > 1``: numerator and denominator divided by
    x^4 (t = 1/x, s = |t|): N = a5 x + a4 + a3 t + a2 t^2 + a1 t^3 + a0 t^4 and
    D = |b4| + |b3| s + |b2| s^2 + |b1| s^3 + s^4, so nothing overflows (x^5 would at
    |x| > 5e7 in float32). Both forms are finite everywhere (torch.where's rule).
    """
    small = x.abs() <= 1.0
    xs = torch.where(small, x, torch.zeros_like(x))
    t = 1.0 / torch.where(small, torch.ones_like(x), x)
    return [p[n] for n in PAU_A], [abs(p[n]) for n in PAU_B], small, xs, t


def _horner(coeffs: list, z: Tensor) -> Tensor:
    """``c[0] + c[1] z + ... + c[n] z^n`` by Horner's rule (``coeffs`` lowest degree first).

    Plain multiply-and-add whatever the coefficients' type (floats, or learned 0-d
    tensors), so that a module and its Activation give the same bits.
    """
    acc = coeffs[-1]
    for c in reversed(coeffs[:-1]):
        acc = acc * z + c  # a tensor of z's shape from the first step on
    return acc


def _pau_values(a: list, B: list, xs: Tensor, t: Tensor) -> tuple[Tensor, ...]:
    """P(xs), Q(xs) (direct form) and N(t), D(t) (reversed form)."""
    P = _horner(a, xs)
    Q = _horner([1.0, *B], xs.abs())
    N = _horner(a[4::-1], t) + a[5] / t  # a4 + a3 t + ... + a0 t^4, plus the a5 x term
    D = _horner([*B[::-1], 1.0], t.abs())
    return P, Q, N, D


def _pau(x: Tensor, **p) -> Tensor:
    a, B, small, xs, t = _pau_frame(x, p)
    P, Q, N, D = _pau_values(a, B, xs, t)
    return torch.where(small, P / Q, N / D)


def _pau_prime(x: Tensor, **p) -> Tensor:
    a, B, small, xs, t = _pau_frame(x, p)
    P, Q, _, D = _pau_values(a, B, xs, t)
    ax, s, sgn = xs.abs(), t.abs(), torch.sign(x)
    # direct: f' = (P' - f Q') / Q, Q' = sign(x) (|b1| + 2 |b2| |x| + 3 |b3| x^2 + 4 |b4| |x|^3)
    dP = _horner([k * a[k] for k in range(1, 6)], xs)
    dQ = _horner([k * B[k - 1] for k in range(1, 5)], ax)
    f_small = P / Q
    d_small = (dP - f_small * sgn * dQ) / Q
    # reversed: f' = (dN/dx - f dD/dx) / D, dt/dx = -t^2, ds/dx = -sign(x) t^2
    dN = _horner([a[3], 2 * a[2], 3 * a[1], 4 * a[0]], t)  # dN/dt without the a5 x term
    dD = _horner([B[2], 2 * B[1], 3 * B[0], 4.0], s)  # dD/ds
    t2 = t * t
    f_t2 = (_horner(a[4::-1], t) * t2 + a[5] * t) / D  # f t^2, finite (0) at x = +-inf
    d_big = (a[5] - t2 * dN + f_t2 * sgn * dD) / D
    return torch.where(small, d_small, d_big)


def _pau_params(x: Tensor, **p) -> dict[str, Tensor]:
    a, B, small, xs, t = _pau_frame(x, p)
    P, Q, N, D = _pau_values(a, B, xs, t)
    f = torch.where(small, P / Q, N / D)
    ax, s = xs.abs(), t.abs()
    inv_q, inv_d = 1.0 / Q, 1.0 / D
    out = {}
    # df/da_k = x^k / Q: x^k / Q directly, t^(4-k) / D reversed (x / D for k = 5)
    for k, name in enumerate(PAU_A):
        big = (1.0 / t) * inv_d if k == 5 else t ** (4 - k) * inv_d
        out[name] = torch.where(small, xs**k * inv_q, big)
    # df/db_k = -sign(b_k) |x|^k f / Q (|x|^k / Q = s^(4-k) / D reversed)
    for k, name in enumerate(PAU_B, start=1):
        w = torch.where(small, ax**k * inv_q, s ** (4 - k) * inv_d)
        out[name] = -_sign(p[name]) * w * f
    return out


spec(
    name="pau", aliases=("pade", "pade_activation_unit"), family="rational",
    formula="f(x) = (a0 + a1 x + ... + a5 x^5) / (1 + |b1 x| + |b2 x^2| + |b3 x^3| + |b4 x^4|)",
    reference=(
        "Molina et al. 2020, Pade Activation Units: End-to-end Learning of Flexible Activation "
        "Functions in Deep Networks (safe PAU, degrees 5/4); initial coefficients: leaky ReLU "
        "fit of github.com/ml-research/rational_activations, rational/rationals_config.json"
    ),
    params=dict(zip(PAU_A + PAU_B, PAU_NUMERATOR + PAU_DENOMINATOR, strict=True)),
    learnable=PAU_A + PAU_B, learned_by_default=PAU_A + PAU_B,
    forward=_pau, derivative=_pau_prime, param_derivative=_pau_params,
    # |b1 x| makes f' jump at 0 (the other |b_k x^k| are smooth enough there)
    kinks=lambda **p: (0.0,) if p["b1"] != 0 else (),
)


def _dyt_params(x: Tensor, alpha, gamma, beta) -> dict[str, Tensor]:
    z = alpha * x
    return {"alpha": gamma * x * _sech2(z), "gamma": torch.tanh(z), "beta": torch.ones_like(x)}


spec(
    name="dyt", aliases=("dynamic_tanh",), family="sigmoid",
    formula="f(x) = gamma tanh(alpha x) + beta  (gamma, beta per channel: the last dimension)",
    reference=(
        "Zhu et al. 2025, Transformers without Normalization (alpha = 0.5, gamma = 1, "
        "beta = 0); reference code: github.com/jiachenzhu/DyT, dynamic_tanh.py"
    ),
    params={"alpha": 0.5, "gamma": 1.0, "beta": 0.0},
    learnable=("alpha", "gamma", "beta"), learned_by_default=("alpha", "gamma", "beta"),
    per_channel={"gamma": -1, "beta": -1},
    forward=lambda x, alpha, gamma, beta: gamma * torch.tanh(alpha * x) + beta,
    derivative=lambda x, alpha, gamma, beta: gamma * alpha * _sech2(alpha * x),
    param_derivative=_dyt_params,
)
