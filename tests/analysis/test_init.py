"""``actlab.init_``: gains against SciPy quadrature, the activation each layer reads (fx and
module order), the forward second moment through 32 layers against PyTorch's default."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate, special
from torch import nn

import actlab
from actlab.analysis import act_moments, init_, q_map

PHI = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731


def quad_gain(f, points=(0.0,)) -> float:
    """1 / sqrt(E[f(z)^2]), z ~ N(0, 1), by SciPy's adaptive quadrature."""
    edges = [-np.inf, *points, np.inf]
    m2 = sum(
        integrate.quad(lambda z: f(z) ** 2 * PHI(z), lo, hi, epsabs=1e-14, epsrel=1e-12)[0]
        for lo, hi in itertools.pairwise(edges)
    )
    return 1.0 / math.sqrt(m2)


REFERENCES = {
    "relu": math.sqrt(2.0),
    "tanh": quad_gain(np.tanh),
    "gelu": quad_gain(lambda z: z * special.ndtr(z)),
    "silu": quad_gain(lambda z: z * special.expit(z)),
    "mish": quad_gain(lambda z: z * np.tanh(np.logaddexp(0.0, z))),
    "elu": quad_gain(lambda z: z if z > 0 else math.expm1(z)),
}
TORCH = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU, "mish": nn.Mish,
         "elu": nn.ELU}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_the_layer_after_an_activation_gets_its_gain(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1024, 1024), TORCH[name](), nn.Linear(1024, 1000))
    done = init_(model)
    assert [(r.name, r.activation, r.source) for r in done] == [
        ("0", None, "fx"), ("2", name, "fx")]
    first, second = done
    assert first.gain == 1.0 and first.std == pytest.approx(1 / 32)
    assert second.gain == pytest.approx(REFERENCES[name], rel=1e-9)
    assert second.std == pytest.approx(REFERENCES[name] / 32, rel=1e-9)
    # the weights drawn: about 1e6 samples, the std within 1% (its error is ~0.07%)
    assert model[2].weight.std().item() == pytest.approx(second.std, rel=1e-2)
    assert abs(model[2].weight.mean().item()) < 5 * second.std / 1000
    assert not model[2].bias.any() and not model[0].bias.any()


def _moments(model: nn.Sequential, x: torch.Tensor) -> list[float]:
    """E[h^2] of each Linear layer's output over the batch and the units."""
    out = []
    with torch.no_grad():
        for m in model:
            x = m(x)
            if isinstance(m, nn.Linear):
                out.append(float(x.pow(2).mean()))
    return out


def _deep(name: str, seed: int, depth: int = 32, width: int = 256) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width),
                                                              TORCH[name]())])


def _batch(seed: int) -> torch.Tensor:
    return torch.randn(128, 256, generator=torch.Generator().manual_seed(100 + seed))


@pytest.mark.parametrize(("name", "low", "high"), [("tanh", 0.5, 2.0), ("elu", 0.5, 2.0),
                                                   ("mish", 0.1, 10.0)])
def test_second_moment_stays_of_order_one_through_32_layers(name, low, high):
    """Tanh and ELU: the variance map's fixed point q = 1 is stable (slopes 0.46, 0.89);
    Mish: nearly neutral (1.08), so it wanders more but stays of order one."""
    for seed in range(2):
        x = _batch(seed)
        model = _deep(name, seed)
        default = _moments(model, x)  # PyTorch's default init: gain 1/sqrt(3), uniform bias
        assert default[-1] < 1e-2, (name, seed, default[-1])  # collapsed to the bias floor
        init_(model)
        ours = _moments(model, x)
        assert low < min(ours) and max(ours) < high, (name, seed, min(ours), max(ours))


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_gelu_and_silu_keep_the_moment_early_but_their_fixed_point_is_unstable(name):
    """init_ puts every layer at q = E[h^2] = 1, a fixed point of the variance map
    q -> gain^2 E[f(sqrt(q) z)^2]; for GELU and SiLU its slope there is above one (1.14,
    1.17), so per-input deviations grow with depth (some inputs collapse, others explode),
    as mean-field theory predicts, whatever the gain."""
    assert REFERENCES[name] ** 2 * act_moments(name).zffp > 1.1  # the slope at q = 1
    x = _batch(0)
    model = _deep(name, 0)
    default = _moments(model, x)
    init_(model)
    ours = _moments(model, x)
    assert all(0.5 < q < 2.0 for q in ours[:6]) and default[5] < 1e-2
    with torch.no_grad():
        per_input = model(x).pow(2).mean(dim=1)
    assert per_input.max() / per_input.min() > 100.0


@pytest.mark.parametrize(("name", "grows"), [("gelu", 100.0), ("silu", 1e4), ("mish", 10.0)])
def test_pairing_with_the_activation_after_the_layer_would_leave_the_fixed_point(name, grows):
    """Mean-field, 30 layers: the first layer reads the data, not an activation; giving it
    the gain too (PyTorch's habit with calculate_gain) starts at q = gain^2 instead of 1,
    and the variance map carries it away (x189, x3e4, x24) while init_'s q stays at 1."""
    g2 = REFERENCES[name] ** 2
    ours, after = 1.0, g2
    for _ in range(30):
        ours, after = q_map(name, ours, g2), q_map(name, after, g2)
    assert ours == pytest.approx(1.0, abs=1e-6) and after > grows


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 2, 1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Conv2d(cin, cout, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.bn1(self.conv1(x)))
        return F.silu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.norm = nn.BatchNorm2d(8)
        self.proj = nn.Conv2d(8, 8, 1)
        self.block = ConvBlock(8, 16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.proj(self.norm(self.stem(x))))
        h = self.block(h)
        return self.fc(torch.flatten(self.pool(h), 1))


class Untraceable(ConvNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x if x.mean() > 0 else -x)


def test_conv_net_layers_read_their_activations_through_norms_pools_and_functions():
    model = ConvNet()
    done = {r.name: r for r in init_(model)}
    reads = {name: r.activation for name, r in done.items()}
    assert reads == {
        "stem": None,            # reads the input
        "proj": None,            # reads a BatchNorm
        "block.conv1": "tanh",   # reads torch.tanh(...) called in forward
        "block.conv2": "relu",
        "block.shortcut": "tanh",
        "fc": "silu",            # F.silu, then pooling and flatten
    }
    assert {r.source for r in done.values()} == {"fx"}
    conv2 = done["block.conv2"]
    assert conv2.fan == 16 * 9 and conv2.std == pytest.approx(math.sqrt(2.0) / 12)
    assert done["fc"].gain == pytest.approx(REFERENCES["silu"], rel=1e-9)


def test_untraceable_model_falls_back_to_the_module_order():
    done = init_(Untraceable())
    assert done.trace_error.startswith("TraceError")
    assert {r.source for r in done} == {"module order"}
    reads = {r.name: r.activation for r in done}
    # modules only (functional calls are invisible): conv2 follows block.act
    assert reads["block.conv2"] == "relu" and reads["stem"] is None
    assert "the module order was used" in str(done)


@pytest.mark.parametrize(
    ("gated", "reference"),
    [
        (nn.GLU(), quad_gain(special.expit, ())),          # E[a^2 sigmoid(b)^2] = E[sigmoid^2]
        (actlab.get("reglu").module(), math.sqrt(2.0)),     # E[a^2 relu(b)^2] = 1/2
        (actlab.get("bilinear").module(), 1.0),             # E[a^2 b^2] = 1
        (actlab.get("swiglu").module(), REFERENCES["silu"]),
    ],
)
def test_gated_activations_use_the_gain_of_the_gated_value(gated, reference):
    model = nn.Sequential(nn.Linear(8, 32), gated, nn.Linear(16, 8))
    first, second = init_(model)
    assert first.gain == 1.0
    assert second.gain == pytest.approx(reference, rel=1e-6)


def test_learnable_activations_count_at_their_current_parameters():
    prelu = actlab.get("prelu").module()
    with torch.no_grad():
        prelu.alpha.fill_(0.5)
    model = nn.Sequential(nn.Linear(4, 8), nn.PReLU(init=0.25), nn.Linear(8, 8), prelu,
                          nn.Linear(8, 2))
    done = init_(model)
    assert done[1].gain == pytest.approx(math.sqrt(2 / (1 + 0.25**2)), rel=1e-12)
    assert done[2].gain == pytest.approx(math.sqrt(2 / (1 + 0.5**2)), rel=1e-12)


class MyAct(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(2.0 * x)


def test_user_activation_classes_get_their_gain_by_calling_them():
    model = nn.Sequential(nn.Linear(4, 8), MyAct(), nn.Linear(8, 2))
    assert init_(model)[1].activation is None  # not known without match
    done = init_(model, match=(MyAct,))
    assert done[1].activation == "MyAct"
    assert done[1].gain == pytest.approx(quad_gain(lambda z: z * special.expit(2 * z)), rel=1e-8)


def test_fan_out_and_uniform():
    conv = nn.Conv2d(4, 6, 3)
    model = nn.Sequential(nn.Conv2d(2, 4, 1), nn.ReLU(), conv)
    done = init_(model, mode="fan_out", distribution="uniform",
                 generator=torch.Generator().manual_seed(0))
    assert done[1].fan == 6 * 9 and done.mode == "fan_out"
    bound = math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(54)
    assert conv.weight.abs().max().item() <= bound
    assert conv.weight.abs().max().item() > 0.9 * bound
    assert "fan_out" in str(done).splitlines()[0]


def test_generator_makes_it_reproducible_and_bias_can_be_kept():
    a, b = nn.Linear(5, 5), nn.Linear(5, 5)
    with torch.no_grad():
        b.bias.copy_(a.bias)
    init_(a, generator=torch.Generator().manual_seed(3), zero_bias=False)
    bias = b.bias.clone()
    init_(b, generator=torch.Generator().manual_seed(3), zero_bias=False)
    assert torch.equal(a.weight, b.weight) and torch.equal(b.bias, bias)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"mode 'fan_avg' is not known; accepted: fan_in, fan_out"):
        init_(nn.Linear(2, 2), mode="fan_avg")
    with pytest.raises(ValueError, match=r"distribution 'cauchy' is not known"):
        init_(nn.Linear(2, 2), distribution="cauchy")
    with pytest.raises(ValueError, match=r"layer 0 .* has no weights yet"):
        init_(nn.Sequential(nn.LazyLinear(3)))
    with pytest.raises(TypeError, match=r"init_ expects a torch.nn.Module"):
        init_([nn.Linear(2, 2)])
