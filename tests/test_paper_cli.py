"""Issue 30: a calm command line (validate, list and models without torch; YAML mistakes in plain words;
--threads) and the pieces of paper-ready output that need no run (LaTeX escaping, parameter counts,
citations)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ferbench.cli import main
from ferbench.environment import busy_cpu_hint, choose_threads
from ferbench.report.baselines import load_baselines
from ferbench.report.citations import bibtex, cite_text
from ferbench.report.format import count_text
from ferbench.report.latex import tex_escape

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "sklearn", "matplotlib")


def _imports_after(args: list[str]) -> list[str]:
    """The heavy libraries loaded by one CLI command in a fresh interpreter (this repo on sys.path)."""
    code = ("import sys\nfrom ferbench.cli import main\ntry:\n    main(%r, standalone_mode=False)\n"
            "except SystemExit:\n    pass\nprint(sorted({m.split('.')[0] for m in sys.modules} & set(%r)))" % (args, HEAVY))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr
    return eval(r.stdout.strip().splitlines()[-1])  # a list literal printed by the line above


def test_validate_list_and_models_import_no_torch(tmp_path):
    """The first command after an install builds the model catalogue (imports torch once); after that,
    validate, list and models read files only."""
    from ferbench.models.catalog import catalog

    assert "basic_cnn" in catalog()  # builds the cache file under this test's private $FERBENCH_CACHE
    assert _imports_after(["validate", "suites/papers.yaml"]) == []
    assert _imports_after(["list", "suites/demo.yaml", "--results-dir", str(tmp_path)]) == []
    assert _imports_after(["models", "*cnn*"]) == []


def test_catalogue_matches_the_registry():
    from ferbench.models import describe_models, list_models, model_info
    from ferbench.models.catalog import catalog

    c = catalog()
    assert sorted(c) == list_models()
    for name, e in c.items():
        info = model_info(name)
        assert (e["pretrained"], e["input_spec"]["size"], e["study"]) == (info.pretrained, info.input.size, info.study)
    assert {r["name"] for r in describe_models("*resnet*")} == {n for n in list_models() if "resnet" in n}


def test_validate_says_one_study(tmp_path):
    (tmp_path / "s.yaml").write_text("name: x\nstudies:\n  - name: a\n    split: {kind: official}\n"
                                     "    experiments: [{model: cnn}]\n")
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "s.yaml")])
    assert r.exit_code == 0 and "ok — 1 study;" in r.output


@pytest.mark.parametrize("text, line, col, words", [
    ("name: x\nstudies:\n  - name: a\n    experiments:\n     - model: cnn\n   split: {kind: official}\n", 6, 4,
     "indented differently from the lines before it"),
    ("name: x\nstudies:\n\t- name: a\n", 3, 1, "indent with spaces only"),
    ("name: x\nstudies:\n  - name: a\n     title: t\n", 4, 11, "a ':' where no value can start"),
])
def test_yaml_mistakes_in_plain_words_with_line_and_column(tmp_path, text, line, col, words):
    (tmp_path / "s.yaml").write_text(text)
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "s.yaml")])
    assert r.exit_code == 1 and f"line {line}, column {col}: " in r.output and words in r.output, r.output


def test_parameter_counts_read_at_every_size():
    assert [count_text(n) for n in (812, 1080, 54_321, 2_345_678)] == ["812", "1.1 k", "54.3 k", "2.35 M"]


def test_tex_escape_is_ascii_and_inert():
    s = tex_escape("50% of {x} & y_1 → ≈3 – “q” ⚠ naïve \\input{/etc/passwd} ~#$^")
    assert s.isascii() and "\\input" not in s.replace("\\textbackslash{}input", "")
    assert s.startswith("50\\% of \\{x\\} \\& y\\_1 $\\rightarrow$ $\\approx$3 -- ``q'' (!) naive")


def test_every_study_has_a_real_citation():
    for f in sorted((REPO / "ferbench/baselines").glob("*.yaml")):
        b = load_baselines(f.stem)
        c = b.citation
        assert c.title and c.venue and isinstance(c.authors, list) and c.key, f.name
        assert c.year is None or 2000 < c.year < 2100
        assert "shared/papers" not in cite_text(b) and "shared/papers" not in bibtex(b)
        assert bibtex(b).isascii() and bibtex(b).startswith(f"@misc{{{c.key},")


def test_threads_choice(monkeypatch):
    assert choose_threads(None)[0] == torch.get_num_threads()  # the default ignores the load
    assert choose_threads(3) == (3, "--threads 3")
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 0.0, 0.0))
    n, why = choose_threads("auto")
    assert n == 1 and "4 cores, load average 2.6" in why  # 4 cores minus 3 busy
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert choose_threads("auto")[0] == 1  # never fewer than one


def test_busy_hint_names_the_flag(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 0.0, 0.0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert "--threads auto" in busy_cpu_hint("cpu")


def test_threads_flag_is_checked_and_applied(tmp_path):
    r = CliRunner().invoke(main, ["run", "suites/demo.yaml", "--threads", "0"])
    assert r.exit_code == 2 and "neither a positive number nor 'auto'" in r.output
    from ferbench.runner import _set_threads

    before = torch.get_num_threads()
    try:
        assert _set_threads("1")[0] == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_latex_row_opening_with_a_bracket_is_not_an_optional_argument():
    from ferbench.report.latex import latex_table

    tex = latex_table("c", "tab:x", ["a", "b"], [["x", "1"], ["[odd] name", "2"]], [False, True])
    assert "\\\\\n{}[odd] name & 2 \\\\" in tex


def test_paper_figures_redrawn_only_when_the_figure_changes(tmp_path, monkeypatch):
    from ferbench import figures

    monkeypatch.setenv("FERBENCH_PAPER_FIGURES", "0")
    figures.class_distribution({"Training": {"happy": 5, "sad": 3}}, ["happy", "sad"], tmp_path / "off.png")
    assert (tmp_path / "off.png").is_file() and not (tmp_path / "paper").exists()  # switched off: PNG only
    monkeypatch.setenv("FERBENCH_PAPER_FIGURES", "1")

    counts = {"Training": {"happy": 5, "sad": 3}}
    figures.class_distribution(counts, ["happy", "sad"], tmp_path / "d.png")
    pdf = tmp_path / "paper" / "d_column.pdf"
    assert pdf.is_file() and (tmp_path / "paper" / "d_page.svg").is_file()
    drawn = []
    monkeypatch.setattr(figures, "_paper", lambda *a: drawn.append(a) or __import__("contextlib").nullcontext())
    figures.class_distribution(counts, ["happy", "sad"], tmp_path / "d.png")
    assert drawn == []  # same PNG: the vector files stand
    pdf.unlink()
    figures.class_distribution(counts, ["happy", "sad"], tmp_path / "d.png")
    assert len(drawn) == 2  # a file missing: both widths drawn again
    drawn.clear()
    figures.class_distribution({"Training": {"happy": 6, "sad": 3}}, ["happy", "sad"], tmp_path / "d.png")
    assert len(drawn) == 2  # new data: drawn again


def test_paper_figures_never_write_through_a_link(tmp_path, monkeypatch):
    from ferbench import figures
    from ferbench.errors import StoreError

    monkeypatch.setenv("FERBENCH_PAPER_FIGURES", "1")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "paper").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StoreError, match="is not a folder of this run folder"):
        figures.class_distribution({"Training": {"happy": 5}}, ["happy"], tmp_path / "figs" / "d.png")
    assert list(outside.iterdir()) == []
