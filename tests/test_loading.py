"""Loading instead of training: ferbench checkpoints, users' TorchScript / torch.export / ONNX models."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ferbench import CLASSES
from ferbench.cli import main
from ferbench.errors import ModelLoadError
from ferbench.models.loading import load_user_model
from ferbench.schema.suite import UserModelConfig

DATA = "synthetic:1400:7"


def _run(suite: Path, res: Path, *extra):
    return CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(res), *extra], catch_exceptions=False)


def _probs(path: Path) -> dict[str, np.ndarray]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return {r["id"]: np.array([float(r[f"p_{c}"]) for c in CLASSES]) for r in rows if r["split"] == "test"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    suite = tmp / "a.yaml"
    suite.write_text(f"name: a\ndata: {DATA}\ndefaults: {{epochs: 2}}\n"
                     "studies: [{name: s, split: {kind: official}, experiments: [{model: basic_cnn}]}]\n")
    assert _run(suite, tmp / "res").exit_code == 0
    return tmp, suite, tmp / "res/a/s.basic_cnn"


def _load_suite(tmp: Path, model_yaml: str, name="b") -> Path:
    p = tmp / f"{name}.yaml"
    p.write_text(f"name: {name}\ndata: {DATA}\n"
                 f"studies: [{{name: s, split: {{kind: official}}, experiments: [{{model: {model_yaml}, label: mine}}]}}]\n")
    return p


def _export_net(trained_dir: Path):
    m = load_user_model(UserModelConfig(name="basic_cnn", checkpoint=str(trained_dir / "model.pt")), CLASSES)
    return m.model.net.eval()


def test_checkpoint_from_one_run_gives_identical_predictions_in_another(trained, tmp_path):
    _, _, exp_dir = trained
    ck = json.dumps(str(exp_dir / "model.pt"))
    r = _run(_load_suite(tmp_path, f"{{name: basic_cnn, checkpoint: {ck}}}"), tmp_path / "res")
    assert r.exit_code == 0, r.output
    a, b = _probs(exp_dir / "predictions.csv"), _probs(tmp_path / "res/b/s.mine/predictions.csv")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    res = json.loads((tmp_path / "res/b/s.mine/result.json").read_text())
    assert res["kind"] == "load" and res["load"]["file"].endswith("model.pt") and res["load"]["format"] == "state_dict"


def _same_as_trained(trained, tmp_path, model_yaml):
    _, _, exp_dir = trained
    r = _run(_load_suite(tmp_path, model_yaml), tmp_path / "res")
    assert r.exit_code == 0, r.output
    a, b = _probs(exp_dir / "predictions.csv"), _probs(tmp_path / "res/b/s.mine/predictions.csv")
    assert a.keys() == b.keys()
    np.testing.assert_allclose(np.stack([a[k] for k in a]), np.stack([b[k] for k in a]), atol=2e-5)


INPUT = "input: {size: 48, channels: 1, mean: [0.0], std: [1.0]}"


def test_torchscript_round_trip(trained, tmp_path):
    f = tmp_path / "mine.pt"
    torch.jit.save(torch.jit.script(_export_net(trained[2])), f)
    _same_as_trained(trained, tmp_path, f"{{load: {json.dumps(str(f))}, {INPUT}}}")


def test_torch_export_round_trip(trained, tmp_path):
    f = tmp_path / "mine.pt2"
    batch = {0: torch.export.Dim("batch")}
    torch.export.save(torch.export.export(_export_net(trained[2]), (torch.rand(4, 1, 48, 48),),
                                          dynamic_shapes=(batch,)), f)
    _same_as_trained(trained, tmp_path, f"{{load: {json.dumps(str(f))}, {INPUT}}}")


def test_onnx_round_trip(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    f = tmp_path / "mine.onnx"
    torch.onnx.export(_export_net(trained[2]), (torch.rand(4, 1, 48, 48),), str(f), dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    _same_as_trained(trained, tmp_path, f"{{load: {json.dumps(str(f))}, {INPUT}}}")


def test_other_class_order_is_remapped(trained, tmp_path):
    net = _export_net(trained[2])
    order = list(reversed(CLASSES))

    class Reversed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x).flip(1)

    f = tmp_path / "rev.pt"
    torch.jit.save(torch.jit.script(Reversed()), f)
    _same_as_trained(trained, tmp_path, f"{{load: {json.dumps(str(f))}, {INPUT}, classes: {json.dumps(order)}}}")


def test_eval_only_reevaluates_without_training(trained):
    tmp, suite, exp_dir = trained
    before = json.loads((exp_dir / "result.json").read_text())
    r = _run(suite, tmp / "res", "--eval-only")
    assert r.exit_code == 0, r.output
    after = json.loads((exp_dir / "result.json").read_text())
    assert after["training"]["eval_only"] is True and after["history"] == before["history"]
    assert after["metrics"]["test"]["accuracy"] == before["metrics"]["test"]["accuracy"]
    assert after["finished"] != before["finished"]


def _cfg(**kw):
    kw.setdefault("input", {"size": 48, "channels": 1, "mean": [0.0], "std": [1.0]})
    return UserModelConfig(**kw)


def test_bad_files_give_one_clear_message_each(trained, tmp_path):
    with pytest.raises(ModelLoadError, match=r"model file .*nope\.pt not found"):
        load_user_model(_cfg(load=str(tmp_path / "nope.pt")), CLASSES)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a model")
    with pytest.raises(ModelLoadError, match="not a readable TorchScript file"):
        load_user_model(_cfg(load=str(junk)), CLASSES)
    with pytest.raises(ModelLoadError, match="cannot read .* as a PyTorch checkpoint"):
        load_user_model(UserModelConfig(name="basic_cnn", checkpoint=str(junk)), CLASSES)
    f = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(_export_net(trained[2])), f)
    with pytest.raises(ModelLoadError, match="wrong number of classes: the model outputs 7 scores but 3 classes"):
        load_user_model(_cfg(load=str(f), classes=["happy", "sad", "neutral"]), CLASSES)
    with pytest.raises(ModelLoadError, match=r"(?s)does not accept the declared input 64x64x1 in NCHW layout.*"
                                             r"The runtime said: RuntimeError: .*mat1 and mat2 shapes"):
        load_user_model(_cfg(load=str(f), input={"size": 64, "channels": 1}), CLASSES)
    with pytest.raises(ModelLoadError, match="does not fit cnn3 with 7 classes"):
        load_user_model(UserModelConfig(name="cnn3", checkpoint=str(trained[2] / "model.pt")), CLASSES)


def test_a_bad_file_fails_its_experiment_only(trained, tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"nope")
    suite = tmp_path / "c.yaml"
    suite.write_text(f"name: c\ndata: {DATA}\ndefaults: {{epochs: 1}}\nstudies: [{{name: s, split: {{kind: official}}, "
                     f"experiments: [{{model: mlp}}, {{model: {{load: {json.dumps(str(junk))}, {INPUT}}}, label: u}}]}}]\n")
    r = _run(suite, tmp_path / "res")
    assert r.exit_code == 1
    res = json.loads((tmp_path / "res/c/s.u/result.json").read_text())
    assert res["status"] == "failed" and "not a readable ONNX model" in res["error"]
    assert json.loads((tmp_path / "res/c/s.mlp/result.json").read_text())["status"] == "ok"


def test_models_cli_reports_weight_availability(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("FERBENCH_WEIGHTS", str(tmp_path / "w"))
    (tmp_path / "w").mkdir()
    torch.save({}, tmp_path / "w" / "resnet50-0676ba61.pth")
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(main, ["models", "--json"]).output)}
    ws = rows["resnet50_transfer"]["weights_status"]
    assert ws["available"] and ws["found"] == str(tmp_path / "w" / "resnet50-0676ba61.pth")
    miss = rows["resnet34"]["weights_status"]
    assert not miss["available"] and miss["file"] == "resnet34-b627a593.pth"
    assert str(tmp_path / "hub" / "checkpoints" / "resnet34-b627a593.pth") in miss["looked"]
    out = CliRunner().invoke(main, ["models"]).output
    assert "no: resnet34-b627a593.pth" in out
