"""pytest-benchmark benchmarks (skipped by the default test run; run them with
`.venv/bin/python -m pytest tests/benchmarks --benchmark-only -n 0`: pytest-benchmark times nothing
under pytest-xdist). They time one training step of the
device-resident pipeline and of the conventional DataLoader pipeline for the same model, the
training step of the slowest quick-profile models exactly as the engine runs it, and a FER2013 load
from the array cache vs decoding."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import REAL_DATA

from ferbench.augment import augment_batch
from ferbench.bench import DEFAULT_AUGMENT, _PILDataset, conventional_transform
from ferbench.data import load_data
from ferbench.engine import (
    TrainConfig,
    amp_dtype,
    balanced_class_weights,
    compile_unavailable,
    build_optimizer,
    prepare_model,
    to_device_images,
    training_batch,
)
from ferbench.models import create_model
from ferbench.suite import Overrides, expand, load_suite

CPU = torch.device("cpu")
BATCH = 64


@pytest.fixture(scope="module")
def data():
    d = load_data("synthetic:3500")
    tr = d.usage == "Training"
    return d.images[tr], d.labels[tr]


def _step(model, opt, xb, yb) -> float:
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def _trained(model: torch.nn.Module, before: list[torch.Tensor], loss: float) -> None:
    """What was timed was a real training step: a finite loss, and the weights moved."""
    assert math.isfinite(loss), loss
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters())), "no weight changed"


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", ["basic_cnn", "deep_cnn"])
def test_train_step_ferbench(benchmark, data, name):
    images, labels = data
    m = create_model(name).train()
    opt = torch.optim.Adam(m.parameters())
    x, y = to_device_images(images, CPU), torch.from_numpy(labels)
    g = torch.Generator().manual_seed(0)

    before = _weights(m)

    def step():
        idx = torch.randint(0, len(x), (BATCH,), generator=g)
        return _step(m, opt, augment_batch(x[idx].float().div_(255), DEFAULT_AUGMENT, g), y[idx])

    _trained(m, before, benchmark(step))


@pytest.mark.parametrize("name", ["basic_cnn", "deep_cnn"])
def test_train_step_conventional(benchmark, data, name):
    images, labels = data
    m = create_model(name).train()
    opt = torch.optim.Adam(m.parameters())
    loader = torch.utils.data.DataLoader(_PILDataset(images, labels, conventional_transform(m.spec, DEFAULT_AUGMENT)),
                                         batch_size=BATCH, shuffle=True, num_workers=2, persistent_workers=True)
    it = iter(loader)
    before = _weights(m)

    def step():
        nonlocal it
        try:
            xb, yb = next(it)
        except StopIteration:
            it = iter(loader)
            xb, yb = next(it)
        return _step(m.net, opt, xb, yb)

    _trained(m, before, benchmark(step))


def _quick_config(model: str) -> TrainConfig:
    """The train settings papers.yaml gives ``model`` under the quick profile (first experiment)."""
    suite = load_suite(Path(__file__).resolve().parents[2] / "suites" / "papers.yaml")
    return next(e.train for e in expand(suite, "quick", overrides=Overrides(pretrained=False))
                if e.kind == "train" and e.model == model)


# The slowest quick-profile experiments (issue 17): cbam_cnn (three experiments; 912 s for one in
# the run), and ResNet-50 (at 48 px when trained from scratch, --no-pretrained; with ImageNet
# weights its base is frozen and cached). Their training step as fit() runs it on this machine,
# quick-profile settings: bf16 autocast where amp: auto picks it, torch.compile where the suite asks.
@pytest.mark.parametrize("name", ["cbam_cnn", "resnet50_transfer"])
def test_train_step_quick_profile(benchmark, name, monkeypatch):
    monkeypatch.setenv("FERBENCH_CPU_BF16", "1")  # the host's own choice (conftest pins fp32 for tests)
    cfg = _quick_config(name)
    d = load_data(str(REAL_DATA)) if REAL_DATA.exists() else load_data("synthetic:3500")
    tr = d.usage == "Training"
    x, y = to_device_images(d.images[tr][:4096], CPU), torch.from_numpy(d.labels[tr][:4096])
    torch.manual_seed(0)
    kw = {"pretrained": False} if name.endswith("transfer") else {}
    m = prepare_model(create_model(name, keras_defaults=cfg.keras_defaults, **kw), cfg, CPU).train()
    dtype = amp_dtype(cfg, CPU, name)
    fn = torch.compile(m) if cfg.compile and compile_unavailable(CPU) is None else m  # compiled in warm-up
    opt = build_optimizer(m, cfg)
    weight = torch.tensor(balanced_class_weights(y.numpy(), 7), dtype=torch.float32) if cfg.class_weights else None
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    state = {"s": 0}
    before = _weights(m)

    def step():
        s = state["s"] = (state["s"] + 1) % (len(x) // cfg.batch_size)
        idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(fn(training_batch(x, idx, cfg, g)).float(), y[idx], weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    _trained(m, before, benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=3))


@pytest.mark.skipif(not REAL_DATA.exists(), reason="real FER2013 absent")
def test_load_fer2013_from_cache(benchmark):
    load_data(str(REAL_DATA))  # make sure the cache exists
    d = benchmark(load_data, str(REAL_DATA))
    assert len(d) == 35887


@pytest.mark.skipif(not REAL_DATA.exists(), reason="real FER2013 absent")
def test_load_fer2013_decoding(benchmark):
    d = benchmark.pedantic(load_data, args=(str(REAL_DATA),), kwargs={"use_cache": False}, rounds=2, iterations=1)
    assert len(d) == 35887
