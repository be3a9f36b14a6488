"""pytest-benchmark benchmarks (skipped by the default test run; run them with
`.venv/bin/python -m pytest tests/benchmarks --benchmark-only`). They time one training step of the
device-resident pipeline and of the conventional DataLoader pipeline for the same model, and a
FER2013 load from the array cache vs decoding."""
import pytest
import torch
import torch.nn.functional as F

from ferbench.augment import augment_batch
from ferbench.bench import DEFAULT_AUGMENT, _PILDataset, conventional_transform
from ferbench.data import load_data
from ferbench.engine import to_device_images
from ferbench.models import create_model

from conftest import REAL_DATA

CPU = torch.device("cpu")
BATCH = 64


@pytest.fixture(scope="module")
def data():
    d = load_data("synthetic:3500")
    tr = d.usage == "Training"
    return d.images[tr], d.labels[tr]


def _step(model, opt, xb, yb):
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


@pytest.mark.parametrize("name", ["basic_cnn", "deep_cnn"])
def test_train_step_ferbench(benchmark, data, name):
    images, labels = data
    m = create_model(name).train()
    opt = torch.optim.Adam(m.parameters())
    x, y = to_device_images(images, CPU), torch.from_numpy(labels)
    g = torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(0, len(x), (BATCH,), generator=g)
        _step(m, opt, augment_batch(x[idx].float().div_(255), DEFAULT_AUGMENT, g), y[idx])

    benchmark(step)


@pytest.mark.parametrize("name", ["basic_cnn", "deep_cnn"])
def test_train_step_conventional(benchmark, data, name):
    images, labels = data
    m = create_model(name).train()
    opt = torch.optim.Adam(m.parameters())
    loader = torch.utils.data.DataLoader(_PILDataset(images, labels, conventional_transform(m.spec, DEFAULT_AUGMENT)),
                                         batch_size=BATCH, shuffle=True, num_workers=2, persistent_workers=True)
    it = iter(loader)

    def step():
        nonlocal it
        try:
            xb, yb = next(it)
        except StopIteration:
            it = iter(loader)
            xb, yb = next(it)
        _step(m.net, opt, xb, yb)

    benchmark(step)


@pytest.mark.skipif(not REAL_DATA.exists(), reason="real FER2013 absent")
def test_load_fer2013_from_cache(benchmark):
    load_data(str(REAL_DATA))  # make sure the cache exists
    d = benchmark(load_data, str(REAL_DATA))
    assert len(d) == 35887


@pytest.mark.skipif(not REAL_DATA.exists(), reason="real FER2013 absent")
def test_load_fer2013_decoding(benchmark):
    d = benchmark.pedantic(load_data, args=(str(REAL_DATA),), kwargs={"use_cache": False}, rounds=2, iterations=1)
    assert len(d) == 35887
