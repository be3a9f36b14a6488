import numpy as np
import torch

from ferbench.data import load_data
from ferbench.data.splits import make_split
from ferbench.engine import TrainConfig, fit, predict_proba
from ferbench.models import create_model


def test_shapes_and_determinism():
    a, b, c = load_data("synthetic:700:1"), load_data("synthetic:700:1"), load_data("synthetic:700:2")
    assert a.images.shape == (len(a), 48, 48) and a.images.dtype == np.uint8
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert set(a.usage) == {"Training", "PublicTest", "PrivateTest"}
    for u in ("Training", "PublicTest", "PrivateTest"):
        assert set(a.labels[a.usage == u]) == set(range(7))


def test_learnable_but_not_trivial():
    d = load_data("synthetic:3000:0")
    s = make_split(d, "official")
    torch.manual_seed(0)  # the initial weights: unseeded, some starts never left the majority class in 3 epochs
    m = create_model("basic_cnn")
    fit(m, s.train.images, s.train.labels, None, None, TrainConfig(epochs=3), device=torch.device("cpu"))
    acc = (predict_proba(m, s.test.images, torch.device("cpu")).argmax(1) == s.test.labels).mean()
    majority = np.bincount(s.test.labels).max() / len(s.test)
    assert acc > majority + 0.2, (acc, majority)
    assert acc < 0.995
