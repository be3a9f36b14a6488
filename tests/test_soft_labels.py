"""FER+ soft-label training: cross-entropy on the vote distribution, metrics on the majority label."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from dataset_layouts import write_ferplus
from ferbench.cli import main
from ferbench.data import load_data
from ferbench.data.splits import make_split
from ferbench.engine import fit
from ferbench.models.adapter import FERModel, InputSpec
from ferbench.schema.train import TrainConfig


def _constant_model(probs: np.ndarray) -> FERModel:
    """Logits log(probs) for every image: the first batch's loss is known by hand."""
    lin = nn.Linear(48 * 48, len(probs))
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.copy_(torch.tensor(np.log(probs), dtype=torch.float32))
    return FERModel(nn.Sequential(nn.Flatten(), lin), InputSpec(), num_classes=len(probs))


def test_loss_is_cross_entropy_on_the_distribution():
    p = np.array([0.5, 0.25, 0.125, 0.125])
    soft = np.array([[0.75, 0.25, 0, 0], [0, 0, 0.5, 0.5]], dtype=np.float32)
    labels = np.array([0, 2])
    images = np.zeros((2, 48, 48), np.uint8)
    cfg = TrainConfig(epochs=1, batch_size=2, lr=1e-9, channels_last=False, amp="off")
    by_hand = -(soft * np.log(p)).sum(1).mean()  # (0.75 ln2 + 0.25 ln4 + ln8) / 2
    hard = -np.log(p[labels]).mean()
    got_soft = fit(_constant_model(p), images, labels, None, None, cfg.model_copy(update={"soft_labels": True}),
                   device=torch.device("cpu"), train_soft=soft).history[0]["train_loss"]
    got_hard = fit(_constant_model(p), images, labels, None, None, cfg,
                   device=torch.device("cpu")).history[0]["train_loss"]
    assert got_soft == pytest.approx(by_hand, rel=1e-5) and got_hard == pytest.approx(hard, rel=1e-5)
    assert abs(by_hand - hard) > 0.05  # 1.473 vs 1.386: the two targets are told apart


def _votes_rows():
    rows = []
    for u in ("Training", "PublicTest", "PrivateTest"):
        for k in range(16):
            v = [0] * 10
            v[k % 8], v[(k + 1) % 8] = 7, 3  # a 70/30 distribution, majority the first
            rows.append((u, f"f{u}{k}.png", v))
    return rows


def test_class_subset_renormalizes_the_distribution(tmp_path):
    data = load_data(str(write_ferplus(tmp_path / "fp", _votes_rows())))
    split = make_split(data, "ferplus", classes=["angry", "disgust"])
    assert split.train.soft.shape == (len(split.train), 2)
    assert np.allclose(split.train.soft.sum(1), 1)


def test_a_study_trains_on_fer_plus_votes_and_records_it(tmp_path):
    write_ferplus(tmp_path / "fp", _votes_rows())
    (tmp_path / "s.yaml").write_text("name: f\ndata: 'ferplus:fp'\ndefaults: {epochs: 1}\nstudies:\n  - name: s\n"
                                     "    split: {kind: ferplus}\n    train: {soft_labels: true}\n"
                                     "    experiments: [{model: mlp}]\n")
    r = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "res/f/s.mlp/result.json").read_text())
    assert res["training"]["soft_labels"] is True and res["config"]["train"]["soft_labels"] is True
    assert res["metrics"]["test"]["n"] == 16  # scored on the majority labels


def test_soft_labels_on_data_without_distributions_fail_in_one_line(tmp_path):
    (tmp_path / "s.yaml").write_text("name: f\ndata: 'synthetic:70'\ndefaults: {epochs: 1}\nstudies:\n  - name: s\n"
                                     "    train: {soft_labels: true}\n    experiments: [{model: mlp}]\n")
    r = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--results-dir", str(tmp_path / "res")])
    res = json.loads((tmp_path / "res/f/s.mlp/result.json").read_text())
    assert res["status"] == "failed" and "needs label distributions" in res["error"], r.output
