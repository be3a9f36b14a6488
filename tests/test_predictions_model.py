"""``model: {predictions: FILE.csv}``: published per-image answers scored beside trained models, with coverage."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ferbench import CLASSES
from ferbench.cli import main
from ferbench.data import load_data
from ferbench.data.splits import make_split
from ferbench.errors import DataError
from ferbench.experiments.published import match_answers, read_answers

from fake_openai import FakeOpenAI, Reply

DATA = "synthetic:700:3"


def _write(path: Path, rows: list[list], header=("id", "predicted")) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def run_with_predictions(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("preds")
    test = make_split(load_data(DATA), "official", eval_per_class=6).test
    covered = list(range(0, len(test), 2))  # every other test image; a third of those answered wrongly
    rows = [[f"images/{test.ids[n]}.jpg", CLASSES[(int(test.labels[n]) + (k % 3 == 0)) % 7].upper()]
            for k, n in enumerate(covered)]
    rows.append(["not_in_this_set", "happy"])
    _write(tmp / "gpt4v.csv", rows)
    suite = tmp / "p.yaml"
    with FakeOpenAI(lambda n, sha, body: Reply("happy")) as srv, pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKE_KEY", "sk-test-" + "P" * 30)
        llm = json.dumps({"endpoints": [{"model": "m", "base_url": srv.base_url, "api_key_env": "FAKE_KEY"}],
                          "sample": {"per_class": 2}})
        suite.write_text(f"name: p\ndata: {DATA}\ndefaults: {{epochs: 1}}\nstudies:\n  - name: s\n"
                         "    split: {kind: official, train_per_class: 10, eval_per_class: 6}\n"
                         "    experiments:\n      - {model: mlp}\n"
                         f"      - {{model: {{predictions: gpt4v.csv}}, label: gpt4v}}\n    llm: {llm}\n")
        r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp / "res"), "--no-cache"],
                               catch_exceptions=False)
    assert r.exit_code == 0, r.output
    right = sum(k % 3 != 0 for k in range(len(covered)))
    return tmp / "res/p", len(covered), len(test), right


def test_predictions_file_is_scored_on_what_it_covers(run_with_predictions):
    run_dir, covered, total, right = run_with_predictions
    res = json.loads((run_dir / "s.gpt4v/result.json").read_text())
    assert res["status"] == "ok" and res["load"]["format"] == "predictions"
    assert res["load"]["coverage"]["test"] == [covered, total]
    assert res["metrics"]["test"]["n"] == covered
    assert res["metrics"]["test"]["accuracy"] == pytest.approx(right / covered)


def test_predictions_model_is_in_every_table_with_its_coverage(run_with_predictions):
    run_dir, covered, total, _ = run_with_predictions
    md = (run_dir / "report.md").read_text()
    acc = md.split("### Test accuracy")[1].split("###")[0]
    assert f"| gpt4v (loaded) (predictions: {covered:,} of {total:,} test images) " in acc
    assert "| gpt4v " in md.split("### Per-class F1 on test")[1].split("###")[0]
    assert "Confusion matrix: gpt4v" in md
    # the LLM sample: the file answers only some sampled images, and is shown with that coverage
    sample_ids = json.loads((run_dir / "s.llm.m/result.json").read_text())["sample"]["ids"]
    answered = {row[0].removeprefix("images/").removesuffix(".jpg") for row in csv.reader(open(run_dir.parent.parent
                                                                                                / "gpt4v.csv"))}
    n_cov = sum(i in answered for i in sample_ids)
    assert 0 < n_cov < len(sample_ids)
    table = md.split("### Per-class results on the LLM sample")[1].split("###")[0]
    assert f"| gpt4v (loaded) (predictions: {n_cov:,} of {len(sample_ids):,} sample images) " in table


def test_predictions_file_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="needs an id column"):
        read_answers(_write(tmp_path / "a.csv", [["x", "happy"]], ("image", "label")), CLASSES)
    with pytest.raises(DataError, match="line 2: predicted 'contempt' is not one of the study's classes"):
        read_answers(_write(tmp_path / "b.csv", [["x", "contempt"]]), CLASSES)
    with pytest.raises(DataError, match="line 3: image 'x' is answered twice"):
        read_answers(_write(tmp_path / "c.csv", [["x", "sad"], ["x", "sad"]]), CLASSES)
    with pytest.raises(DataError, match="name the same image 'x'"):  # two spellings of one image
        match_answers(read_answers(_write(tmp_path / "e.csv", [["x", "sad"], ["dir/X.png", "sad"]]), CLASSES).answers,
                      np.array(["x"]))
    got = read_answers(_write(tmp_path / "d.csv", [["test_0001_aligned.jpg", "Contempt"]]), (*CLASSES, "contempt"))
    assert got.answers["test_0001_aligned.jpg"].ranking == (7,)  # contempt stays contempt in an 8-class study


def test_predictions_covering_no_test_image_fail_their_experiment_only(tmp_path):
    _write(tmp_path / "none.csv", [["nothing", "happy"]])
    suite = tmp_path / "q.yaml"
    suite.write_text(f"name: q\ndata: {DATA}\nstudies:\n  - name: s\n    split: {{kind: official, eval_per_class: 3}}\n"
                     "    experiments: [{model: {predictions: none.csv}, label: empty}]\n")
    r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res")])
    res = json.loads((tmp_path / "res/q/s.empty/result.json").read_text())
    assert res["status"] == "failed" and "answers none of the study's" in res["error"], r.output
