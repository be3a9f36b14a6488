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
from ferbench.data import load_data
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
    suite.write_text(f"name: a\ndata: {DATA}\ndefaults: {{epochs: 1}}\n"  # val and test stay whole
                     "studies: [{name: s, split: {kind: official, train_per_class: 30},\n"
                     "            experiments: [{model: basic_cnn}]}]\n")
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


# --- issue 11: every loaded format in every table, probabilities kept, layouts explained ---------------

class _Tiny(torch.nn.Module):
    """A small convolutional FER net (untrained, seeded): enough to tell formats apart if they differed."""

    def __init__(self, softmax: bool = False, nhwc: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 4 * 4, 7)
        self.softmax, self.nhwc = softmax, nhwc

    def forward(self, x):
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        x = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4).flatten(1)
        out = self.fc(x)
        return torch.softmax(out, 1) if self.softmax else out


def _save_formats(tmp_path: Path) -> dict[str, Path]:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    batch = torch.export.Dim("batch")
    files = {"ts": tmp_path / "tiny.pt", "ex": tmp_path / "tiny.pt2", "ox": tmp_path / "tiny.onnx",
             "proba": tmp_path / "tiny_proba.pt"}
    torch.jit.save(torch.jit.script(_Tiny()), files["ts"])
    torch.export.save(torch.export.export(_Tiny(), (torch.rand(4, 1, 48, 48),), dynamic_shapes=({0: batch},)),
                      files["ex"])
    torch.onnx.export(_Tiny(), (torch.rand(4, 1, 48, 48),), str(files["ox"]), dynamo=True,
                      dynamic_shapes=({0: batch},))
    torch.jit.save(torch.jit.script(_Tiny(softmax=True)), files["proba"])
    return files


@pytest.fixture(scope="module")
def four_models(tmp_path_factory):
    """One study: a trained model and TorchScript, torch.export and ONNX files of one net, plus a
    variant of that net that outputs probabilities."""
    tmp = tmp_path_factory.mktemp("four")
    files = _save_formats(tmp)
    loads = "".join(f"      - {{model: {{load: {json.dumps(str(f))}, {INPUT}}}, label: {k}}}\n" for k, f in files.items())
    suite = tmp / "four.yaml"
    suite.write_text(f"name: four\ndata: {DATA}\ndefaults: {{epochs: 1}}\nstudies:\n  - name: s\n"
                     f"    split: {{kind: official, train_per_class: 20, eval_per_class: 12}}\n"
                     f"    experiments:\n      - {{model: mlp}}\n{loads}")
    r = _run(suite, tmp / "res")
    assert r.exit_code == 0, r.output
    return tmp / "res/four", files


def test_every_loaded_format_is_in_every_table(four_models):
    from html.parser import HTMLParser

    run_dir, _ = four_models
    md = (run_dir / "report.md").read_text()
    labels = ["mlp", "ts (loaded)", "ex (loaded)", "ox (loaded)", "proba (loaded)"]
    acc_table = md.split("### Test accuracy")[1].split("###")[0]
    f1_table = md.split("### Per-class F1 on test")[1].split("###")[0]
    for lbl in labels:
        assert f"| {lbl} " in acc_table, lbl
        assert f"| {lbl.replace(' (loaded)', '')} " in f1_table, lbl
    for name in ("ts", "ex", "ox", "proba"):
        assert f"Confusion matrix: {name}" in md and f"Per-class precision / recall / F1: {name}" in md

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self._row, self._in = [], None, False

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self._row = []
            self._in = tag in ("td", "th")

        def handle_data(self, data):
            if self._in and self._row is not None:
                self._row.append(data.strip())

        def handle_endtag(self, tag):
            if tag == "tr" and self._row is not None:
                self.rows.append(self._row)
            if tag in ("td", "th"):
                self._in = False

    p = Cells()
    p.feed((run_dir / "report.html").read_text())
    first_cells = {r[0] for r in p.rows if r}
    assert set(labels) <= first_cells
    assert (run_dir / "tables/s_accuracy.csv").read_text().count("(loaded)") == 4


def test_formats_agree_and_probabilities_stay_probabilities(four_models):
    run_dir, files = four_models
    preds = {k: _probs(run_dir / f"s.{k}/predictions.csv") for k in files}
    ids = sorted(preds["ts"])
    ts = np.stack([preds["ts"][i] for i in ids])
    np.testing.assert_array_equal(ts, np.stack([preds["ex"][i] for i in ids]))  # both run in torch
    np.testing.assert_allclose(ts, np.stack([preds["ox"][i] for i in ids]), atol=2e-5)  # onnxruntime
    res = {k: json.loads((run_dir / f"s.{k}/result.json").read_text()) for k in files}
    assert {res[k]["load"]["format"] for k in files} == {"torchscript", "export", "onnx"}
    assert res["proba"]["load"]["outputs"] == "probabilities" and res["proba"]["load"]["outputs_detected"]
    assert res["ts"]["load"]["outputs"] == "logits"
    # the probability variant's predictions.csv rows are its outputs, not a second softmax of them
    d = load_data(DATA)
    from ferbench.data.splits import make_split

    test = make_split(d, "official", train_per_class=20, eval_per_class=12).test
    with torch.no_grad():
        out = _Tiny(softmax=True)(torch.from_numpy(test.images).float().div(255).unsqueeze(1)).numpy()
    got = np.stack([preds["proba"][i] for i in test.ids])
    np.testing.assert_allclose(got, out, atol=6e-6)
    # parameters: the ONNX initializers and the exported program count what the module has
    n = sum(p.numel() for p in _Tiny().parameters())
    assert {res[k]["parameters"]["total"] for k in ("ts", "ex", "ox")} == {n}
    assert res["ox"]["parameters"]["counted_from"] == "ONNX initializers"
    # no Grad-CAM for files that cannot be hooked, and the report says why
    assert res["ts"]["gradcam"]["available"] is False and "cannot be hooked" in res["ts"]["gradcam"]["reason"]
    assert "No Grad-CAM for ts: a torchscript file cannot be hooked" in (run_dir / "report.md").read_text()


def test_channels_last_onnx_is_transposed_or_refused(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    f = tmp_path / "keras_like.onnx"
    torch.onnx.export(_Tiny(nhwc=True), (torch.rand(4, 48, 48, 1),), str(f), dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    imgs = load_data(DATA).images[:16]
    loaded = load_user_model(_cfg(load=str(f)), CLASSES, probe_images=imgs)
    assert loaded.layout == "NHWC" and "NHWC" in loaded.notes[0]
    with torch.no_grad():
        x = torch.from_numpy(imgs).float().div(255).unsqueeze(1)
        np.testing.assert_allclose(loaded.model(x).numpy(), _Tiny()(x).numpy(), atol=2e-5)
    with pytest.raises(ModelLoadError, match=r"declares layout NCHW but the ONNX input is .*NHWC"):
        load_user_model(_cfg(load=str(f), layout="NCHW"), CLASSES)


def test_fixed_batch_export_gets_the_dynamic_batch_hint_and_others_do_not(tmp_path):
    f = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(_Tiny(), (torch.rand(1, 1, 48, 48),)), f)
    with pytest.raises(ModelLoadError, match="need a dynamic batch dimension"):
        load_user_model(_cfg(load=str(f)), CLASSES)
    g = tmp_path / "t.pt"
    torch.jit.save(torch.jit.script(_Tiny()), g)
    with pytest.raises(ModelLoadError) as e:
        load_user_model(_cfg(load=str(g), input={"size": 48, "channels": 3}), CLASSES)
    assert "dynamic batch" not in str(e.value) and "The runtime said" in str(e.value)
