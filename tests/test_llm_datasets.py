"""LLM samples per dataset: drawn from each dataset's own test partition, stratified over its classes;
contempt answers count as contempt where the dataset has it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataset_layouts import write_ferplus, write_rafdb
from ferbench.data import load_data
from ferbench.data.splits import make_split
from ferbench.llm.parse import parse_answer
from ferbench.llm.query import sample_partition
from ferbench.llm.sampler import stratified_sample
from ferbench.vocabulary import CLASSES_7, CLASSES_8


def test_contempt_is_its_own_answer_only_where_the_dataset_has_it():
    assert parse_answer("Contempt.", CLASSES_8) == "contempt"
    assert parse_answer("contemptuous", CLASSES_8) == "contempt"
    assert parse_answer("Contempt.", CLASSES_7) == "disgust"  # FER2013's seven: folded as before
    assert parse_answer("contempt") == "disgust"


def test_sample_is_stratified_over_an_8_class_dataset(tmp_path):
    rows = []
    for u in ("Training", "PublicTest", "PrivateTest"):
        for k in range(24):
            v = [0] * 10
            v[k % 8] = 10
            rows.append((u, f"f{u}{k}.png", v))
    split = make_split(load_data(str(write_ferplus(tmp_path / "fp", rows))), "ferplus")
    part = sample_partition(split, "test")
    idx, notes = stratified_sample(part.labels, part.ids, 2, 0, len(split.classes))
    assert np.bincount(part.labels[idx], minlength=8).tolist() == [2] * 8 and not notes
    assert all(i.startswith("PrivateTest_") for i in part.ids[idx])


def test_rafdb_sample_comes_from_its_test_list(tmp_path):
    rows = [(f"train_{k:05d}.jpg", k % 7 + 1) for k in range(21)] + [(f"test_{k:04d}.jpg", k % 7 + 1) for k in range(14)]
    split = make_split(load_data(str(write_rafdb(tmp_path / "raf", rows))), "rafdb", val_fraction=0.34)
    part = sample_partition(split, "test")
    idx, _ = stratified_sample(part.labels, part.ids, 1, 0, len(split.classes))
    assert len(idx) == 7 and all(i.startswith("test_") for i in part.ids[idx])


def test_prompt_lists_the_study_classes():
    from ferbench.llm.prompts import PROMPTS, get_prompt

    seven, _ = get_prompt("paper", CLASSES_7)
    assert seven == PROMPTS["paper"] and "contempt" not in seven  # FER2013: the paper's very words
    assert "are: angry, contempt, disgust, fear, happy, neutral, sad, and surprise." in get_prompt("paper", CLASSES_8)[0]
    text, fmt = get_prompt("json", CLASSES_8)
    assert "contempt" in text and "contempt" in fmt["json_schema"]["schema"]["properties"]["emotion"]["enum"]


def test_contempt_alias_is_no_trap_outside_llm_answers():
    from ferbench.labels import canonical_class
    from ferbench.schema.suite import SplitConfig
    from ferbench.vocabulary import vocab_class

    assert canonical_class("contempt") is None and vocab_class("Contempt") == "contempt"
    assert SplitConfig(classes=["contempt", "neutral"]).classes == ["contempt", "neutral"]


def _llm_study(tmp_path, data: Path, srv, answer_classes: str) -> dict:
    import json

    from click.testing import CliRunner

    from ferbench.cli import main

    llm = json.dumps({"endpoints": [{"model": "m", "base_url": srv.base_url, "api_key_env": "FAKE_KEY"}],
                      "sample": {"per_class": 1}})
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: c\ndata: {data}\ndefaults: {{epochs: 1}}\nstudies:\n  - name: s\n"
                     f"    split: {{kind: official{answer_classes}}}\n    experiments: [{{model: mlp}}]\n"
                     f"    llm: {llm}\n")
    r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res"), "--no-cache"])
    assert r.exit_code == 0, r.output
    return json.loads((tmp_path / "res/c/s.llm.m/result.json").read_text())


def _ferplus_rows():
    rows = []
    for u in ("Training", "PublicTest", "PrivateTest"):
        for k in range(8):
            v = [0] * 10
            v[k] = 10
            rows.append((u, f"f{u}{k}.png", v))
    return rows


def test_an_8_class_study_asks_for_contempt_and_scores_it(tmp_path, monkeypatch):
    from fake_openai import FakeOpenAI, Reply

    monkeypatch.setenv("FAKE_KEY", "sk-test-" + "C" * 30)
    data = write_ferplus(tmp_path / "fp", _ferplus_rows())
    with FakeOpenAI(lambda n, sha, body: Reply("Contempt")) as srv:
        res = _llm_study(tmp_path, data, srv, "")
    prompt = json.dumps(srv.requests[0]["body"])
    assert "contempt, disgust" in prompt
    m = res["metrics"]["sample"]
    assert m["n"] == 8 and m["accuracy"] == pytest.approx(1 / 8)  # the contempt image, scored as contempt
    assert m["per_class"]["recall"][7] == 1.0 and m["unparsed"] == 0
    assert not any("contempt" in n for n in res["sample"]["notes"])


def test_a_7_class_study_folds_contempt_into_disgust_and_records_it(tmp_path, monkeypatch):
    from fake_openai import FakeOpenAI, Reply

    monkeypatch.setenv("FAKE_KEY", "sk-test-" + "C" * 30)
    with FakeOpenAI(lambda n, sha, body: Reply("contempt")) as srv:
        res = _llm_study(tmp_path, "synthetic:700:3", srv, ", eval_per_class: 2, train_per_class: 5")
    assert "contempt" not in json.dumps(srv.requests[0]["body"])
    assert res["metrics"]["sample"]["accuracy"] == pytest.approx(1 / 7)  # the disgust image
    assert "7 answer(s) naming contempt scored as disgust: the study has no contempt class" in res["sample"]["notes"]
