"""The report of one small run (trained, loaded and LLM results; k-fold, holdout and seeds studies) in
Markdown, HTML, CSV and LaTeX, and the HTML in a real browser."""
import hashlib
import html as html_lib
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import AlwaysHappy
from fake_openai import FakeOpenAI, Reply

from ferbench import CLASSES
from ferbench.cli import main
from ferbench.data import load_data
from ferbench.llm.query import png_bytes
from ferbench.report.format import p_text
from ferbench.store import load_run

DATA = "synthetic:3500:5"  # >= 5 faces of every class in PrivateTest: the paper's 35-image LLM sample
SKIP_REASON = "$NOT_SET_KEY_REP is not set"
INPUT = "{size: 48, channels: 1, mean: [0.0], std: [1.0]}"
SUITE = """name: rep
data: {data}
defaults: {{epochs: 1}}
studies:
  - name: llm_vs_nn
    paper: llm_vs_nn
    title: "Report test <b>study</b>"
    split: {{kind: official, train_per_class: 80, eval_per_class: 8}}
    experiments:
      - {{model: [cnn, mlp]}}
      - {{model: {{load: always_happy.pt, input: {input}}}, label: always_happy}}
    llm: {llm}
  - name: cv
    split: {{kind: kfold, k: 2, train_per_class: 40, eval_per_class: 8}}
    experiments: [{{model: basic_cnn}}]
  - name: three
    paper: three_class
    split: {{kind: holdout, classes: [happy, sad, neutral], train_per_class: 30, eval_per_class: 8}}
    experiments: [{{model: basic_cnn, label: dcnn_elu}}]  # the paper's model by name: its numbers are matched
  - name: seeds
    seeds: [0, 1]
    split: {{kind: official, train_per_class: 30, eval_per_class: 8}}
    experiments: [{{model: mlp}}]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    torch.jit.script(AlwaysHappy()).save(str(tmp / "always_happy.pt"))
    d = load_data(DATA)
    test = d.usage == "PrivateTest"  # the official test set, where the LLM sample is drawn
    truth = {hashlib.sha256(png_bytes(img, 48)).hexdigest(): CLASSES[y] for img, y in zip(d.images[test], d.labels[test])}
    mp = pytest.MonkeyPatch()
    mp.setenv("FAKE_KEY", "k")
    mp.delenv("NOT_SET_KEY_REP", raising=False)
    try:
        with FakeOpenAI(lambda n, sha, body: Reply(truth[sha].capitalize() + ".")) as oracle, \
                FakeOpenAI(lambda n, sha, body: Reply("happy")) as happy:
            llm = {"endpoints": [
                {"model": "oracle-vision", "base_url": oracle.base_url, "api_key_env": "FAKE_KEY"},
                {"model": "happy-vision", "base_url": happy.base_url, "api_key_env": "FAKE_KEY"},
                {"model": "unasked-vision", "base_url": happy.base_url, "api_key_env": "NOT_SET_KEY_REP"}],
                "sample": {"per_class": 5}}
            (tmp / "s.yaml").write_text(SUITE.format(data=DATA, input=INPUT, llm=json.dumps(llm)))
            r = CliRunner().invoke(main, ["run", str(tmp / "s.yaml"), "--results-dir", str(tmp / "res")],
                                   catch_exceptions=False)
    finally:
        mp.undo()
    assert r.exit_code == 0, r.output
    return tmp / "res" / "rep"


def _section(md: str, heading: str) -> str:
    """The lines of the Markdown table under '### heading' (header, separator, rows)."""
    after = md.split(f"### {heading}\n", 1)[1].lstrip("\n")
    return after.split("\n\n", 1)[0]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_markdown_has_every_section(run_dir):
    md = (run_dir / "report.md").read_text()
    for needle in ["# ferbench report: rep", "| profile            | paper: the published settings", "| device             | cpu",
                   "| versions           | python",
                   "### Test accuracy", "95% CI (Wilson)", "### Reproduced vs reported",
                   "### Per-class F1 on test", "### Cross-validation (val accuracy over folds)",
                   "![Class distribution](<figures/class_distribution.png>)", "figures/samples.png",
                   "Confusion matrix: cnn", "Per-class precision / recall / F1: cnn",
                   "Training and validation curves", "Grad-CAM: cnn", "| Training    |", "s/epoch", "ms/image",
                   "### Across training seeds (test accuracy)",
                   "### Per-class numbers: reported vs reproduced",
                   "### The LLM sample: each image with every model's answer", "figures/llm_vs_nn_llm_sample.png"]:
        assert needle in md, needle
    assert re.search(r"\| dcnn_elu +\| happy +\| precision \(%\) +\| +91\.0 +\| +\d+\.\d\d +\|", md)
    row = next(line for line in md.splitlines() if line.startswith("| cnn ") and "Table 1 (test)" in line)
    assert "55.49" in row and re.search(r"\| (within the 95% CI|outside the 95% CI: [\d.]+ pts (below|above) "
                                        r"\([\d.]+ CI half-widths\)|not comparable: [^|]+) +\|", row)
    for f in re.findall(r"\]\(<?([^)>]+\.png)>?\)", md):
        assert (run_dir / f).exists(), f


def test_study_order_accuracy_then_per_class_then_llm(run_dir):
    """Issue 15: the main test-set accuracy table first, then per-class results, then the LLM table."""
    md = (run_dir / "report.md").read_text()
    study = md.split("## Report test", 1)[1].split("\n## ", 1)[0]
    order = [study.index(f"### {h}") for h in ("Test accuracy", "Per-class F1 on test",
                                               "Per-class results on the LLM sample (Table 2 layout)",
                                               "The LLM sample: each image with every model's answer")]
    assert order == sorted(order)
    assert study.index("### Test accuracy") == study.index("###")  # the first table of the study
    h3 = re.findall(r"<h3>(.*?)</h3>", (run_dir / "report.html").read_text())
    assert h3.index("Test accuracy") < h3.index("Per-class F1 on test") < \
        h3.index("Per-class results on the LLM sample (Table 2 layout)")


def test_skipped_llm_is_said_once(run_dir):
    md, html = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    assert md.count(SKIP_REASON) == 1 and html.count(SKIP_REASON) == 1
    assert md.count("LLM not asked.") == 1 and "skipped:" not in md
    assert not [line for line in md.splitlines() if "unasked-vision" in line and not line.startswith("> ")]


def test_llm_sample_table_counts_per_class_and_small_p_values(run_dir):
    md = (run_dir / "report.md").read_text()
    table = _section(md, "Per-class results on the LLM sample (Table 2 layout)").splitlines()
    header = _cells(table[0])
    rows = {_cells(line)[0]: dict(zip(header, _cells(line))) for line in table[2:]}
    assert set(rows) == {"cnn", "mlp", "always_happy", "oracle-vision (LLM)", "happy-vision (LLM)"}
    for r in rows.values():  # a 5-image class shows counts, never a percentage like 80.00
        assert all(re.fullmatch(r"[0-5]/5", r[c]) for c in CLASSES), r
    assert [rows["oracle-vision (LLM)"][c] for c in CLASSES] == ["5/5"] * 7
    assert [rows["happy-vision (LLM)"][c] for c in CLASSES] == ["5/5" if c == "happy" else "0/5" for c in CLASSES]
    assert rows["always_happy"]["overall %"] == "14.29" and rows["oracle-vision (LLM)"]["overall %"] == "100.00"
    # 35 right against 5 right on the same images: p = 2 * 0.5**30, printed as '< 0.001', never '0.000'
    pair = _cells(_section(md, "LLM against LLM on the same images (exact McNemar)").splitlines()[2])
    assert pair[:2] == ["oracle-vision (LLM)", "happy-vision (LLM)"] and pair[-1] == "< 0.001"
    assert not re.search(r"\|\s*0\.000\s*\|", md)
    assert p_text(2 * 0.5 ** 30) == "< 0.001" and p_text(0.001) == "0.001" and p_text(0.0312) == "0.031"


def test_degenerate_model_is_flagged_in_the_table(run_dir):
    """Flagged iff one class takes >= 90 % of its test predictions (recomputed from predictions.csv)."""
    md = (run_dir / "report.md").read_text()
    table = _section(md, "Test accuracy").splitlines()
    flags = {_cells(line)[0]: _cells(line)[-1] for line in table[2:]}
    assert flags["always_happy (loaded)"] == "degenerate: predicts happy for 100% of test images"
    run = load_run(run_dir)
    for r in run.models("llm_vs_nn"):
        p = run.predictions(r.id)
        pred = p.predicted[p.rows("test")]
        share = np.bincount(pred, minlength=7).max() / len(pred)
        name = r.label + (" (loaded)" if r.kind == "load" else "")
        assert flags[name].startswith("degenerate") == (share >= 0.9), (name, share, flags[name])
    assert "degenerate: predicts happy for 100% of test images" in (run_dir / "report.html").read_text()


NUMERIC = re.compile(r"(–|((<|≤|>|≥|~|\\<|\\>) )?[-+]?[\d,]+(\.\d+)?x?|\[[\d.]+, [\d.]+\]|\d+/\d+|\$[\d.]+)")


def test_markdown_tables_are_aligned_numbers_right(run_dir):
    """Every pipe table is padded to straight columns; numeric columns are right-aligned, text left."""
    md = (run_dir / "report.md").read_text()
    tables = re.findall(r"(?m)((?:^\|.*\|\n)+)", md)
    assert len(tables) >= 12
    for t in tables:
        pipes = {tuple(m.start() for m in re.finditer(r"(?<!\\)\|", line)) for line in t.splitlines()}
        assert len(pipes) == 1, t  # the same column boundaries on every line
    from ferbench.report import build_document

    checked = 0
    for table in build_document(load_run(run_dir)).tables:
        sep = _cells(table.markdown().splitlines()[1])
        for j, s in enumerate(sep):
            numbers = [r[j] for r in table.rows if NUMERIC.fullmatch(table.text(r[j])) and table.text(r[j]) != "–"]
            if table.numeric(j):
                assert s.endswith(":") and not s.startswith(":"), (table.title, table.headers[j])
                checked += 1
            else:
                assert s.startswith(":") and not s.endswith(":"), (table.title, table.headers[j])
                # a text column may hold a number-like word; a column of numbers is never left as text
                assert len(numbers) < len(table.rows) or not table.rows, (table.title, table.headers[j])
    assert checked > 50


def test_folds_are_labelled_one_way_everywhere(run_dir):
    md = (run_dir / "report.md").read_text()
    cv = md.split("Report test")[0] + md.split("## cv")[1].split("\n## ")[0]
    assert "basic_cnn (fold 1)" in cv and "basic_cnn (fold 2)" in cv  # accuracy and per-class tables
    assert "fold 0" not in md and "(fold 3)" not in md  # 1-based in every table and figure title
    assert "Confusion matrix: basic_cnn (fold 1)" in cv and "Confusion matrix: basic_cnn (fold 2)" in cv
    cv_csv = (run_dir / "tables/cv_cv.csv").read_text().splitlines()
    assert cv_csv[1].startswith("basic_cnn,2,")  # the CV summary counts both folds


def test_tables_export_csv_and_latex(run_dir):
    tex = (run_dir / "tables/llm_vs_nn_accuracy.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "cnn" in tex
    csv = (run_dir / "tables/llm_vs_nn_accuracy.csv").read_text().splitlines()
    assert csv[0].startswith("model,test acc %") and len(csv) == 4


def test_html_is_self_contained_and_escaped(run_dir):
    html = (run_dir / "report.html").read_text()
    assert "<b>study</b>" not in html and "&lt;b&gt;study&lt;/b&gt;" in html  # autoescape on
    assert "data:image/png;base64," in html
    assert not re.search(r"""(src|href)=["']https?://""", html)  # no CDN, no remote assets


def test_figures_share_one_canvas(run_dir):
    """Every figure has the same pixel size, so the two-column figure grid lines up row by row."""
    from PIL import Image

    pngs = sorted((run_dir / "figures").glob("*.png")) + sorted(run_dir.glob("*/gradcam.png"))
    assert len(pngs) >= 12
    assert len({Image.open(p).size for p in pngs}) == 1


def test_report_command_rerenders(run_dir):
    (run_dir / "report.md").unlink()
    r = CliRunner().invoke(main, ["report", str(run_dir)])
    assert r.exit_code == 0 and (run_dir / "report.md").exists()
    r = CliRunner().invoke(main, ["report", str(run_dir.parent)])
    assert r.exit_code == 1 and "is not a ferbench run directory" in r.output


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Injected into a copy of report.html: the computed size of every piece of text in the LLM-sample grid.
PROBE = """<script>
const out = {tiles: [], texts: []};
for (const t of document.querySelectorAll('.llm-grid .tile')) {
  const img = t.querySelector('img').getBoundingClientRect();
  out.tiles.push({img: [img.width, img.height], answers: t.querySelectorAll('.answers tr').length});
}
for (const el of document.querySelectorAll('.llm-grid *')) {
  if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
  const r = el.getBoundingClientRect(), cs = getComputedStyle(el);
  out.texts.push({tag: el.tagName, size: parseFloat(cs.fontSize), height: r.height, width: r.width,
                  visible: cs.visibility === 'visible' && cs.display !== 'none'});
}
const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def _chromium(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400", *args]
    return subprocess.run(cmd, check=False, capture_output=True, timeout=120, text=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_html_renders_in_headless_chromium(run_dir, tmp_path):
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", (run_dir / "report.html").as_uri())
    assert shot.exists() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
    from PIL import Image

    im = np.asarray(Image.open(shot).convert("L").resize((60, 120)))
    assert len(np.unique(im)) > 20


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_llm_sample_grid_text_is_readable_in_chromium(run_dir, tmp_path):
    """Issue 15: every image of the sample is a tile with every model's answer in text of at least 12 px."""
    page = tmp_path / "probe.html"
    page.write_text((run_dir / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    r = _chromium(tmp_path, "--dump-dom", page.as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, re.DOTALL)
    assert m, r.stderr[-2000:]
    probe = json.loads(html_lib.unescape(m.group(1)))
    assert len(probe["tiles"]) == 35
    assert all(t["answers"] == 5 and min(t["img"]) >= 96 for t in probe["tiles"])  # 3 models + 2 LLMs
    texts = probe["texts"]
    assert len(texts) >= 35 * (5 * 2 + 2)
    small = [t for t in texts if t["size"] < 12 or t["height"] < 12 or not t["visible"]]
    assert not small, small[:5]


# --- paper output (issue 30) ----------------------------------------------------------------------------

PDFLATEX = shutil.which("pdflatex")


def test_latex_tables_are_captioned_labelled_ascii_floats(run_dir):
    tables = sorted((run_dir / "tables").glob("*.tex"))
    assert len(tables) >= 20
    for f in tables:
        tex = f.read_text()
        assert tex.isascii(), f  # plain pdflatex, no inputenc setup
        assert "\\begin{table}" in tex and "\\caption{" in tex and f"\\label{{tab:{f.stem}}}" in tex, f
    acc = (run_dir / "tables/llm_vs_nn_accuracy.tex").read_text()
    head = next(line for line in acc.splitlines() if line.startswith("model &"))
    assert head.count("&") == 4 and "flags" not in head  # the paper's column set; prose becomes a note
    assert "\\textsuperscript{a}" in acc and "degenerate: predicts happy" in acc  # the flag, as a note
    assert "Also in llm\\_vs\\_nn\\_accuracy.csv: weighted F1, top-2" in acc
    assert "\\caption{Report test \\textless{}b\\textgreater{}study" in acc  # the study's title, escaped


def test_per_class_prf_and_confusion_tables_are_exported(run_dir):
    prf = (run_dir / "tables/llm_vs_nn.cnn_per_class.csv").read_text().splitlines()
    assert prf[0] == "class,precision,recall,F1,images" and len(prf) == 1 + 7 + 1
    cm = (run_dir / "tables/llm_vs_nn.cnn_confusion.csv").read_text().splitlines()
    assert cm[0].split(",")[1:] == list(CLASSES) and len(cm) == 8
    res = load_run(run_dir)
    m = next(r for r in res.results if r.id == "llm_vs_nn.cnn").headline
    assert [int(v) for v in cm[4].split(",")[1:]] == [int(v) for v in m.confusion[3][:7]]  # row 'happy'
    assert "\\begin{table}" in (run_dir / "tables/llm_vs_nn.cnn_confusion.tex").read_text()


@pytest.mark.skipif(PDFLATEX is None, reason="no TeX engine (pdflatex) installed; .ci/run installs one")
def test_latex_tables_compile_with_pdflatex(run_dir, tmp_path):
    body = "\n".join(f"\\input{{{f.as_posix()}}}\n\\clearpage" for f in sorted((run_dir / "tables").glob("*.tex")))
    (tmp_path / "paper.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                                        f"{body}\n\\end{{document}}\n")
    r = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-3000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 1000


def test_figures_as_pdf_and_svg_at_paper_widths(run_dir, tmp_path, monkeypatch):
    """The run's PNGs exist; each kind of figure the report draws also comes as PDF and SVG at both paper
    widths (drawn here on small inputs: the run itself skips them, FERBENCH_PAPER_FIGURES=0 in tests)."""
    from ferbench import figures

    stems = ("class_distribution", "llm_vs_nn_curves", "llm_vs_nn.cnn_cm", "llm_vs_nn.cnn_prf")
    for stem in stems:
        assert (run_dir / "figures" / f"{stem}.png").exists()
    monkeypatch.setenv("FERBENCH_PAPER_FIGURES", "1")
    classes = ["happy", "sad", "neutral"]
    figures.class_distribution({"Training": {"happy": 5, "sad": 3, "neutral": 2}}, classes, tmp_path / f"{stems[0]}.png")
    history = [{"epoch": e, "train_accuracy": 0.3 + 0.1 * e, "train_loss": 1.5 - 0.2 * e,
                "val_accuracy": 0.3 + 0.05 * e, "val_loss": 1.6 - 0.1 * e} for e in (1, 2, 3)]
    figures.curves({"cnn": history}, tmp_path / f"{stems[1]}.png", "curves")
    figures.confusion(np.array([[3, 1, 0], [0, 2, 1], [1, 0, 4]]), classes, tmp_path / f"{stems[2]}.png", "cm")
    figures.prf_bars({"precision": [0.7, 0.6, 0.8], "recall": [0.6, 0.7, 0.8], "f1": [0.65, 0.65, 0.8],
                      "support": [4, 3, 5]}, classes, tmp_path / f"{stems[3]}.png", "prf")
    paper = tmp_path / "paper"
    for stem in stems:
        for width, inches in (("column", 3.5), ("page", 7.0)):
            pdf, svg = (paper / f"{stem}_{width}.pdf").read_bytes(), (paper / f"{stem}_{width}.svg").read_text()
            box = re.search(rb"/MediaBox \[ *0 0 ([\d.]+) ([\d.]+) *\]", pdf)
            assert box and abs(float(box.group(1)) - 72 * inches) < 1, (stem, width)
            assert b"/Subtype /Type3" not in pdf  # TrueType embedded, as publishers ask
            assert re.search(rf'<svg[^>]+width="{72 * inches:g}pt"', svg), (stem, width)


def test_references_are_citations_not_internal_paths(run_dir):
    md = (run_dir / "report.md").read_text()
    assert "shared/papers" not in md and ".txt" not in md
    assert "Karnati, Thapa, McDavitt, Ferguson (2025). Deep Learning for Facial Expression Recognition." in md
    bib = (run_dir / "references.bib").read_text()
    assert "@misc{karnati2025deep," in bib and "author = {Karnati, Dinesh and Thapa, Pratik" in bib
    assert "@misc{korchi_fer2013_dcnn," in bib and bib.isascii()
    for f in list((run_dir / "tables").iterdir()) + [run_dir / "report.html"]:
        assert "shared/papers" not in f.read_text(), f


def test_summary_on_top_and_threads_recorded(run_dir):
    md = (run_dir / "report.md").read_text()
    assert md.index("### Summary") < md.index("### Run") < md.index("## Report test")
    row = next(line for line in md.splitlines() if line.startswith("| Report test"))
    best = max((r for r in load_run(run_dir).models("llm_vs_nn")), key=lambda r: r.headline.accuracy)
    assert f"{100 * best.headline.accuracy:.2f}" in row
    assert re.search(r"oracle-vision \(LLM\) 100\.0 % vs \S+ [\d.]+ % on 35 images +\| +(< 0\.001|0\.\d{3}) \|", md)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["suite_studies"] == ["llm_vs_nn", "cv", "three", "seeds"]
    assert run["threads"]["used"] == torch.get_num_threads() and run["threads"]["requested"] is None
    assert re.search(r"\| CPU threads +\| \d+ \(torch's default", md)


def test_studies_that_did_not_run_are_one_line_in_suite_order(run_dir, tmp_path):
    """An --only run: a study with no result and a suite study never run are one line each, in place."""
    d = tmp_path / "rep"
    shutil.copytree(run_dir, d)
    for f in d.glob("seeds.*"):
        shutil.rmtree(f)
    run = json.loads((d / "run.json").read_text())
    run["suite_studies"] = ["llm_vs_nn", "ghost", "cv", "three", "seeds"]
    (d / "run.json").write_text(json.dumps(run))
    assert CliRunner().invoke(main, ["report", str(d)]).exit_code == 0
    md = (d / "report.md").read_text()
    assert "**ghost: not run:** *not selected (--only) in any run of this folder.*" in md
    assert "**seeds: not run:** *no result in this run folder*" in md and "## seeds" not in md
    assert md.index("## three") < md.index("**seeds: not run:**")
    assert md.index("## Report test") < md.index("ghost: not run") < md.index("## cv")
