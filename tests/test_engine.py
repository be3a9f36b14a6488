import numpy as np
import pytest
import torch

from ferbench.data.splits import make_split
from ferbench.engine import EarlyStopping, TrainConfig, balanced_class_weights, fit, predict_proba, seed_everything
from ferbench.models import create_model
from ferbench.store import Checkpoint

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small(synth):
    return make_split(synth, "official", train_per_class=25, eval_per_class=10)


def _fit(split, cfg, name="basic_cnn", seed=0, **kw):
    seed_everything(seed)
    m = create_model(name, **({"pretrained": False} if name.endswith("transfer") else {}))
    r = fit(m, split.train.images, split.train.labels, split.val.images, split.val.labels, cfg, device=CPU,
            seed=seed, **kw)
    return m, r


def test_early_stopping_on_scripted_curve():
    es = EarlyStopping("val_loss", patience=2)
    losses = [1.0, 0.8, 0.85, 0.9]
    stops = [es.step(v, i) for i, v in enumerate(losses)]
    assert stops == [(True, False), (True, False), (False, False), (False, True)]
    assert es.best_epoch == 1 and es.best == 0.8
    es = EarlyStopping("val_accuracy", patience=1)
    assert es.step(0.5, 0) == (True, False) and es.step(0.6, 1) == (True, False) and es.step(0.4, 2) == (False, True)


def _scripted_fit(small, cfg, val_curve, monkeypatch):
    """fit() with the validation (loss, accuracy) of each epoch scripted: the schedule wiring is what runs."""
    import ferbench.engine as engine

    curve = iter(val_curve)
    monkeypatch.setattr(engine, "_evaluate", lambda *a, **k: next(curve))
    return _fit(small, cfg, "mlp")[1].history


def test_plateau_schedule_watches_its_own_metric(small, monkeypatch):
    # val accuracy keeps improving (early stopping's metric) while val loss is flat (the schedule's metric)
    curve = [(1.0, 0.1 * i) for i in range(1, 8)]
    cfg = TrainConfig(epochs=7, lr=0.01, schedule="plateau", plateau_monitor="val_loss", plateau_patience=2,
                      plateau_factor=0.5, monitor="val_accuracy")
    lrs = [h["lr"] for h in _scripted_fit(small, cfg, curve, monkeypatch)]
    # torch's ReduceLROnPlateau: 1 best epoch + patience 2 flat epochs, cut after the 4th epoch's step
    assert lrs == [0.01] * 4 + [0.005] * 3
    # the same settings watching val accuracy (plateau_monitor 'same') never cut
    same = _scripted_fit(small, cfg.model_copy(update={"plateau_monitor": "same"}), curve, monkeypatch)
    assert {h["lr"] for h in same} == {0.01}


def test_keras_plateau_cuts_after_patience_flat_epochs(small, monkeypatch):
    curve = [(1.0, 0.5)] * 6
    cfg = TrainConfig(epochs=6, lr=0.01, schedule="plateau", plateau_monitor="val_loss", plateau_patience=2,
                      plateau_factor=0.5, keras_defaults=True)
    lrs = [h["lr"] for h in _scripted_fit(small, cfg, curve, monkeypatch)]
    assert lrs == [0.01] * 3 + [0.005] * 2 + [0.0025]  # Keras: after 2 epochs without improvement


def test_engine_early_stopping_restores_best(small):
    cfg = TrainConfig(epochs=30, early_stopping=True, patience=1, lr=0.05, monitor="val_loss")
    m, r = _fit(small, cfg)
    assert r.stopped_early and len(r.history) < 30
    best = min(h["val_loss"] for h in r.history)
    assert r.history[r.best_epoch - 1]["val_loss"] == best


def test_bit_reproducible_with_seed(small):
    cfg = TrainConfig(epochs=2, augment={"rotation": 10, "shift": 0.1, "flip": True})
    m1, r1 = _fit(small, cfg, "cnn", seed=3)  # dropout and augmentation: every random draw is seeded
    m2, r2 = _fit(small, cfg, "cnn", seed=3)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert r1.history[-1]["train_loss"] == r2.history[-1]["train_loss"]
    _, r3 = _fit(small, cfg, "cnn", seed=4)
    assert r3.history[-1]["train_loss"] != r1.history[-1]["train_loss"]


def test_resume_from_checkpoint_equals_uninterrupted(small, tmp_path):
    cfg = TrainConfig(epochs=3, schedule="plateau", augment={"flip": True})
    ref, _ = _fit(small, cfg, seed=1)
    ck = Checkpoint(tmp_path / "ck.pt")
    _fit(small, cfg.model_copy(update={"epochs": 2}), seed=1, checkpoint=ck)  # "killed" after epoch 2
    state = torch.load(ck.path, weights_only=True)  # no pickled objects: loads without running code
    assert state["epoch"] == 1
    m, r = _fit(small, cfg, seed=1, checkpoint=ck)
    assert r.resumed_from_epoch == 2 and len(r.history) == 3
    for a, b in zip(ref.state_dict().values(), m.state_dict().values()):
        assert torch.allclose(a.float(), b.float())


def test_feature_cache_matches_running_the_frozen_backbone(small):
    cfg = TrainConfig(epochs=2, input_size=32, restore_best=False)

    def frozen(cfg):
        seed_everything(0)
        m = create_model("resnet50_transfer", pretrained=False)
        m.freeze_backbone(True)  # as with ImageNet weights (no download in tests)
        r = fit(m, small.train.images, small.train.labels, small.val.images, small.val.labels, cfg, device=CPU)
        return m, r

    m1, r1 = frozen(cfg)
    m2, r2 = frozen(cfg.model_copy(update={"feature_cache": False}))
    assert r1.feature_cache_used and not r2.feature_cache_used
    p1, p2 = predict_proba(m1, small.test.images, CPU), predict_proba(m2, small.test.images, CPU)
    np.testing.assert_allclose(p1, p2, atol=1e-4)


def test_freeze_schedule_unfreezes_after_freeze_epochs(small):
    cfg = TrainConfig(epochs=2, freeze_epochs=1, unfreeze_top=2, input_size=32)
    m, r = _fit(small, cfg, "mobilenet_v2_transfer")
    blocks = m.net.backbone_blocks()
    assert any(p.requires_grad for p in blocks[-1].parameters())
    assert not any(p.requires_grad for p in blocks[0].parameters())
    assert not r.feature_cache_used


def test_class_weights_and_label_smoothing_reach_the_loss(small, monkeypatch):
    w = balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(w, [4 / 9, 4 / 3, 0])
    import ferbench.engine as engine

    seen = []
    real = engine.F.cross_entropy

    def spy(logits, target, weight=None, label_smoothing=0.0, **kw):
        seen.append((weight, label_smoothing))
        return real(logits, target, weight=weight, label_smoothing=label_smoothing, **kw)

    monkeypatch.setattr(engine.F, "cross_entropy", spy)
    _fit(small, TrainConfig(epochs=1, class_weights=True, label_smoothing=0.3), "mlp")
    expected = torch.tensor(balanced_class_weights(small.train.labels, 7), dtype=torch.float32)
    train_calls = [c for c in seen if c[1] == 0.3]
    assert train_calls and all(torch.equal(wt, expected) for wt, _ in train_calls)
    assert any(ls == 0.0 and torch.equal(wt, expected) for wt, ls in seen)  # validation: weighted, unsmoothed


def test_denormals_are_flushed_in_every_thread():
    """Importing the engine turns on flush-to-zero (subnormal gradients made convolution backward
    10-100x slower); a parallel elementwise op shows it reached the worker threads too."""
    tiny = torch.full((1 << 20,), 1e-39)  # subnormal in fp32, large enough to be split across threads
    assert torch.count_nonzero(tiny * 1.0) == 0


def test_config_rejects_bad_values():
    with pytest.raises(Exception, match="greater than 0"):
        TrainConfig(epochs=0)
    with pytest.raises(Exception, match="Extra inputs are not permitted"):
        TrainConfig(epoch=3)


@pytest.mark.parametrize("amx", [True, False])
def test_amp_auto_on_cpu_is_bf16_only_with_amx_and_where_the_model_gains(monkeypatch, amx):
    from ferbench import engine

    monkeypatch.setattr(engine, "cpu_bf16_is_fast", lambda: amx)
    auto = TrainConfig()
    want = torch.bfloat16 if amx else None
    assert engine.amp_dtype(auto, CPU, "basic_cnn") is want
    assert engine.amp_dtype(auto, CPU, "my_own_net") is want  # a user model: nothing says it is slower
    assert engine.amp_dtype(auto, CPU, "mobilenet_v2_transfer") is None  # depthwise backward: slower in bf16
    assert engine.amp_dtype(auto, CPU, "vit_tiny") is None
    assert engine.amp_dtype(TrainConfig(amp="off"), CPU, "basic_cnn") is None
    assert engine.amp_dtype(TrainConfig(amp="bf16"), CPU, "mobilenet_v2_transfer") is torch.bfloat16
    assert engine.amp_dtype(auto, torch.device("mps"), "basic_cnn") is None


def test_cpu_bf16_follows_the_cpu_and_the_switch(monkeypatch):
    from ferbench import engine

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    monkeypatch.setenv("FERBENCH_CPU_BF16", "1")
    assert engine.cpu_bf16_is_fast()
    monkeypatch.setenv("FERBENCH_CPU_BF16", "0")  # what the test suite runs under
    assert not engine.cpu_bf16_is_fast()
    monkeypatch.setenv("FERBENCH_CPU_BF16", "1")
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": False, "avx512_bf16": True})
    assert not engine.cpu_bf16_is_fast()  # bf16 without AMX tiles is slower than fp32


def test_a_checkpoint_of_another_precision_is_not_resumed(small, tmp_path, monkeypatch):
    from ferbench import engine

    ck = Checkpoint(tmp_path / "ck.pt")
    _fit(small, TrainConfig(epochs=1), checkpoint=ck)  # fp32 (the suite's switch)
    monkeypatch.setattr(engine, "cpu_bf16_is_fast", lambda: True)  # e.g. a newer ferbench on an AMX CPU
    with pytest.raises(engine.CheckpointUnusable, match="trained under fp32 and this run trains under bfloat16"):
        _fit(small, TrainConfig(epochs=2), checkpoint=ck)


def test_fit_records_the_autocast_it_trained_under(small, monkeypatch):
    from ferbench import engine

    monkeypatch.setattr(engine, "cpu_bf16_is_fast", lambda: False)
    _, fp32 = _fit(small, TrainConfig(epochs=1))
    assert fp32.autocast is None
    m, bf16 = _fit(small, TrainConfig(epochs=1, amp="bf16"))
    assert bf16.autocast == "bfloat16"
    assert all(p.dtype == torch.float32 for p in m.parameters())  # autocast keeps fp32 master weights
    assert bf16.history[0]["train_loss"] != fp32.history[0]["train_loss"]  # the steps really ran in bf16


def test_compile_without_a_cxx_compiler_trains_eagerly_and_says_why(small, monkeypatch):
    from ferbench import engine

    monkeypatch.setattr(engine.shutil, "which", lambda name: None)
    assert "C++ compiler" in engine.compile_unavailable(CPU)  # raised or not found: either way a reason
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiled.append(fn) or fn)
    _, r = _fit(small, TrainConfig(epochs=1, compile=True))
    assert not compiled and "C++ compiler" in r.compile_skipped and len(r.history) == 1
    import torch._inductor.cpp_builder as cpp

    monkeypatch.setattr(cpp, "get_cpp_compiler", lambda: "g++")
    monkeypatch.setattr(engine.shutil, "which", lambda name: f"/usr/bin/{name}")
    _, r = _fit(small, TrainConfig(epochs=1, compile=True))
    assert compiled and r.compile_skipped is None  # with a compiler: compiled as asked


def test_bn_momentum_changes_what_evaluation_sees_not_the_training_steps(small):
    from ferbench.experiments.train import bn_momentum_deviation

    runs = {}
    for bn in (None, 0.1):
        seed_everything(0)
        m = create_model("deep_cnn", keras_defaults=True)  # Keras' BatchNorm: momentum 0.99 (0.01 in torch)
        r = fit(m, small.train.images, small.train.labels, small.val.images, small.val.labels,
                TrainConfig(epochs=2, bn_momentum=bn), device=CPU)
        runs[bn] = (m, r)
    (keras, rk), (short, rs) = runs[None], runs[0.1]
    assert rk.bn_momentum_replaced == [] and rs.bn_momentum_replaced == [0.01]
    assert [h["train_loss"] for h in rk.history] == [h["train_loss"] for h in rs.history]  # batch statistics
    assert all(torch.equal(a, b) for a, b in zip(keras.parameters(), short.parameters()))
    bk, bs = dict(keras.named_buffers()), dict(short.named_buffers())
    means = [k for k in bk if k.endswith("running_mean")]
    assert means and all(not torch.allclose(bk[k], bs[k]) for k in means)  # the averages are what differ
    assert rk.history[0]["val_loss"] != rs.history[0]["val_loss"]
    assert {bn.momentum for bn in short.modules() if isinstance(bn, torch.nn.BatchNorm2d)} == {0.1}
    assert bn_momentum_deviation([], 0.1) == []
    assert "momentum 0.1 instead of 0.01" in bn_momentum_deviation(rs.bn_momentum_replaced, 0.1)[0]
