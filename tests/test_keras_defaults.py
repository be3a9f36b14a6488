import math

import pytest
import torch
from torch import nn

from ferbench.models.keras import (KERAS_BN_EPS, KERAS_BN_MOMENTUM, apply_keras_defaults, he_normal_,
                                   keras_plateau_kwargs)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8))
        self.conv = nn.Conv2d(8, 64, 3)
        self.bn = nn.BatchNorm2d(64)
        self.bn1d = nn.BatchNorm1d(32)
        self.lstm = nn.LSTM(48, 32, num_layers=2, batch_first=True)
        self.gru = nn.GRU(48, 16)
        self.fc = nn.Linear(2304, 256)


def test_batchnorm_gets_keras_momentum_and_epsilon_except_skipped():
    net = apply_keras_defaults(_Net(), skip=[_Net().backbone])  # a foreign module in skip changes nothing
    assert (net.bn.momentum, net.bn.eps) == (KERAS_BN_MOMENTUM, KERAS_BN_EPS) == (0.01, 1e-3)
    assert (net.bn1d.momentum, net.bn1d.eps) == (0.01, 1e-3)
    net2 = _Net()
    before = net2.backbone[0].weight.clone()
    apply_keras_defaults(net2, skip=[net2.backbone])
    assert (net2.backbone[1].momentum, net2.backbone[1].eps) == (0.1, 1e-5)  # torch defaults kept
    assert torch.equal(net2.backbone[0].weight, before)


def test_running_stats_follow_keras_update_rule():
    bn = apply_keras_defaults(nn.BatchNorm1d(1))
    x = torch.full((4, 1), 10.0)
    bn.train()(x)
    # Keras: moving_mean = 0.99 * moving_mean + 0.01 * batch_mean
    assert bn.running_mean.item() == pytest.approx(0.1)


def test_glorot_uniform_kernels_and_zero_biases():
    torch.manual_seed(0)
    net = apply_keras_defaults(_Net())
    for layer, fan_in, fan_out in ((net.fc, 2304, 256), (net.conv, 8 * 9, 64 * 9)):
        limit = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight
        assert w.abs().max().item() <= limit
        assert w.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.05)  # uniform(-l, l) sd
        assert torch.count_nonzero(layer.bias) == 0


def test_torch_default_init_is_not_glorot():
    # guards the test above: without the call the spread is torch's kaiming-uniform, not Glorot's
    torch.manual_seed(0)
    fc = nn.Linear(2304, 256)
    glorot_sd = math.sqrt(6 / (2304 + 256)) / math.sqrt(3)
    assert fc.weight.std().item() < 0.8 * glorot_sd and torch.count_nonzero(fc.bias) > 0


def test_lstm_and_gru_initializers():
    torch.manual_seed(0)
    net = apply_keras_defaults(_Net())
    h = 32
    for layer in range(2):
        w_hh = getattr(net.lstm, f"weight_hh_l{layer}")
        torch.testing.assert_close(w_hh.T @ w_hh, torch.eye(h), atol=1e-5, rtol=0)
        b_ih, b_hh = getattr(net.lstm, f"bias_ih_l{layer}"), getattr(net.lstm, f"bias_hh_l{layer}")
        expected = torch.zeros(4 * h)
        expected[h:2 * h] = 1.0  # forget gate (torch and Keras order: i, f, g/c, o)
        assert torch.equal(b_ih + b_hh, expected) and torch.count_nonzero(b_hh) == 0
        w_ih = getattr(net.lstm, f"weight_ih_l{layer}")
        assert w_ih.abs().max().item() <= math.sqrt(6 / (w_ih.shape[1] + 4 * h))
    torch.testing.assert_close(net.gru.weight_hh_l0.T @ net.gru.weight_hh_l0, torch.eye(16), atol=1e-5, rtol=0)
    assert torch.count_nonzero(net.gru.bias_ih_l0) == 0 and torch.count_nonzero(net.gru.bias_hh_l0) == 0


def test_he_normal_is_truncated_with_keras_spread():
    torch.manual_seed(0)
    w = torch.empty(256, 64, 5, 5)
    he_normal_(w)
    fan_in = 64 * 25
    target = math.sqrt(2 / fan_in)
    assert w.std().item() == pytest.approx(target, rel=0.02)
    assert w.abs().max().item() <= 2 * target / 0.87962566103423978 + 1e-6
    conv = apply_keras_defaults(nn.Conv2d(64, 256, 5), kernel_init="he_normal")
    assert conv.weight.std().item() == pytest.approx(target, rel=0.02) and torch.count_nonzero(conv.bias) == 0
    with pytest.raises(ValueError, match="kernel_init"):
        apply_keras_defaults(nn.Linear(2, 2), kernel_init="lecun")


@pytest.mark.parametrize("patience", [1, 3, 7])
def test_plateau_cuts_on_the_keras_epoch(patience):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **keras_plateau_kwargs(factor=0.5, patience=patience))
    sched.step(1.0)  # first epoch sets the best value
    for bad in range(1, patience + 1):
        sched.step(1.0 - 1e-5 * bad)  # improvements below Keras' absolute min_delta do not count
        assert opt.param_groups[0]["lr"] == (0.5 if bad == patience else 1.0)


def test_plateau_monitor_direction_and_bad_patience():
    assert keras_plateau_kwargs(monitor="val_accuracy")["mode"] == "max"
    assert keras_plateau_kwargs()["mode"] == "min"
    with pytest.raises(ValueError):
        keras_plateau_kwargs(patience=0)
