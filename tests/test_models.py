import json

import pytest
import torch
from click.testing import CliRunner

from ferbench.cli import main
from ferbench.errors import WeightsUnavailable
from ferbench.models import create_model, list_models, model_info
from ferbench.models.cbam import CBAM, FixedKernels

PAPER_MODELS = {"basic_cnn", "deep_cnn", "resnet50_transfer", "mlp", "cnn", "rnn", "resnet34", "emotion_cnn",
                "kernel_cnn", "simple_resnet_fer", "cbam_cnn", "cnn3", "resnet_custom", "mobilenet_v2_transfer",
                "vit_tiny", "dcnn_elu"}


def _build(name, **kw):
    info = model_info(name)
    if info.pretrained:
        kw.setdefault("pretrained", False)
    m = create_model(name, num_classes=3 if name == "dcnn_elu" else 7, **kw)
    if m.spec.size > 64:
        m.set_input_size(32)  # keep the test fast; the architecture is unchanged
    return m


def test_every_paper_model_is_registered():
    assert PAPER_MODELS <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_forward_and_backward(name):
    m = _build(name)
    x = torch.rand(4, 1, 48, 48)
    y = m(x)
    assert y.shape == (4, m.num_classes)
    torch.nn.functional.cross_entropy(y, torch.tensor([0, 1, 2, 0])).backward()
    trainable = [p for p in m.parameters() if p.requires_grad]
    assert trainable and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)


@pytest.mark.parametrize("name", ["kernel_cnn", "simple_resnet_fer", "cbam_cnn"])
def test_fixed_kernels_stay_fixed(name):
    m = _build(name)
    fk = next(mod for mod in m.modules() if isinstance(mod, FixedKernels))
    before = fk.weight.clone()
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(torch.rand(4, 1, 48, 48)), torch.tensor([0, 1, 2, 3])).backward()
        opt.step()
    assert torch.equal(before, fk.weight)
    assert not any(p is fk.weight for p in m.parameters())
    assert fk.weight[0, 0].tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]


def test_cbam_shapes_and_gating():
    cbam = CBAM(64)
    x = torch.rand(2, 64, 12, 12)
    assert cbam(x).shape == x.shape
    assert cbam.channel(x).shape == (2, 64, 1, 1) and cbam.spatial(x).shape == (2, 1, 12, 12)
    assert (cbam(x).abs() <= x.abs() + 1e-6).all()  # attention only scales down (sigmoid gates)


def test_freeze_unfreeze_changes_requires_grad():
    m = _build("mobilenet_v2_transfer")
    m.freeze_backbone(True)
    assert not any(p.requires_grad for p in m.net.backbone.parameters())
    assert all(p.requires_grad for p in m.net.head.parameters())
    m.unfreeze_top(2)
    blocks = m.net.backbone_blocks()
    assert all(p.requires_grad for b in blocks[-2:] for p in b.parameters())
    assert not any(p.requires_grad for b in blocks[:-2] for p in b.parameters())
    m.freeze_backbone(False)
    assert all(p.requires_grad for p in m.parameters())


def test_resnet50_transfer_trains_head_only_and_keeps_bn_frozen(tmp_path, monkeypatch):
    from torchvision.models import ResNet50_Weights, resnet50

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ck = tmp_path / "hub" / "checkpoints"
    ck.mkdir(parents=True)
    torch.save(resnet50().state_dict(), ck / ResNet50_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1])
    m = create_model("resnet50_transfer", pretrained=True)
    assert m.backbone_frozen
    m.train()
    assert not m.net.backbone.training and m.net.head.training
    scratch = _build("resnet50_transfer")  # no ImageNet weights: the whole network trains
    assert not scratch.backbone_frozen and all(p.requires_grad for p in scratch.parameters())


@pytest.mark.parametrize("name", ["resnet50_transfer", "resnet34", "mobilenet_v2_transfer", "vit_tiny"])
def test_missing_pretrained_weights_fail_loudly(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("FERBENCH_WEIGHTS", raising=False)
    with pytest.raises(WeightsUnavailable) as err:
        create_model(name, pretrained=True)
    msg = str(err.value)
    assert "not available" in msg and "Place the file" in msg and "pretrained: false" in msg
    assert str(tmp_path) in msg


def test_fake_imagenet_weights_found_in_torch_home(tmp_path, monkeypatch):
    from torchvision.models import ResNet34_Weights, resnet34

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ref = resnet34()
    torch.nn.init.constant_(ref.layer1[0].conv1.weight, 0.123)
    ck = tmp_path / "hub" / "checkpoints"
    ck.mkdir(parents=True)
    torch.save(ref.state_dict(), ck / ResNet34_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1])
    m = create_model("resnet34", pretrained=True)
    assert torch.allclose(m.net.layer1[0].conv1.weight, torch.full_like(ref.layer1[0].conv1.weight, 0.123))


def test_models_cli_json():
    r = CliRunner().invoke(main, ["models", "--json"])
    assert r.exit_code == 0, r.output
    rows = {d["name"]: d for d in json.loads(r.output)}
    assert PAPER_MODELS <= set(rows)
    assert rows["resnet50_transfer"]["input"].startswith("224x224x3")
    assert rows["basic_cnn"]["study"] == "comparative" and rows["basic_cnn"]["parameters"] == 839047
    r = CliRunner().invoke(main, ["models"])
    assert r.exit_code == 0 and "cbam_cnn" in r.output
