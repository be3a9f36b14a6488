"""`ferbench bench` and the performance rewrites it measures: what is timed must be the real work
(the model trains, both pipelines feed it the same input, FLOPs cover forward and backward), and a
faster layer must compute what the slower one did."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from ferbench import bench, estimates
from ferbench.augment import AugmentConfig
from ferbench.cli import main
from ferbench.models import create_model
from ferbench.models.cbam import CBAM


def test_bench_cli_json_reports_throughput_and_efficiency(kaggle_folder):
    root, _ = kaggle_folder
    r = CliRunner().invoke(main, ["bench", "--models", "basic_cnn,rnn", "--steps", "2", "--batch-size", "8",
                                  "--workers", "0", "--repeats", "1", "--data", str(root), "--load", str(root),
                                  "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    rows = {row["model"]: row for row in out["models"]}
    assert set(rows) == {"basic_cnn", "rnn"}
    for row in rows.values():
        for k in ("train_fast_ips", "train_conventional_ips", "infer_fast_ips", "infer_conventional_ips",
                  "matmul_gflops"):
            assert row[k] > 0
    cnn = rows["basic_cnn"]
    assert cnn["train_step_gflop"] > 0 and 0 < cnn["efficiency"] < 5
    # The FLOP counter sees the RNN's classifier but not its LSTM: no ratio rather than a made-up one.
    assert rows["rnn"]["efficiency"] is None
    assert out["load"]["images"] == 63 and out["load"]["decode_s"] > 0


def test_step_flops_count_forward_and_backward():
    """The mlp is three linear layers: forward 2*B*in*out each; backward computes weight gradients
    everywhere and input gradients for all but the first layer (the image needs none)."""
    m = create_model("mlp").train()
    b = 8
    x, y = torch.rand(b, 1, 48, 48), torch.randint(0, 7, (b,))
    layers = [(48 * 48, 512), (512, 256), (256, 7)]
    fwd = sum(2 * b * i * o for i, o in layers)
    bwd = sum(2 * b * i * o for i, o in layers) + sum(2 * b * i * o for i, o in layers[1:])
    assert bench._step_flops(m, x, y) == fwd + bwd
    assert all(p.grad is None for p in m.parameters())  # counting leaves no gradients behind


@pytest.mark.parametrize("groups", [1, 4, 8])
def test_grouped_convolution_backward_counted_once(groups):
    """Backward of a convolution (input and weight gradients) costs twice its forward, grouped or
    not; torch's own formula counts a grouped weight gradient `groups` times (MobileNetV2 ~7x)."""
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, groups=groups)
    x = torch.rand(2, 8, 10, 10, requires_grad=True)
    fwd = bench.count_flops(lambda: conv(x))
    assert bench.count_flops(lambda: conv(x).sum().backward()) == 3 * fwd


def test_fast_pipeline_really_trains(monkeypatch):
    """The timed loop of the ferbench pipeline updates the model it times."""
    m = create_model("basic_cnn")
    before = [p.detach().clone() for p in m.parameters()]
    monkeypatch.setattr(bench, "_model", lambda name, device, input_size: m)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8), rng.integers(0, 7, 64)
    fl: dict = {}
    ips = bench.train_throughput_fast("basic_cnn", images, labels, torch.device("cpu"), 16, 2, warmup=1, flops=fl)
    assert ips > 0 and fl["step"] > 0
    assert all(not torch.equal(a, p.detach()) for a, p in zip(before, m.parameters()))


@pytest.mark.parametrize("name", ["basic_cnn", "mobilenet_v2_transfer"])
def test_both_pipelines_feed_the_network_the_same_input(name):
    """Without augmentation, the conventional transforms (PIL -> tensor -> resize -> normalize)
    and ferbench's in-model adapter give the network the same tensor."""
    m = create_model(name, **({"pretrained": False} if name == "mobilenet_v2_transfer" else {}))
    m.set_input_size(64) if m.spec.size > 48 else None
    img = np.random.default_rng(1).integers(0, 256, (48, 48), dtype=np.uint8)
    conventional = bench.conventional_transform(m.spec, AugmentConfig())(Image.fromarray(img))
    fast = m.adapter(torch.from_numpy(img).float().div(255)[None, None])[0]
    assert conventional.shape == fast.shape
    # Identical at 48 px; after a resize PIL's and torch's bilinear kernels differ by rounding only.
    tol = 1e-5 if m.spec.size == 48 else 0.05
    assert torch.allclose(conventional, fast, atol=tol)


def _old_cbam(mod: CBAM, x: torch.Tensor) -> torch.Tensor:
    """CBAM as first written: two passes of the shared MLP as 1x1 convolutions."""
    ca = mod.channel
    a = torch.sigmoid(ca.mlp(F.adaptive_avg_pool2d(x, 1)) + ca.mlp(F.adaptive_max_pool2d(x, 1)))
    x = x * a
    return x * mod.spatial(x)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_cbam_rewrite_computes_the_same_outputs_and_gradients(channels_last, dtype, tol):
    torch.manual_seed(0)
    mod = CBAM(64).to(dtype)
    x = torch.randn(4, 64, 12, 12, dtype=dtype).relu()  # CBAM follows conv-BN-ReLU in cbam_cnn
    if channels_last:
        mod, x = mod.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    outs, grads = [], []
    for fn in (mod, lambda t: _old_cbam(mod, t)):
        xi = x.clone().requires_grad_(True)
        y = fn(xi)
        (y * torch.linspace(-1, 1, y.numel(), dtype=dtype).view_as(y)).sum().backward()
        outs.append(y.detach())
        grads.append([xi.grad] + [p.grad.clone() for p in mod.parameters()])
        mod.zero_grad(set_to_none=True)
    torch.testing.assert_close(outs[0], outs[1], atol=tol, rtol=tol)
    for new, old in zip(*grads):
        torch.testing.assert_close(new, old, atol=tol, rtol=tol)


def test_bench_feature_cache_and_table():
    r = CliRunner().invoke(main, ["bench", "--models", "mlp", "--steps", "2", "--workers", "0", "--repeats", "1",
                                  "--feature-cache", "--input-size", "32"])
    assert r.exit_code == 0, r.output
    assert "train img/s (ferbench)" in r.output and "with the feature cache" in r.output
    assert "of matmul" in r.output and "%" in r.output  # the efficiency table


def test_bench_unknown_model():
    r = CliRunner().invoke(main, ["bench", "--models", "basic_cnm"])
    assert r.exit_code == 1 and "Did you mean 'basic_cnn'" in r.output


def test_calibration_estimates_a_real_fit():
    """The estimate from a few calibrated steps is the right size for what fit() then takes."""
    from ferbench.engine import TrainConfig, fit

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (384, 48, 48), dtype=np.uint8), rng.integers(0, 7, 384)
    cfg = TrainConfig(epochs=2, batch_size=32, augment=AugmentConfig(rotation=10, flip=True))
    cal = estimates.calibrate(create_model("cnn"), cfg, torch.device("cpu"))
    assert cal.step_s > 0 and cal.eval_s_per_image > 0 and cal.frozen_step_s is None and not cal.feature_cache
    est = estimates.estimate_fit_seconds(cal, cfg, n_train=256, n_val=128)
    r = fit(create_model("cnn"), images[:256], labels[:256], images[256:], labels[256:], cfg,
            device=torch.device("cpu"))
    actual = sum(h["seconds"] for h in r.history)
    assert actual / 5 < est < actual * 5  # a shared 2-core machine: the right size, not a stopwatch


def test_calibration_follows_what_fit_will_do():
    """A frozen backbone without augmentation trains its head on cached features; a freeze schedule
    pays the frozen step in its first epochs and the unfrozen one after."""
    from ferbench.engine import TrainConfig

    cpu = torch.device("cpu")
    frozen = create_model("resnet50_transfer", pretrained=False)
    frozen.freeze_backbone(True)
    cal = estimates.calibrate(frozen, TrainConfig(batch_size=8, input_size=32), cpu, steps=1)
    assert cal.feature_cache and cal.frozen_step_s is None
    # Features once, then head steps: ten epochs cost less than ten backbone passes over the images.
    ten = TrainConfig(epochs=10, batch_size=8, input_size=32)
    assert estimates.estimate_fit_seconds(cal, ten, 80, 0) < 10 * 80 * cal.eval_s_per_image
    sched = estimates.calibrate(create_model("mobilenet_v2_transfer", pretrained=False),
                                TrainConfig(batch_size=8, input_size=32, freeze_epochs=1, unfreeze_top=2), cpu, steps=1)
    assert not sched.feature_cache and sched.frozen_step_s is not None
    two = TrainConfig(epochs=2, batch_size=8, freeze_epochs=1)
    assert estimates.estimate_fit_seconds(sched, two, 16, 0) == pytest.approx(2 * (sched.frozen_step_s + sched.step_s))


# --- estimates: bounded, not trusted forever, at the evaluation batch size (issue 24 item 13, issue 30 item 5)

def _cal(**kw):
    import time as _t

    d = {"step_s": 0.1, "frozen_step_s": None, "eval_s_per_image": 0.001, "feature_cache": False,
         "created": _t.time(), "trusted": True}
    return {**d, **kw}


def test_a_stale_untrusted_or_undated_calibration_is_taken_again():
    import time as _t

    assert estimates.Calibration.from_cache(_cal()) is not None
    assert estimates.Calibration.from_cache(_cal(created=_t.time() - 8 * 86400)) is None  # a week and a day old
    assert estimates.Calibration.from_cache(_cal(trusted=False)) is not None  # a dry run, then the run: one estimate
    assert estimates.Calibration.from_cache(_cal(trusted=False, created=_t.time() - 2 * 3600)) is None
    old = _cal()
    del old["created"], old["trusted"]  # written by an earlier ferbench, maybe on a busy machine: 9.5 s/step
    assert estimates.Calibration.from_cache(old) is None


def _items(models, sizes=(100, 20, 20)):
    from types import SimpleNamespace

    from ferbench.engine import TrainConfig

    split = SimpleNamespace(classes=tuple("abcdefg"), sizes=lambda: dict(zip(("train", "val", "test"), sizes)))
    return [(SimpleNamespace(kind="train", id=m, model=m, model_args={}, pretrained=None, weights=None,
                             train=TrainConfig(epochs=1, batch_size=16)), split) for m in models]


def test_calibrating_stops_when_its_time_budget_is_spent(monkeypatch, tmp_path):
    import time as _t

    def slow(model, cfg, device, deadline=None, **_):
        _t.sleep(0.3)
        return estimates.Calibration(0.1, None, 0.001, False, created=_t.time(), trusted=True)

    monkeypatch.setattr(estimates, "calibrate", slow)
    est = estimates.estimate_experiments(_items(["mlp", "cnn", "basic_cnn"]), torch.device("cpu"),
                                         cache=tmp_path / "c.json", budget_s=0.1)
    assert est.seconds["mlp"] > 0 and est.seconds["cnn"] is None and est.seconds["basic_cnn"] is None
    assert "2 not estimated" in est.note and "budget" in est.note
    again = estimates.estimate_experiments(_items(["mlp"]), torch.device("cpu"), cache=tmp_path / "c.json", budget_s=0)
    assert again.seconds["mlp"] == est.seconds["mlp"] and "from the calibration cache" in again.note


def test_a_calibration_on_a_busy_machine_is_kept_an_hour_not_a_week(monkeypatch, tmp_path):
    import json
    import os
    import time as _t

    monkeypatch.setattr(os, "getloadavg", lambda: (float(os.cpu_count() or 1) + 1, 0.0, 0.0))
    est = estimates.estimate_experiments(_items(["mlp"]), torch.device("cpu"), cache=tmp_path / "c.json")
    assert est.seconds["mlp"] > 0 and "busy" in est.note
    again = estimates.estimate_experiments(_items(["mlp"]), torch.device("cpu"), cache=tmp_path / "c.json")
    assert again.seconds == est.seconds  # the run after a dry run says what the dry run said
    (entry,) = json.loads((tmp_path / "c.json").read_text()).values()
    assert entry["trusted"] is False
    assert estimates.Calibration.from_cache(entry, now=_t.time() + 2 * 3600) is None  # not trusted for long


def test_calibration_times_inference_at_the_eval_batch_size_and_syncs_per_block(monkeypatch):
    from ferbench.engine import TrainConfig

    batches, syncs = [], []
    real = estimates._forward_batches
    monkeypatch.setattr(estimates, "_forward_batches", lambda fn, x, b, *a: batches.append(b) or real(fn, x, b, *a))
    monkeypatch.setattr(estimates, "synchronize", lambda d: syncs.append(d))
    estimates.calibrate(create_model("mlp"), TrainConfig(batch_size=8, eval_batch_size=40), torch.device("cpu"),
                        steps=4, warmup=2)
    assert set(batches) == {40}  # not a fixed 128
    assert len(syncs) == 2 + 2 + 4  # inference 2, warm-up 2, two timed blocks 2 each: not one per step


def test_the_matmul_yardstick_times_blocks_and_matches_the_convolutions_tf32(monkeypatch):
    syncs = []
    monkeypatch.setattr(bench, "_sync", lambda d: syncs.append(d))
    assert bench.matmul_flops(torch.device("cpu"), n=64, iters=5, repeats=3) > 0
    assert len(syncs) == 2 * 3  # one pair per block of 5 matmuls: a GPU's launch latency is not what is timed
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)  # torch's default for convolutions
    assert bench.yardstick_tf32(torch.device("cuda"), torch.float32)
    assert not bench.yardstick_tf32(torch.device("cuda"), torch.bfloat16)
    assert not bench.yardstick_tf32(torch.device("cpu"), torch.float32)


def test_a_calibration_out_of_time_stops_at_the_next_step_and_is_not_kept(monkeypatch):
    import time as _t

    from ferbench.engine import TrainConfig

    steps = []
    real = estimates.training_batch
    monkeypatch.setattr(estimates, "training_batch", lambda *a: steps.append(1) or real(*a))
    cal = estimates.calibrate(create_model("mlp"), TrainConfig(batch_size=8, augment={"flip": True}),
                              torch.device("cpu"), steps=4, warmup=2, deadline=_t.monotonic() - 1)
    assert len(steps) == 1 and cal.step_s > 0 and not cal.trusted  # one step, not 2 + 4
