"""A study declares its input (``input: {size, channels}``): readers decode at it, the array cache is keyed
and checked by it, conversions are recorded, and models get it or refuse it in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dataset_layouts import write_fer2013_csv, write_rafdb
from ferbench.cli import main
from ferbench.data import cache as data_cache
from ferbench.data import load_data
from ferbench.models import create_model
from ferbench.models.adapter import InputMismatch
from ferbench.schema.experiment import TrainExperiment
from ferbench.schema.study_input import StudyInput
from ferbench.schema.suite import SplitConfig
from ferbench.schema.train import TrainConfig

RGB100 = StudyInput(size=100, channels=3)
RAF_ROWS = [(f"train_{k:05d}.jpg", k % 7 + 1) for k in range(1, 15)] + [(f"test_{k:04d}.jpg", k % 7 + 1)
                                                                       for k in range(1, 8)]


def test_rafdb_is_read_at_the_declared_input_with_conversions_counted(tmp_path):
    raf = write_rafdb(tmp_path / "raf", RAF_ROWS)
    native = load_data(str(raf), input=RGB100)
    assert native.images.shape == (21, 100, 100, 3) and native.conversions == {}  # as distributed: unconverted
    gray = load_data(str(raf))
    assert gray.images.shape == (21, 48, 48)
    assert gray.conversions == {"RGB -> gray (L)": 21, "resized to 48x48": 21}
    named = load_data(f"rafdb:{raf}", input=RGB100)
    assert named.images.shape == (21, 100, 100, 3)
    # the RGB pixels are the file's, not gray replicated
    assert not np.array_equal(native.images[..., 0], native.images[..., 1])


def test_fer2013_at_an_rgb_input_is_converted_and_says_so(tmp_path):
    data = load_data(str(write_fer2013_csv(tmp_path / "fer2013.csv", per_class=1)), input=RGB100)
    n = len(data)
    assert data.images.shape == (n, 100, 100, 3)
    assert data.conversions == {"gray -> RGB (channels replicated)": n, "resized to 100x100": n}


def test_array_cache_is_keyed_and_checked_by_the_input(tmp_path):
    raf = str(write_rafdb(tmp_path / "raf", RAF_ROWS))
    default_key = data_cache.source_key(raf, skip_bad=False)
    rgb_key = data_cache.source_key(raf, skip_bad=False, **data_cache.input_key(RGB100))
    assert default_key != rgb_key and data_cache.input_key(StudyInput()) == {}
    load_data(raf)
    load_data(raf, input=RGB100)
    assert data_cache.load_cached(rgb_key, shape=RGB100.shape).images.shape[1:] == (100, 100, 3)
    # a folder holding other images than its key says is never served (e.g. copied under another key)
    assert data_cache.load_cached(default_key, shape=RGB100.shape) is None
    assert data_cache.load_cached(rgb_key, shape=(48, 48)) is None


def test_models_get_the_input_or_refuse_it_in_one_line():
    with pytest.raises(InputMismatch, match=r"^model 'mlp' takes 48x48 gray images .* declares input 100x100 RGB"):
        create_model("mlp", study_input=RGB100)
    m = create_model("mobilenet_v2_transfer", pretrained=False, study_input=RGB100)
    assert m(torch.rand(2, 3, 100, 100)).shape == (2, 7)
    assert create_model("mlp", study_input=StudyInput())(torch.rand(2, 1, 48, 48)).shape == (2, 7)


def test_the_default_input_leaves_config_hashes_as_they_were():
    exp = TrainExperiment(id="s.mlp", study="s", label="mlp", model="mlp", split=SplitConfig(), train=TrainConfig())
    assert exp.config_hash() == "2b3baae032332e9d"  # what ferbench computed before inputs could be declared
    assert exp.model_copy(update={"input": RGB100}).config_hash() != exp.config_hash()


def test_training_takes_rgb_batches():
    from torch import nn

    from ferbench.engine import fit, predict_proba
    from ferbench.models.adapter import FERModel, InputSpec

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 7))
    model = FERModel(net, InputSpec(100, 3), num_classes=7)
    images = np.random.default_rng(0).integers(0, 256, (8, 100, 100, 3), dtype=np.uint8)
    labels = np.arange(8) % 7
    h = fit(model, images, labels, images, labels, TrainConfig(epochs=1, batch_size=4, amp="off"),
            device=torch.device("cpu")).history
    assert len(h) == 1 and np.isfinite(h[0]["train_loss"])
    assert predict_proba(model, images, torch.device("cpu")).shape == (8, 7)


@pytest.mark.slow  # about a minute on a busy 2-core CPU (MobileNetV2 at 96 px)
def test_a_study_at_100_px_rgb_on_rafdb(tmp_path):
    write_rafdb(tmp_path / "raf", RAF_ROWS)
    (tmp_path / "s.yaml").write_text(
        "name: r\ndata: raf\ndefaults: {epochs: 1, batch_size: 8}\nstudies:\n  - name: s\n"
        "    input: {size: 100, channels: 3}\n    split: {kind: rafdb, val_fraction: 0.5}\n"
        "    experiments: [{model: mobilenet_v2_transfer, pretrained: false}, {model: mlp}]\n")
    r = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--results-dir", str(tmp_path / "res")])
    ok = json.loads((tmp_path / "res/r/s.mobilenet_v2_transfer/result.json").read_text())
    assert ok["status"] == "ok", r.output
    assert ok["config"]["input"] == {"size": 100, "channels": 3}
    assert any(n.startswith("input 100x100 RGB (the study declares it); RAF-DB images read as stored")
               for n in ok["split"]["notes"])
    bad = json.loads((tmp_path / "res/r/s.mlp/result.json").read_text())
    assert bad["status"] == "failed" and bad["error"].startswith("model 'mlp' takes 48x48 gray images")
    assert len(bad["error"].splitlines()) == 1
    assert "input 100x100 RGB (the study declares it)" in (tmp_path / "res/r/report.md").read_text()
