"""Tests on the real FER2013 archive; they skip cleanly when ../shared/data/fer2013.tar.gz is absent."""
import json
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ferbench.cli import main
from ferbench.data import load_data
from ferbench.data.splits import make_split
from ferbench.engine import TrainConfig, fit, predict_proba, seed_everything
from ferbench.models import create_model

from conftest import REAL_DATA, REPO, requires_real_data


@requires_real_data
def test_data_info_on_real_archive():
    r = CliRunner().invoke(main, ["data", "info", "--data", str(REAL_DATA), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["totals"] == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}


@pytest.mark.slow
@requires_real_data
def test_basic_cnn_two_epochs_beats_40_percent_on_private_test():
    d = load_data(str(REAL_DATA))
    s = make_split(d, "official")
    seed_everything(0)
    m = create_model("basic_cnn")
    fit(m, s.train.images, s.train.labels, None, None, TrainConfig(epochs=2), device=torch.device("cpu"))
    acc = (predict_proba(m, s.test.images, torch.device("cpu")).argmax(1) == s.test.labels).mean()
    print(f"basic_cnn, 2 epochs, PrivateTest accuracy: {acc:.4f}")
    assert acc >= 0.40


@pytest.mark.slow
@requires_real_data
def test_papers_suite_smoke_profile_gives_a_result_for_every_experiment(tmp_path):
    r = CliRunner().invoke(main, ["run", str(REPO / "suites/papers.yaml"), "--data", str(REAL_DATA),
                                  "--profile", "smoke", "--results-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    run_dir = tmp_path / "papers-smoke"
    results = [json.loads(p.read_text()) for p in run_dir.glob("*/result.json")]
    assert len(results) == 27
    by_status = {}
    for res in results:
        by_status.setdefault(res["status"], []).append(res["id"])
    assert set(by_status) <= {"ok", "skipped"} and by_status["skipped"] == ["llm_vs_nn.llm.GPT-4 Turbo"]
    md = (run_dir / "report.md").read_text()
    from test_report_baselines import missing_baseline_numbers, protocol_problems

    five = ("comparative", "llm_vs_nn", "cbam", "augmented", "three_class")  # papers.yaml's (not khaireddin)
    assert missing_baseline_numbers(md, five) == []  # every number the papers report is on the page
    assert protocol_problems(run_dir) == []  # a protocol table for every study, no empty row
    assert "**Not the published settings.**" in md and "LEAKY" in md and "CONTRADICTION" in md
    assert "### Seconds per epoch: reported vs this run" in md
    assert re.search(r"\| vit_tiny +\| +18,240 +\| +[\d.,]+ +\|", md)  # the paper's ~304 min per epoch
    assert np.isfinite([(r["metrics"].get("test") or r["metrics"]["val"])["accuracy"]
                        for r in results if r["status"] == "ok"]).all()


# --- issue 12: each study's test set, pinned on the real archive ----------------------------------

TRAINING = [3995, 436, 4097, 7215, 4830, 3171, 4965]          # 28,709
PUBLIC = [467, 56, 496, 895, 653, 415, 607]                    # 3,589
PRIVATE = [491, 55, 528, 879, 594, 416, 626]                   # 3,589
BOTH = [a + b for a, b in zip(PUBLIC, PRIVATE)]                # 7,178: the Kaggle test/ folder


def _counts(part, k=7):
    return np.bincount(part.labels, minlength=k).tolist()


@pytest.fixture(scope="module")
def real():
    from ferbench.data import load_data

    return load_data(str(REAL_DATA))


@requires_real_data
def test_real_comparative_public_test_and_20_percent_validation(real):
    s = make_split(real, "holdout", val_fraction=0.2, test="PublicTest")
    assert _counts(s.test) == PUBLIC and len(s.test) == 3589
    assert (len(s.train), len(s.val)) == (22967, 5742)
    assert _counts(s.val) == [799, 87, 820, 1443, 966, 634, 993]


@requires_real_data
def test_real_kaggle_split_llm_vs_nn_and_cbam(real):
    s = make_split(real, "kaggle", val_fraction=None)
    assert _counts(s.train) == TRAINING and len(s.train) == 28709
    assert _counts(s.test) == BOTH == [958, 111, 1024, 1774, 1247, 831, 1233] and len(s.test) == 7178
    assert s.val is None


@requires_real_data
def test_real_cbam_cv_folds(real):
    sizes = [len(make_split(real, "kfold", k=3, fold=f, test="both").val) for f in range(3)]
    assert sorted(sizes) == [9569, 9570, 9570]


@requires_real_data
def test_real_three_class_pooled_split_matches_the_paper(real):
    s = make_split(real, "pooled", val_fraction=0.1, classes=["happy", "sad", "neutral"], test="none")
    assert (len(s.train), len(s.val)) == (19137, 2127)          # Table 1: support 2,127
    assert _counts(s.val, 3) == [899, 608, 620]                  # Table 1: 899 / 608 / 620
    assert _counts(s.train, 3) == [8090, 5469, 5578]


@requires_real_data
def test_real_three_class_heldout_split(real):
    s = make_split(real, "kaggle", val_fraction=0.1, classes=["happy", "sad", "neutral"])
    assert (len(s.train), len(s.val), len(s.test)) == (15309, 1701, 4254)
    assert _counts(s.test, 3) == [1774, 1247, 1233]
