"""Tests on the real FER2013 archive; they skip cleanly when ../shared/data/fer2013.tar.gz is absent."""
import json
import re

import numpy as np
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


@requires_real_data
def test_papers_suite_smoke_profile_gives_a_result_for_every_experiment(tmp_path):
    r = CliRunner().invoke(main, ["run", str(REPO / "suites/papers.yaml"), "--data", str(REAL_DATA),
                                  "--profile", "smoke", "--results-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    results = [json.loads(p.read_text()) for p in (tmp_path / "papers").glob("*/result.json")]
    assert len(results) == 25
    by_status = {}
    for res in results:
        by_status.setdefault(res["status"], []).append(res["id"])
    assert set(by_status) <= {"ok", "skipped"} and by_status["skipped"] == ["llm_vs_nn.llm.GPT-4 Turbo"]
    md = (tmp_path / "papers/report.md").read_text()
    assert "**Not the published settings.**" in md and "LEAKY" in md and "CONTRADICTION" in md
    assert "### Seconds per epoch: reported vs this run" in md
    assert re.search(r"\| vit_tiny +\| 18,240 +\| [\d.,]+ +\|", md)  # the paper's ~304 min per epoch
    assert np.isfinite([r["metrics"]["test"]["accuracy"] for r in results if r["status"] == "ok"]).all()
