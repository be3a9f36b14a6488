"""Test-time augmentation: ten-crop geometry, probability averaging, and a suite scored both ways."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from click.testing import CliRunner
from conftest import one_study_suite

from ferbench.cli import main
from ferbench.engine import predict_proba
from ferbench.models import FERModel, InputSpec
from ferbench.tta import average, crop_boxes, views


def test_crop_boxes_of_a_48px_image():
    # corners, then the centre: 48 - 40 = 8 pixels of slack, half of it above and left of the centre crop
    assert crop_boxes(48, 48, 40) == [(0, 0), (0, 8), (8, 0), (8, 8), (4, 4)]
    assert crop_boxes(48, 48, 45)[-1] == (2, 2)  # torchvision rounds 1.5 to 2
    with pytest.raises(ValueError, match="tta_crop 50 is larger than the 48x48 images"):
        crop_boxes(48, 48, 50)


def test_tencrop_views_match_torchvision_ten_crop():
    img = torch.arange(48 * 48, dtype=torch.float32).view(1, 1, 48, 48)
    ours = [v(img) for v in views("tencrop", 48, 48, 40)]
    theirs = TF.ten_crop(img, [40, 40])
    assert len(ours) == 10 and all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert ours[0][0, 0, 0, 0] == 0 and ours[3][0, 0, 0, 0] == 8 * 48 + 8  # top-left pixel of each box
    assert torch.equal(ours[5], torch.flip(ours[1], [-1]))  # top-left of the mirror: the top-right crop, mirrored


class _SeesLeftHalf(torch.nn.Module):
    """Logits from the mean brightness of the left and right halves: a mirror swaps them."""
    def forward(self, x):
        w = x.shape[-1] // 2
        return torch.stack([x[..., :w].mean((1, 2, 3)), x[..., w:].mean((1, 2, 3))], 1) * 10


def test_flip_averages_the_probabilities_of_image_and_mirror():
    img = np.zeros((1, 48, 48), np.uint8)
    img[:, :, :24] = 255  # bright left half
    model = FERModel(_SeesLeftHalf(), InputSpec(), num_classes=2)
    plain = predict_proba(model, img, torch.device("cpu"))
    flip = predict_proba(model, img, torch.device("cpu"), tta="flip")
    mirrored = plain[:, ::-1]
    assert plain[0, 0] > 0.99 and np.allclose(flip, (plain + mirrored) / 2, atol=1e-6)
    assert np.allclose(flip, 0.5)


def test_average_of_probabilities_differs_from_probabilities_of_average_logits():
    a, b = torch.tensor([[4.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    probs = average([a, b], lambda s: torch.softmax(s, 1))
    logits = average([a, b], lambda s: torch.softmax(s, 1), mean="logits")
    assert torch.allclose(probs, (torch.softmax(a, 1) + torch.softmax(b, 1)) / 2)
    assert torch.allclose(logits, torch.softmax(torch.tensor([[2.0, 0.5]]), 1)) and not torch.allclose(probs, logits)


SUITE = one_study_suite("""
      - model: mlp
        train: {tta: tencrop, tta_crop: 40}""")


def test_a_suite_scores_one_model_with_and_without_tencrop(tmp_path):
    (tmp_path / "suite.yaml").write_text(SUITE)
    r = CliRunner().invoke(main, ["run", str(tmp_path / "suite.yaml"), "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    folder = tmp_path / "res/t/s.mlp"
    res = json.loads((folder / "result.json").read_text())
    assert res["tta"] == "tencrop" and set(res["single_view"]) == {"val", "test"}
    with open(folder / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    single = [r for r in rows if r["split"] == "test/single"]
    assert len(single) == len([r for r in rows if r["split"] == "test"]) == res["split"]["sizes"]["test"]
    acc = np.mean([int(r["true"]) == int(r["predicted"]) for r in single])
    assert res["single_view"]["test"]["accuracy"] == pytest.approx(acc)
    md = (tmp_path / "res/t/report.md").read_text()
    assert "mlp (TTA tencrop)" in md and "mlp (single view)" in md
    # an edited single-view number is caught like any other metric
    res["single_view"]["test"]["macro_f1"] = 0.5
    (folder / "result.json").write_text(json.dumps(res))
    r = CliRunner().invoke(main, ["report", str(tmp_path / "res/t")])
    assert "single_view.test.macro_f1" in r.output + (tmp_path / "res/t/report.md").read_text()
