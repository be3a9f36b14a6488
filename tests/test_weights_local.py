"""Pretrained weights come only from local files: a run never touches the network for them."""
from __future__ import annotations

import socket

import pytest
import torch

from ferbench.errors import WeightsUnavailable
from ferbench.models import create_model


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Every way a download could start fails loudly and is recorded; no offline switch is set, so
    only the code's own rule keeps it local."""
    attempts: list[str] = []

    def refuse(what):
        def fail(*a, **k):
            attempts.append(what)
            raise AssertionError(f"download attempted: {what}")
        return fail

    import huggingface_hub
    import torch.hub

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse("torch.hub.load_state_dict_from_url"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse("torch.hub.download_url_to_file"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse("hf_hub_download"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    for var in ("FERBENCH_OFFLINE", "HF_HUB_OFFLINE", "FERBENCH_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return attempts


@pytest.mark.parametrize("name,url", [("resnet34", "https://download.pytorch.org/models/resnet34-b627a593.pth"),
                                      ("mobilenet_v2_transfer", "https://download.pytorch.org/models/"),
                                      ("vit_tiny", "https://huggingface.co/timm/vit_tiny_patch16_224")])
def test_missing_weights_never_download_and_say_where_in_one_line(no_network, tmp_path, name, url):
    with pytest.raises(WeightsUnavailable) as err:
        create_model(name, pretrained=True)
    msg = str(err.value)
    assert no_network == []
    assert "\n" not in msg and "never downloads" in msg and url in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg and "weights: PATH" in msg


def test_weights_from_ferbench_weights_dir_without_network(no_network, tmp_path, monkeypatch):
    from torchvision.models import ResNet34_Weights, resnet34

    ref = resnet34()
    torch.nn.init.constant_(ref.fc.bias, 0.5)
    monkeypatch.setenv("FERBENCH_WEIGHTS", str(tmp_path))
    torch.save(ref.state_dict(), tmp_path / ResNet34_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1])
    m = create_model("resnet34", pretrained=True)
    assert torch.equal(m.net.layer1[0].conv1.weight, ref.layer1[0].conv1.weight) and no_network == []


def test_explicit_weights_file_missing_names_it(no_network, tmp_path):
    with pytest.raises(WeightsUnavailable, match=r"the suite's weights file .*nope\.pth does not exist"):
        create_model("resnet34", pretrained=True, weights=str(tmp_path / "nope.pth"))
    assert no_network == []
