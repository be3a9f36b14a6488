"""Published answers in Lian et al.'s format (``name,gt,gpt4v``, a ranking per image) scored on RAF-DB- and
AffectNet-layout fixtures: top-1, top-5 and coverage computed here independently of ferbench."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from dataset_layouts import write_affectnet, write_rafdb

from ferbench import CLASSES
from ferbench.cli import main
from ferbench.errors import DataError
from ferbench.data.ids import id_parts
from ferbench.experiments.published import match_answers, read_answers

RAF_WORDS = {1: "Surprise", 2: "Fear", 3: "Disgust", 4: "Happiness", 5: "Sadness", 6: "Anger", 7: "Neutral"}
AFFECTNET_WORDS = {0: "Neutral", 1: "Happiness", 2: "Sadness", 3: "Surprise", 4: "Fear", 5: "Disgust", 6: "Anger",
                   7: "Contempt"}


def _lian_csv(path: Path, rows: list[tuple[str, str, list[str]]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "gt", "gpt4v"])
        for name, gt, ranking in rows:
            w.writerow([name, gt, ",".join(ranking)])
    return path


def _rankings(truth_words: list[str], words: list[str], seed: int) -> tuple[list[list[str]], float, float]:
    """A top-5 ranking per image (the truth 1st, 2nd, ... 5th, or left out, in turn; the others shuffled), and
    its top-1 and top-5 rates."""
    rng = np.random.default_rng(seed)
    out = []
    for k, t in enumerate(truth_words):
        others = [w for w in words if w != t]
        rng.shuffle(others)
        place = k % 7  # 5 or 6: the truth is not in the top-5
        ranking = others[:4]
        ranking.insert(min(place, 4), t) if place < 5 else ranking.append(others[4])
        out.append(ranking)
    top1 = np.mean([r[0] == t for r, t in zip(out, truth_words)])
    top5 = np.mean([t in r for r, t in zip(out, truth_words)])
    return out, float(top1), float(top5)


def _run(tmp_path: Path, data: Path, kind: str, answers: Path) -> dict:
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\ndata: {data}\nstudies:\n  - name: st\n    split: {{kind: {kind}, val_fraction: 0.25}}\n"
                     f"    experiments:\n      - {{model: {{predictions: {answers}}}, label: gpt4v}}\n")
    r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads((tmp_path / "res/s/st.gpt4v/result.json").read_text())


def test_lian_answers_on_rafdb_score_top1_top5_and_coverage(tmp_path):
    codes = [1 + k % 7 for k in range(14)]
    rows = [(f"train_{k:05d}.jpg", 1 + k % 7) for k in range(1, 29)] + \
           [(f"test_{k + 1:04d}.jpg", c) for k, c in enumerate(codes)]
    root = write_rafdb(tmp_path / "raf", rows)
    words = list(RAF_WORDS.values())
    truth = [RAF_WORDS[c] for c in codes]
    answered = list(range(1, 14))  # test_0001 is missing from the published file
    rankings, top1, top5 = _rankings([truth[k] for k in answered], words, seed=3)
    lian = []
    for k, ranking in zip(answered, rankings):
        name = f"test_{k + 1:04d}_aligned.jpg"
        gt = truth[k] if k != 5 else next(w for w in words if w != truth[k])  # one gt disagrees with the dataset
        lian.append((name.upper() if k == 2 else name, gt, ranking))
    res = _run(tmp_path, root, "rafdb", _lian_csv(tmp_path / "rafdb_gpt4v.csv", lian))
    assert res["status"] == "ok"
    assert res["load"]["coverage"]["test"] == [13, 14]
    assert res["metrics"]["test"]["n"] == 13
    assert res["metrics"]["test"]["accuracy"] == pytest.approx(top1)
    part = res["load"]["published"]["parts"]["test"]
    assert part["top_k"]["1"] == pytest.approx(top1) and part["top_k"]["5"] == pytest.approx(top5)
    assert 0 < top1 < top5 < 1  # the fixture tells top-1 from top-5 and from a perfect ranking
    assert part["missing"] == 1 and part["missing_examples"] == ["test_0001"]
    assert part["gt_disagree"] == 1 and part["gt_checked"] == 13 and part["gt_examples"][0].startswith("test_0006")
    assert res["load"]["published"]["format"] == "ranked"
    md = (tmp_path / "res/s/report.md").read_text()
    assert "(predictions: 13 of 14 test images)" in md
    note = md.split("gpt4v (published answers):")[1].split("\n\n")[0]
    assert "1 missing, e.g. test_0001" in note.replace("\\", "") and "top-5" in note
    assert "its gt column disagrees with the dataset on 1 of 13 images" in note


def test_lian_answers_on_affectnet_match_bare_file_names(tmp_path):
    val = [k % 8 for k in range(16)]
    root = write_affectnet(tmp_path / "an", train=[k % 8 for k in range(32)], val=val)
    words = list(AFFECTNET_WORDS.values())
    truth = [AFFECTNET_WORDS[c] for c in val]
    rankings, top1, top5 = _rankings(truth, words, seed=5)
    # AffectNet's own lists say <folder>/<file>; the published answers name the bare file
    lian = [(f"v{k:04d}.jpg", truth[k], r) for k, r in enumerate(rankings)]
    lian.append(("t0000.jpg", "Neutral", words[:5]))  # a training image: not in the scored partitions
    evil = "<img src=x onerror=alert(1)>|x.jpg"  # an id is text from someone else's file
    lian.append((evil, "", ["Fear"]))
    res = _run(tmp_path, root, "affectnet", _lian_csv(tmp_path / "affectnet_gpt4v.csv", lian))
    assert res["load"]["coverage"]["test"] == [16, 16]
    assert res["metrics"]["test"]["accuracy"] == pytest.approx(top1)
    assert res["load"]["published"]["parts"]["test"]["top_k"]["5"] == pytest.approx(top5)
    assert res["load"]["published"]["unknown"] == 2 and res["load"]["published"]["unknown_examples"] == ["t0000.jpg", evil]
    html = (tmp_path / "res/s/report.html").read_text()
    assert "2 unknown id(s) left unscored" in html and "<img src=x" not in html


def test_ids_match_with_or_without_folder_and_extension_and_never_by_guess(tmp_path):
    assert id_parts("/RAF-DB/aligned/Test_0001_aligned.JPG") == ("raf-db", "aligned", "test_0001")
    assert id_parts("KA.AN1.39") == ("ka.an1.39",)  # a dot that is no image extension stays
    path = _lian_csv(tmp_path / "a.csv", [("x1.jpg", "", ["Happiness"]), ("3/y.jpg", "", ["Sadness"]),
                                          ("2/y.png", "", ["Sadness"]), ("z.jpg", "", ["Anger"]),
                                          ("9/q.jpg", "", ["Fear"])])
    got = match_answers(read_answers(path, CLASSES).answers, np.array(["1/x1.jpg", "1/z.jpg", "2/z.jpg", "1/q.jpg",
                                                                       "2/y.jpg", "3/y.jpg"]))
    assert {n: a.ranking for n, a in got.by_image.items()} == {0: (3,), 5: (4,), 4: (4,)}
    assert got.ambiguous == ["z.jpg"]  # 1/z and 2/z: counted, named, not picked
    assert got.unknown == ["9/q.jpg"]  # the folder disagrees with 1/q.jpg


def test_ranking_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="line 2: ranked 'Bored' is not one of the study's classes"):
        read_answers(_lian_csv(tmp_path / "a.csv", [("x", "", ["Happiness", "Bored"])]), CLASSES)
    with pytest.raises(DataError, match="names a class twice"):
        read_answers(_lian_csv(tmp_path / "b.csv", [("x", "", ["Happiness", "joy"])]), CLASSES)
    # contempt below the top of a 7-class study's ranking is kept as a class the study cannot score
    got = read_answers(_lian_csv(tmp_path / "c.csv", [("x", "", ["Happiness", "Contempt", "Sadness"])]), CLASSES)
    assert got.answers["x"].ranking == (3, -1, 4) and got.ranked
