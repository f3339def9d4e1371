"""Models: shapes, activations as parameters (names, objects, formulas, GLU), references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import actlab
from actlab.catalog import ActivationModule
from actlab.experiments.models import (
    CNN,
    MLP,
    MNIST1DCNN,
    ChannelActivation,
    CharTransformer,
    DeepMLP,
    FeedForward,
    count_params,
)

ACTS = ["relu", "swiglu", "formula:x * tanh(softplus(x))", actlab.get("leaky_relu", alpha=0.2),
        "dyt"]


@pytest.mark.parametrize("act", ACTS, ids=str)
def test_every_model_takes_any_activation(act):
    torch.manual_seed(0)
    assert MLP(64, (32, 16), 10, act)(torch.randn(5, 1, 8, 8)).shape == (5, 10)
    assert DeepMLP(64, 16, 4, 10, act, init="kaiming")(torch.randn(3, 64)).shape == (3, 10)
    assert CNN((1, 8, 8), 10, act)(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert CNN((3, 32, 32), 10, act)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert CNN((40,), 10, act)(torch.randn(2, 40)).shape == (2, 10)
    assert MNIST1DCNN(40, 10, act)(torch.randn(3, 40)).shape == (3, 10)
    assert FeedForward(32, 64, act)(torch.randn(2, 5, 32)).shape == (2, 5, 32)
    lm = CharTransformer(50, block_size=16, d_model=16, n_layer=1, n_head=2, d_ff=32,
                         activation=act)
    assert lm(torch.zeros(2, 16, dtype=torch.long)).shape == (2, 16, 50)


def test_models_use_the_memory_efficient_module():
    m = MLP(4, (8, 8), 2, "gelu")
    assert all(isinstance(a, ActivationModule) for a in m.acts)
    assert isinstance(FeedForward(8, 16, "silu").act, ActivationModule)


def test_mlp_matches_the_articles_network():
    """784-256-128-10 with ReLU equals the article's nn.Sequential with the same weights."""
    torch.manual_seed(0)
    ours = MLP(784, (256, 128), 10, "relu")
    ref = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
                        nn.ReLU(), nn.Linear(128, 10))
    ref[1].load_state_dict(ours.linears[0].state_dict())
    ref[3].load_state_dict(ours.linears[1].state_dict())
    ref[5].load_state_dict(ours.head.state_dict())
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(ours(x), ref(x), atol=1e-6)
    assert count_params(ours) == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10


class ArticleCNN(nn.Module):
    """The seed article's CIFAR CNN, verbatim in structure."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 8 * 8, 128)
        self.fc2 = nn.Linear(128, 10)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.fc1(x.view(-1, 64 * 8 * 8)))
        return self.fc2(x)


def test_cnn_matches_the_articles_cnn():
    torch.manual_seed(1)
    ours = CNN((3, 32, 32), 10, "relu")
    ref = ArticleCNN()
    ref.conv1.load_state_dict(ours.features[0].state_dict())
    ref.conv2.load_state_dict(ours.features[3].state_dict())
    ref.fc1.load_state_dict(ours.fc.state_dict())
    ref.fc2.load_state_dict(ours.head.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(ours(x), ref(x), atol=1e-5)
    assert count_params(ours) == count_params(ref)


def test_mnist1d_cnn_is_the_papers_convbase():
    # conv(1->25,k5) 150 + conv(25->25,k3) 1900 x2 + linear(125->10) 1260 = 5210 parameters
    m = MNIST1DCNN(40, 10, "relu")
    assert count_params(m) == 150 + 1900 + 1900 + 1260
    assert m.head.in_features == 125


def test_residual_mlp_is_the_papers_mlpbase():
    torch.manual_seed(2)
    m = MLP(40, (100, 100), 10, "relu", residual=True)
    x = torch.randn(3, 40)
    h = F.relu(m.linears[0](x))
    h = h + F.relu(m.linears[1](h))
    assert torch.allclose(m(x), m.head(h), atol=1e-6)


def test_glu_layers_double_the_width_before_the_gate():
    m = MLP(64, (32, 16), 10, "swiglu")
    assert [lin.out_features for lin in m.linears] == [64, 32]
    x = torch.randn(4, 64)
    a, b = m.linears[0](x).chunk(2, dim=-1)
    h = a * F.silu(b)  # swiglu(a, b) = a silu(b)
    a2, b2 = m.linears[1](h).chunk(2, dim=-1)
    assert torch.allclose(m(x), m.head(a2 * F.silu(b2)), atol=1e-5)


def test_gated_channel_activation_splits_channels():
    act = ChannelActivation("swiglu")
    x = torch.randn(2, 6, 5, 4)
    expect = x[:, :3] * F.silu(x[:, 3:])
    assert torch.allclose(act(x), expect, atol=1e-6)
    x1 = torch.randn(2, 6, 7)
    assert torch.allclose(act(x1), x1[:, :3] * F.silu(x1[:, 3:]), atol=1e-6)


def test_gated_cnn_gradients_are_right():
    torch.manual_seed(3)
    m = CNN((1, 4, 4), 3, "geglu", channels=(2,), hidden=4).double()
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: m(t), (x,))


def test_ffn_gated_variant_keeps_the_parameter_count():
    plain = FeedForward(512, 2048, "gelu", bias=False)
    gated = FeedForward(512, 2048, "swiglu", bias=False)
    assert gated.d_hidden == round(2 / 3 * 2048) == 1365
    assert count_params(plain) == 2 * 512 * 2048
    assert abs(count_params(gated) / count_params(plain) - 1) < 1e-3


def test_ffn_matches_the_articles_block():
    torch.manual_seed(4)
    ffn = FeedForward(16, 64, "gelu")
    x = torch.randn(3, 7, 16)
    ref = F.linear(F.gelu(F.linear(x, ffn.up.weight, ffn.up.bias)), ffn.down.weight, ffn.down.bias)
    assert torch.allclose(ffn(x), ref, atol=1e-5)


def test_char_transformer_is_causal():
    torch.manual_seed(5)
    lm = CharTransformer(20, block_size=8, d_model=16, n_layer=2, n_head=2, d_ff=32).eval()
    a = torch.randint(0, 20, (1, 8))
    b = a.clone()
    b[0, 5:] = (b[0, 5:] + 1) % 20  # change only the future of position 4
    assert torch.allclose(lm(a)[0, :5], lm(b)[0, :5], atol=1e-6)
    assert not torch.allclose(lm(a)[0, 5:], lm(b)[0, 5:])


def test_deep_mlp_depth_and_init():
    m = DeepMLP(10, 32, 7, 3, "tanh", init="xavier")
    assert len(m.linears) == 7 and all(not lin.bias.detach().any() for lin in m.linears)
    torch.manual_seed(0)
    wide = DeepMLP(512, 512, 1, 3, "relu", init="kaiming")
    assert abs(float(wide.linears[0].weight.detach().var()) - 2 / 512) < 2e-4


def test_bad_model_arguments():
    with pytest.raises(ValueError, match=r"input shape must be \(C, H, W\), \(C, L\) or \(L,\)"):
        CNN((1, 2, 3, 4))
    with pytest.raises(ValueError, match="depth must be at least 1"):
        DeepMLP(4, 4, 0)
    with pytest.raises(ValueError, match="unknown init 'orthogonal'"):
        DeepMLP(4, 4, 2, init="orthogonal")
    with pytest.raises(ValueError, match="layer sizes must be positive"):
        MLP(4, (0,), 2)
    with pytest.raises(ValueError, match="exceeds block_size 4"):
        CharTransformer(5, block_size=4, d_model=8, n_layer=1, n_head=2)(torch.zeros(1, 5).long())
    with pytest.raises(ValueError, match="divisible by n_head"):
        CharTransformer(5, d_model=10, n_head=4)
    with pytest.raises(KeyError, match="unknown activation 'relux'"):
        MLP(4, (4,), 2, "relux")


@pytest.mark.parametrize("act", ["gelu", "swiglu"])
def test_cnn_channels_last_computes_the_nchw_model(act):
    """The NHWC layout is a speed choice only: same outputs and gradients as NCHW."""
    torch.manual_seed(4)
    fast = CNN((1, 28, 28), 10, act)
    plain = CNN((1, 28, 28), 10, act, channels_last=False)
    plain.load_state_dict(fast.state_dict())
    assert fast.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.features[0].weight.is_contiguous()
    x = torch.randn(3, 1, 28, 28)
    y_fast, y_plain = fast(x), plain(x)
    assert torch.allclose(y_fast, y_plain, atol=1e-5)
    y_fast.square().sum().backward()
    y_plain.square().sum().backward()
    for (name, a), b in zip(fast.named_parameters(), plain.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-5), name
    assert not CNN((1, 40), 10, act).channels_last  # 1-D signals keep their layout


def test_per_channel_parameters_follow_the_channels():
    """DyT's gamma and beta: one per feature in an MLP, one per feature map in a CNN
    (ChannelActivation runs channels last), sized at the first call."""
    mlp = MLP(64, (32, 16), 10, "dyt")
    cnn = CNN((1, 8, 8), 10, "dyt", channels=(6, 12), hidden=20)
    mlp(torch.randn(3, 64))
    cnn(torch.randn(2, 1, 8, 8))
    assert [a.gamma.shape[0] for a in mlp.acts] == [32, 16]
    convs = [m.act for m in cnn.features if isinstance(m, ChannelActivation)]
    assert [a.beta.shape[0] for a in convs] == [6, 12] and cnn.fc_act.gamma.shape == (20,)
    assert count_params(mlp) == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10 + (1 + 2 * 32) + (
        1 + 2 * 16)
