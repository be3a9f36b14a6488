"""``split: {kind: manifest}``: a benchmark's own test list (FERBench-style QA manifest or plain ids) is the
test set of every model of the study; missing images are counted and named."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from dataset_layouts import write_rafdb

from ferbench.cli import main
from ferbench.data import load_data
from ferbench.data.splits import make_split
from ferbench.errors import DataError

RAF_WORDS = {1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness", 6: "anger", 7: "neutral"}
PROMPT = "Which expression? Answer between <answer></answer> tags."


def _raf(root: Path) -> tuple[Path, list[int]]:
    codes = [1 + k % 7 for k in range(21)]
    rows = [(f"train_{k:05d}.jpg", 1 + k % 7) for k in range(1, 36)] + \
           [(f"test_{k + 1:04d}.jpg", c) for k, c in enumerate(codes)]
    return write_rafdb(root, rows), codes


def _qa(path: Path, codes: list[int], picked: list[int], *, wrong_label_at: int | None = None) -> Path:
    """UniFER's layout: absolute-looking image paths with RAF-DB's _aligned names, the label in its words."""
    items = [{"image_path": f"/RAF-DB/aligned/test_{k + 1:04d}_aligned.jpg",
              "true_label": RAF_WORDS[codes[k] % 7 + 1] if k == wrong_label_at else RAF_WORDS[codes[k]],
              "prompt": PROMPT, "candidate_labels": list(RAF_WORDS.values())} for k in picked]
    items.append({"image_path": "/RAF-DB/aligned/test_0999_aligned.jpg", "true_label": "fear", "prompt": PROMPT,
                  "candidate_labels": list(RAF_WORDS.values())})  # not in the dataset
    path.write_text(json.dumps(items))
    return path


def test_qa_manifest_is_the_test_set_and_missing_images_are_named(tmp_path):
    root, codes = _raf(tmp_path / "raf")
    picked = [0, 2, 3, 5, 8, 9, 12, 14, 15, 20]
    man = _qa(tmp_path / "rafdb_qa.json", codes, picked, wrong_label_at=3)
    s = make_split(load_data(str(root)), "manifest", manifest=str(man), val_fraction=0.2)
    assert sorted(s.test.ids) == sorted(f"test_{k + 1:04d}" for k in picked)
    assert not set(s.test.ids) & set(s.train.ids) and not set(s.test.ids) & set(s.val.ids)
    assert len(s.train) + len(s.val) == 35 + 21 - len(picked)  # every other image: the pool
    notes = " ".join(s.notes)
    assert "10 of its 11 images found" in notes and "1 missing image(s) not scored, e.g. /RAF-DB/aligned/test_0999" \
        in notes
    assert "true_label disagrees with the dataset on 1 images, e.g. test_0004" in notes
    item = s.test_items["test_0001"]  # kept for an LLM experiment
    assert item.prompt == PROMPT and item.candidates[:2] == ("surprise", "fear")


def test_plain_id_list_and_errors(tmp_path):
    root, _ = _raf(tmp_path / "raf")
    data = load_data(str(root))
    (tmp_path / "ids.txt").write_text("# RAF-DB ids\ntest_0002\nTEST_0003.JPG\n\n")
    s = make_split(data, "manifest", manifest=str(tmp_path / "ids.txt"), val_fraction=None)
    assert list(s.test.ids) == ["test_0002", "test_0003"] and s.val is None
    (tmp_path / "none.txt").write_text("nothing_here\n")
    with pytest.raises(DataError, match="none of its 1 images is in RAF-DB"):
        make_split(data, "manifest", manifest=str(tmp_path / "none.txt"))
    (tmp_path / "bad.json").write_text('[{"image": 1}]')
    with pytest.raises(DataError, match="item 1: expected an object with a string 'image_path'"):
        make_split(data, "manifest", manifest=str(tmp_path / "bad.json"))
    with pytest.raises(DataError, match="needs 'manifest: FILE'"):
        make_split(data, "manifest")


def test_network_clip_published_and_llm_on_one_manifest_compared_in_the_report(tmp_path, monkeypatch):
    """Every model kind on exactly the manifest's items; CLIP joins where open_clip is installed."""
    from fake_openai import FakeOpenAI, Reply

    root, codes = _raf(tmp_path / "raf")
    picked = [0, 1, 3, 4, 7, 8, 10, 12, 14, 15, 17, 19]
    _qa(tmp_path / "qa.json", codes, picked)
    has_clip = importlib.util.find_spec("open_clip") is not None
    if has_clip:
        from test_clip import tiny_clip

        tiny_clip(tmp_path / "tiny")
    with open(tmp_path / "answers.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "gt", "gpt4v"])
        for k in range(21):  # every 4th answer 'fear,anger', the others right with a second guess
            second = "anger" if codes[k] != 6 else "fear"
            w.writerow([f"test_{k + 1:04d}_aligned.jpg", "", f"{RAF_WORDS[codes[k]]},{second}" if k % 4 else "fear,anger"])
    monkeypatch.setenv("FAKE_KEY", "sk-test-" + "M" * 30)
    with FakeOpenAI(lambda n, sha, body: Reply("happy" if n % 3 else "I cannot tell.")) as srv:
        llm = json.dumps({"endpoints": [{"model": "m", "base_url": srv.base_url, "api_key_env": "FAKE_KEY",
                                         "price_input_per_1m": 1.0, "price_output_per_1m": 1.0}],
                          "sample": {"split": "test", "per_class": None}})
        clip = "      - {model: {clip: tiny}, label: clip}\n" if has_clip else ""
        (tmp_path / "s.yaml").write_text(
            f"name: s\ndata: {root}\ndefaults: {{epochs: 1}}\nstudies:\n  - name: st\n"
            "    split: {kind: manifest, manifest: qa.json, val_fraction: 0.2}\n"
            f"    experiments:\n      - {{model: mlp}}\n{clip}"
            f"      - {{model: {{predictions: answers.csv}}, label: gpt4v}}\n    llm: {llm}\n")
        r = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--results-dir", str(tmp_path / "res"),
                                      "--no-cache"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    want = sorted(f"test_{k + 1:04d}" for k in picked)
    kinds = [("st.mlp", "test"), ("st.gpt4v", "test"), ("st.llm.m", "sample")] + [("st.clip", "test")] * has_clip
    for name, part in kinds:
        rows = list(csv.DictReader(open(tmp_path / "res/s" / name / "predictions.csv")))
        got = sorted(x["id"] for x in rows if x["split"] == part) if part == "test" else sorted(x["id"] for x in rows)
        assert got == want, name
    md = (tmp_path / "res/s/report.md").read_text()
    assert "note: manifest: 1 missing image(s) not scored" in md
    table = md.split("### Vision-language models beside the best network")[1].split("###")[0]
    lines = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[1:-1]] for ln in table.splitlines()
             if ln.startswith("| ") and "---" not in ln and not ln.startswith("| model")}
    assert set(lines) == {"mlp (best network)", "gpt4v", "m (LLM)"} | ({"clip"} if has_clip else set())
    res = json.loads((tmp_path / "res/s/st.gpt4v/result.json").read_text())
    assert res["load"]["coverage"]["test"] == [12, 12]
    # the 9 answers for images outside the manifest: in the pool's val partition, or unknown (train images)
    assert res["load"]["coverage"]["val"][0] + res["load"]["published"]["unknown"] == 9
    top1 = sum(k % 4 != 0 or codes[k] == 2 for k in picked) / len(picked)  # 'fear' first: right for fear images
    assert lines["gpt4v"][1] == "published answers" and lines["gpt4v"][3] == f"{100 * top1:.2f}"
    assert lines["m (LLM)"][6] == f"{100 * 4 / 12:.2f}"  # every third request answered with no class
    for name in set(lines) - {"mlp (best network)"}:
        assert lines[name][8] == "12" and lines[name][7] != "–"  # McNemar on the same 12 images
    # the published row's p, recomputed from the two predictions files with scipy's exact binomial test
    from scipy.stats import binomtest

    def right(name):
        return {x["id"]: x["true"] == x["predicted"] for x in csv.DictReader(open(tmp_path / "res/s" / name /
                                                                                    "predictions.csv"))
                if x["split"] == "test"}
    net = right("st.mlp")
    for row, eid in [("gpt4v", "st.gpt4v"), ("m (LLM)", "st.llm.m")] + [("clip", "st.clip")] * has_clip:
        other = right(eid)  # every row's p, not only the published one's
        b, c = sum(net[i] and not other[i] for i in want), sum(other[i] and not net[i] for i in want)
        p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
        assert lines[row][7] == ("< 0.001" if p < 0.001 else f"{p:.3f}"), row
