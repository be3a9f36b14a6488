import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from ferbench.cli import main

SUITE = """name: rep
data: synthetic:1400:4
defaults: {epochs: 2}
studies:
  - name: llm_vs_nn
    paper: llm_vs_nn
    title: "Report test <b>study</b>"
    split: {kind: official}
    experiments: [{model: [cnn, mlp]}]
  - name: cv
    split: {kind: kfold, k: 2}
    experiments: [{model: basic_cnn}]
  - name: three
    paper: three_class
    split: {kind: holdout, classes: [happy, sad, neutral], train_per_class: 30}
    experiments: [{model: dcnn_elu}]
  - name: seeds
    seeds: [0, 1]
    split: {kind: official, train_per_class: 30}
    experiments: [{model: mlp}]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "s.yaml").write_text(SUITE)
    r = CliRunner().invoke(main, ["run", str(tmp / "s.yaml"), "--results-dir", str(tmp / "res")])
    assert r.exit_code == 0, r.output
    return tmp / "res" / "rep"


def test_markdown_has_every_section(run_dir):
    md = (run_dir / "report.md").read_text()
    for needle in ["# ferbench report: rep", "| profile            | paper: the published settings", "| device             | cpu",
                   "| versions           | python",
                   "### Test accuracy", "95% CI (Wilson)", "### Reproduced vs reported",
                   "### Per-class F1 on test", "### Cross-validation (val accuracy over folds)",
                   "![Class distribution](figures/class_distribution.png)", "figures/samples.png",
                   "Confusion matrix: cnn", "Per-class precision / recall / F1: cnn",
                   "Training and validation curves", "Grad-CAM: cnn", "| Training    |", "s/epoch", "ms/image",
                   "### Across training seeds (test accuracy)",
                   "### Per-class precision / recall / F1 on val: reported vs reproduced"]:
        assert needle in md, needle
    assert re.search(r"\| dcnn_elu +\| happy +\| 0\.91 / 0\.94 / 0\.92 +\| \d\.\d\d / ", md)
    row = next(line for line in md.splitlines() if line.startswith("| cnn ") and "Table 1 (test)" in line)
    assert "55.49" in row and re.search(r"\| (yes|no) +\|", row)
    for f in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (run_dir / f).exists(), f


def test_tables_export_csv_and_latex(run_dir):
    tex = (run_dir / "tables/llm_vs_nn_accuracy.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "cnn" in tex
    csv = (run_dir / "tables/llm_vs_nn_accuracy.csv").read_text().splitlines()
    assert csv[0].startswith("model,test acc %") and len(csv) == 3


def test_html_is_self_contained_and_escaped(run_dir):
    html = (run_dir / "report.html").read_text()
    assert "<b>study</b>" not in html and "&lt;b&gt;study&lt;/b&gt;" in html  # autoescape on
    assert "data:image/png;base64," in html
    assert not re.search(r"""(src|href)=["']https?://""", html)  # no CDN, no remote assets


def test_report_command_rerenders(run_dir):
    (run_dir / "report.md").unlink()
    r = CliRunner().invoke(main, ["report", str(run_dir)])
    assert r.exit_code == 0 and (run_dir / "report.md").exists()
    r = CliRunner().invoke(main, ["report", str(run_dir.parent)])
    assert r.exit_code == 1 and "is not a ferbench run directory" in r.output


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_html_renders_in_headless_chromium(run_dir, tmp_path):
    shot = tmp_path / "report.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400", f"--screenshot={shot}",
           (run_dir / "report.html").as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
    from PIL import Image

    import numpy as np

    im = np.asarray(Image.open(shot).convert("L").resize((60, 120)))
    assert len(np.unique(im)) > 20
