"""DeadUnitMonitor: dead units found, live ones not, hooks removed cleanly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import actlab
from actlab.analysis import DeadUnitMonitor


def _mlp(act: nn.Module | None = None) -> nn.Sequential:
    torch.manual_seed(0)
    a = act or nn.ReLU()
    return nn.Sequential(nn.Linear(8, 16), a, nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))


def _no_hooks(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in model.modules()
    )


def test_forced_dead_unit_is_reported_and_live_units_are_not():
    model = _mlp()
    with torch.no_grad():
        model[0].bias[[2, 5]] = -1e3  # pre-activation always negative: dead
    mon = DeadUnitMonitor(model)
    for _ in range(3):
        model(torch.randn(32, 8)).sum().backward()
    assert mon.dead()["1"].tolist() == [2, 5]
    assert mon.fractions()["1"] == pytest.approx(2 / 16)
    frame = mon.to_frame()
    assert frame.loc[frame["layer"] == "1", "dead"].item() == 2
    assert frame["gradients"].all()
    mon.detach()


def test_detach_leaves_the_model_as_it_was():
    model = _mlp()
    x = torch.randn(10, 8)
    before = model(x)
    flags = [m._is_full_backward_hook for m in model.modules()]
    mon = DeadUnitMonitor(model)
    model(x).sum().backward()
    mon.detach()
    mon.detach()  # twice is fine
    assert _no_hooks(model)
    assert [m._is_full_backward_hook for m in model.modules()] == flags
    assert torch.equal(model(x), before)


def test_context_manager_reset_and_window():
    model = _mlp()
    with DeadUnitMonitor(model, window=2) as mon:
        model(torch.randn(64, 8))
        assert mon.overall() < 0.5
        mon.reset()
        assert mon.fractions() == {}
        z = torch.zeros(4, 8)
        with torch.no_grad():
            model[0].bias.fill_(-1.0)
            model[0].weight.zero_()
            model(z)  # every unit of layer 1 is zero on this batch
            assert mon.fractions()["1"] == 1.0
            model[0].bias.fill_(1.0)
            model(z)
            model(z)
            model[0].bias.fill_(-1.0)
            model(z)
            model(z)  # the two live batches have left the window of 2
        assert mon.fractions()["1"] == 1.0
    assert _no_hooks(model)


def test_threshold_and_smooth_activations():
    torch.manual_seed(1)
    # actlab's precise gelu (x Phi(x) with erfc) is -1e-196 at -30 in float64: tiny but not
    # zero; torch's nn.GELU (the default module) computes 1 + erf(-21.2) = 0, an exact zero
    model = nn.Sequential(nn.Linear(4, 6), actlab.get("gelu").module(precise=True)).double()
    with torch.no_grad():
        model[0].bias[0] = -30.0
    x = torch.randn(16, 4, dtype=torch.float64)
    with DeadUnitMonitor(model, gradients=False) as mon:
        model(x)
        assert mon.fractions()["1"] == 0.0
    with DeadUnitMonitor(model, threshold=1e-3, gradients=False) as mon:
        model(x)
        assert mon.dead()["1"].tolist() == [0]


def test_shared_module_is_tracked_per_call_site():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(4, 6), relu, nn.Linear(6, 5), relu, nn.Linear(5, 2))
    with torch.no_grad():
        model[0].bias.fill_(10.0)  # every unit alive ...
        model[2].bias.fill_(10.0)
        model[2].bias[1] = -1e3  # ... but this one
    with DeadUnitMonitor(model) as mon:
        for _ in range(2):
            model(torch.randn(8, 4)).sum().backward()
        fr = mon.fractions()
    assert set(fr) == {"1", "3"}
    assert fr["3"] == pytest.approx(1 / 5)
    assert mon.dead()["3"].tolist() == [1]


def test_conv_channels_actlab_modules_and_gated():
    torch.manual_seed(2)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), actlab.get("relu").module())
    with torch.no_grad():
        conv[0].bias[3] = -1e3
    with DeadUnitMonitor(conv) as mon:
        conv(torch.randn(2, 3, 6, 6)).sum().backward()
        assert mon.dead()["1"].tolist() == [3]  # channel 3 of (N, C, H, W)
    glu = nn.Sequential(nn.Linear(4, 8), actlab.get("reglu").module())
    with torch.no_grad():
        glu[0].bias[5] = -1e3  # gate of unit 1 never opens
    with DeadUnitMonitor(glu) as mon:
        glu(torch.randn(16, 4)).sum().backward()
        assert mon.dead()["1"].tolist() == [1]


def test_inplace_modules_and_pause():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True), nn.Linear(4, 1))
    with DeadUnitMonitor(model) as mon:
        model(torch.randn(8, 4)).sum().backward()  # no full backward hook on in-place modules
        with mon.pause():
            model(torch.randn(8, 4))
        assert set(mon.fractions()) == {"1"}


def test_no_activation_modules_and_bad_arguments():
    with DeadUnitMonitor(nn.Linear(3, 3)) as mon:
        assert mon.fractions() == {}
    with pytest.raises(ValueError, match="threshold"):
        DeadUnitMonitor(_mlp(), threshold=-1)
    with pytest.raises(ValueError, match="window"):
        DeadUnitMonitor(_mlp(), window=0)
    with pytest.raises(TypeError, match="Module"):
        DeadUnitMonitor("model")
