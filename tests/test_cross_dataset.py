"""A study trained on FER2013 and scored on further datasets' fixtures: the train x test matrix in the report."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dataset_layouts import write_fer2013_csv, write_ferplus, write_rafdb
from ferbench.cli import main

VOTES = [("PrivateTest", f"fer{k:07d}.png", v) for k, v in enumerate([
    [0, 10, 0, 0, 0, 0, 0, 0, 0, 0], [10, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 8, 2, 0],
    [0, 0, 0, 7, 3, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 9, 0, 0]])]


@pytest.fixture(scope="module")
def cross_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cross")
    write_fer2013_csv(tmp / "fer2013.csv", per_class=4)
    write_rafdb(tmp / "raf", [("train_00001.jpg", 4)] + [(f"test_{k:04d}.jpg", k % 7 + 1) for k in range(1, 9)])
    write_ferplus(tmp / "fp", VOTES)  # 8 classes: its 2 contempt images are left out for a 7-class model
    (tmp / "gpt.csv").write_text("id,predicted\nPrivateTest_57,angry\nPrivateTest_58,angry\n")
    suite = tmp / "x.yaml"
    suite.write_text("name: x\ndata: fer2013.csv\ndefaults: {epochs: 1}\nstudies:\n  - name: s\n"
                     "    split: {kind: official, cross: [raf, 'ferplus:fp']}\n"
                     "    experiments: [{model: mlp}, {model: {predictions: gpt.csv}, label: gpt}]\n")
    r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp / "res")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return tmp / "res/x"


def test_model_trained_on_fer2013_is_scored_on_each_further_test_set(cross_run):
    res = json.loads((cross_run / "s.mlp/result.json").read_text())
    raf, fp = res["cross"]["RAF-DB"], res["cross"]["FER+"]
    assert raf["train_dataset"] == "FER2013" and raf["images"] == 8 and raf["left_out"] == 0
    assert raf["metrics"]["n"] == 8
    assert fp["images"] == 5 and fp["left_out"] == 2 and fp["left_out_classes"] == ["contempt"]
    assert fp["metrics"]["n"] == 3 and "contempt" not in fp["classes"]
    rows = (cross_run / "s.mlp/cross_predictions.csv").read_text().splitlines()
    assert rows[0] == "id,split,true,predicted" and len(rows) == 1 + 8 + 3


def test_report_has_the_matrix_with_every_model(cross_run):
    md = (cross_run / "report.md").read_text()
    table = md.split("### Cross-dataset accuracy (train set x test set)")[1].split("###")[0]
    assert "FER2013 (own test) acc %" in table and "RAF-DB acc %" in table and "FER+ acc %" in table
    # the predictions model too, with its coverage, dashes where it was not scored
    assert "| mlp " in table and "| gpt (predictions: 2 of 28 test images) " in table
    assert "2 of 5 images of contempt left out" in table


def test_cross_paths_are_made_absolute_from_the_suite_folder(tmp_path):
    from ferbench.suite import expand, load_suite

    suite = tmp_path / "y.yaml"
    suite.write_text("name: y\ndata: synthetic:70\nstudies:\n  - name: s\n"
                     "    split: {kind: official, cross: [raf, 'ferplus:fp', 'synthetic:70:1', /abs/x]}\n"
                     "    experiments: [{model: mlp}]\n")
    exp = expand(load_suite(suite))[0]
    assert exp.split.cross == [str(tmp_path / "raf"), f"ferplus:{tmp_path / 'fp'}", "synthetic:70:1", "/abs/x"]


def test_cross_numbers_come_from_the_evidence(cross_run, tmp_path):
    import shutil

    run = tmp_path / "x"
    shutil.copytree(cross_run, run)
    (run / "s.mlp/cross_predictions.csv").unlink()
    r = CliRunner().invoke(main, ["report", str(run)])
    assert r.exit_code == 0, r.output
    table = (run / "report.md").read_text().split("### Cross-dataset accuracy")[1].split("###")[0]
    assert "mlp on RAF-DB: not shown, its result.json and cross_predictions.csv disagree or the file is missing" in table
    row = next(line for line in table.splitlines() if line.startswith("| mlp "))
    assert row.count("–") == 6  # both further test sets dashed; its own test set still shown


def test_cross_sets_are_keyed_by_content_not_path(tmp_path):
    import shutil

    from PIL import Image

    write_fer2013_csv(tmp_path / "fer2013.csv", per_class=2)
    write_rafdb(tmp_path / "raf", [("train_00001.jpg", 4)] + [(f"test_{k:04d}.jpg", k % 7 + 1) for k in range(1, 8)])

    def run(cross: str):
        (tmp_path / "x.yaml").write_text("name: x\ndata: fer2013.csv\ndefaults: {epochs: 1}\nstudies:\n  - name: s\n"
                                         f"    split: {{kind: official, cross: [{cross}]}}\n"
                                         "    experiments: [{model: mlp}]\n")
        r = CliRunner().invoke(main, ["run", str(tmp_path / "x.yaml"), "--results-dir", str(tmp_path / "res")])
        assert r.exit_code == 0, r.output
        return r.output

    assert "1 run" in run("raf")
    shutil.move(tmp_path / "raf", tmp_path / "moved")
    assert "1 reused" in run("moved")  # the same images elsewhere: not scored again
    img = tmp_path / "moved/basic/Image/aligned/test_0001_aligned.jpg"
    Image.new("RGB", (100, 100), (250, 0, 0)).save(img)
    assert "1 run" in run("moved")  # one image changed: scored again
