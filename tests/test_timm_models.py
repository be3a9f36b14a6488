"""Any timm architecture by name: built for the study's classes and channels, trained and reported
through a suite, weights only from local files."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from conftest import one_study_suite

from ferbench.cli import main
from ferbench.errors import WeightsUnavailable
from ferbench.models import count_flops, create_model

SUITE = one_study_suite("""
      - model: {timm: test_resnet}
        model_args: {drop_rate: 0.1}
        train: {optimizer: sgd, lr: 0.05, tta: flip}""")


def _stem(net):
    return next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_timm_model_has_study_classes_one_channel_and_counted_flops():
    m = create_model("timm:test_resnet", num_classes=3)
    assert _stem(m.net).in_channels == 1 and m(torch.rand(2, 1, 48, 48)).shape == (2, 3)
    flops = count_flops(m)
    assert flops and flops > 1e6


def test_unknown_timm_name_and_reserved_args_fail_with_a_clear_message():
    with pytest.raises(KeyError, match="resnet18"):
        create_model("timm:resnet18x")
    with pytest.raises(ValueError, match="checkpoint_path cannot be set"):
        create_model("timm:test_resnet", checkpoint_path="/etc/passwd")


def test_timm_pretrained_only_from_a_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("FERBENCH_WEIGHTS", raising=False)
    with pytest.raises(WeightsUnavailable, match=r"test_resnet\.safetensors .*huggingface\.co/timm/"):
        create_model("timm:test_resnet", pretrained=True)
    import timm
    from safetensors.torch import save_file

    ref = timm.create_model("test_resnet", num_classes=1000)
    torch.nn.init.constant_(_stem(ref).weight, 0.25)
    save_file(ref.state_dict(), tmp_path / "w.safetensors")
    m = create_model("timm:test_resnet", num_classes=7, pretrained=True, weights=str(tmp_path / "w.safetensors"))
    # the RGB stem summed into one channel: three times the weight
    assert torch.allclose(_stem(m.net).weight, torch.full_like(_stem(m.net).weight, 0.75))
    assert m.net.get_classifier().out_features == 7


def test_a_timm_model_trains_and_is_reported_through_a_suite(tmp_path):
    (tmp_path / "suite.yaml").write_text(SUITE)
    r = CliRunner().invoke(main, ["run", str(tmp_path / "suite.yaml"), "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "res/t/s.timm-test_resnet/result.json").read_text())
    assert res["status"] == "ok" and res["model"] == "timm:test_resnet" and res["tta"] == "flip"
    assert res["parameters"]["total"] == sum(p.numel() for p in create_model("timm:test_resnet", 7).parameters())
    assert res["parameters"]["flops"] > 1e6 and res["model_info"]["study"] == "timm"
    md = (tmp_path / "res/t/report.md").read_text()
    assert "timm-test_resnet (TTA flip)" in md and "GFLOPs" in md


def test_models_cli_lists_timm_architectures():
    r = CliRunner().invoke(main, ["models", "--timm", "convnext_at*"])
    assert r.exit_code == 0 and "convnext_atto" in r.output and "model: {timm: NAME}" in r.output
    r = CliRunner().invoke(main, ["models", "--timm", "nothing_like_this*"])
    assert r.exit_code != 0 and "timm has no architecture matching" in r.output
