"""Reports are inert: text from a suite, an endpoint's answers or an error message never becomes live
markup in report.md (rendered by a CommonMark library with raw HTML allowed) or report.html.

One run, shared by every test: a loaded constant model (no training), an LLM answering hostile text, an LLM
whose endpoint fails, a skipped LLM, and a model file whose name and error message are hostile."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest
import torch
from click.testing import CliRunner
from conftest import AlwaysHappy
from fake_openai import FakeOpenAI, Reply, openai_error
from markdown_it import MarkdownIt

from ferbench.cli import main
from ferbench.report.format import md_escape

ATTACK = ("`</code><script>alert(1)</script>` <img src=x onerror=alert(2)> [click](javascript:alert(3)) "
          "a | b <b>bold</b> &lt;i&gt; ![p](javascript:alert(4)) <javascript:alert(5)>\n\n<script>alert(6)</script>")
ANSWERS = ["`<script>alert(11)</script>`", "<img src=x onerror=alert(12)>", "[x](javascript:alert(13))",
           "a | b | c", "line one\n\n<script>alert(14)</script>\n# heading", "``` \n<iframe src=javascript:alert(15)>"]
# texts that start a Markdown line: block markers must stay text too
LEADING = ["~~~ fence", "# heading", "- item", "1. first", "2) second", "    indented code", "+ plus", "___", "=== x"]
BAD_FILE = "`<img src=x onerror=alert(21)>` [y](javascript:alert(22)).pt"
INPUT = {"size": 48, "channels": 1, "mean": [0.0], "std": [1.0]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inert")
    torch.jit.script(AlwaysHappy()).save(str(tmp / "const.pt"))
    (tmp / BAD_FILE).write_bytes(b"<script>alert(23)</script> not a model")
    mp = pytest.MonkeyPatch()
    mp.setenv("FAKE_KEY", "k")
    mp.delenv("NOT_SET_KEY_X", raising=False)
    try:
        with FakeOpenAI(lambda n, sha, body: Reply(ANSWERS[n % len(ANSWERS)])) as ok, \
                FakeOpenAI(lambda n, sha, body: Reply(status=400, error=openai_error(f"bad {ATTACK}"))) as bad:
            llm = {"endpoints": [
                {"model": "m1", "label": f"L1 {ATTACK}", "base_url": ok.base_url, "api_key_env": "FAKE_KEY"},
                {"model": "m2", "label": "L2 <img src=y onerror=alert(31)>", "base_url": bad.base_url,
                 "api_key_env": "FAKE_KEY"},
                {"model": f"m3 {ATTACK}", "base_url": bad.base_url, "api_key_env": "NOT_SET_KEY_X"}],
                "sample": {"per_class": 2}, "max_retries": 0}
            models = [{"model": {"load": "const.pt", "input": INPUT}, "label": "const"},
                      {"model": {"load": BAD_FILE, "input": INPUT}, "label": "bad"}]
            study = {"name": "s", "title": f"title {ATTACK} #", "description": LEADING[0] + " " + ATTACK,
                     "notes": [f"{t} {ATTACK}" for t in LEADING], "split": {"kind": "official"},
                     "experiments": models, "llm": llm}
            suite = {"name": "inert", "description": LEADING[1] + " " + ATTACK, "data": "synthetic:1400:3",
                     "studies": [study]}
            (tmp / "s.yaml").write_text(json.dumps(suite))  # JSON is YAML: no quoting mistakes
            r = CliRunner().invoke(main, ["run", str(tmp / "s.yaml"), "--results-dir", str(tmp / "res")],
                                   catch_exceptions=False)
    finally:
        mp.undo()
    assert r.exit_code == 1, r.output  # two experiments failed on purpose
    return tmp / "res" / "inert"


class _Page(HTMLParser):
    """Every start tag with its attributes, the visible text, and the cells of every table row."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.rows: list[list[int]] = []  # per table: cells in each row
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("style", "title"):
            self._skip += 1
        if tag == "table":
            self.rows.append([])
        elif tag == "tr" and self.rows:
            self.rows[-1].append(0)
        elif tag in ("td", "th") and self.rows and self.rows[-1]:
            self.rows[-1][-1] += 1

    def handle_endtag(self, tag):
        if tag in ("style", "title"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)

    @property
    def visible(self) -> str:
        return " ".join("".join(self.text).split())


def _parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    p.close()
    return p


def _render_md(text: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


MD_TAGS = {"h1", "h2", "h3", "p", "strong", "em", "ul", "li", "blockquote", "table", "thead", "tbody", "tr", "th",
           "td", "img"}
HTML_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "p", "b", "ul", "li", "table",
             "tr", "th", "td", "div", "section", "span", "figure", "figcaption", "img"}


def _no_live_attributes(page: _Page) -> None:
    for tag, attrs in page.tags:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        for k in ("href", "src", "action", "formaction", "xlink:href"):  # alt text may say anything
            assert "javascript:" not in (attrs.get(k) or "").lower(), (tag, attrs)


def _hostile_text_is_shown(visible: str) -> None:
    """Escaping must keep the text readable, not drop it."""
    for needle in ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "[click](javascript:alert(3))",
                   "a | b <b>bold</b>", "<script>alert(11)</script>", "<img src=x onerror=alert(12)>",
                   "[x](javascript:alert(13))", "a | b | c", "line one <script>alert(14)</script> # heading",
                   "alert(21)", "m3 `</code><script>alert(1)</script>`", "~~~ fence", "# heading", "1. first"]:
        assert needle in visible, needle


def test_markdown_report_renders_no_live_tag(run_dir):
    md = (run_dir / "report.md").read_text()
    page = _parse(_render_md(md))
    assert {t for t, _ in page.tags} <= MD_TAGS, {t for t, _ in page.tags} - MD_TAGS
    _no_live_attributes(page)
    imgs = {unquote(a["src"]) for t, a in page.tags if t == "img"}
    figs = {p.relative_to(run_dir).as_posix() for p in (run_dir / "figures").glob("*.png")}
    assert imgs == figs, imgs ^ figs  # every figure shown (names with spaces too), nothing else
    _hostile_text_is_shown(page.visible)


def test_markdown_tables_keep_their_columns(run_dir):
    """A '|' in a label or an answer stays inside its cell: every row has as many cells as its header."""
    page = _parse(_render_md((run_dir / "report.md").read_text()))
    assert len(page.rows) >= 6
    for rows in page.rows:
        assert len(set(rows)) == 1, rows


def test_markdown_block_markers_stay_text(run_dir):
    """Suite text at the start of a line opens no heading, list, rule or code fence: the document keeps its
    own structure (one h1, the headings ferbench wrote, one bullet list per study)."""
    page = _parse(_render_md((run_dir / "report.md").read_text()))
    tags = [t for t, _ in page.tags]
    assert tags.count("h1") == 1 and tags.count("ul") == 1 and tags.count("h2") == 1
    assert "pre" not in tags and "code" not in tags and "ol" not in tags and "hr" not in tags
    notes = sum(1 for t, _ in page.tags if t == "li")
    assert notes >= len(LEADING)


def test_html_report_has_no_live_tag(run_dir):
    page = _parse((run_dir / "report.html").read_text())
    assert {t for t, _ in page.tags} <= HTML_TAGS, {t for t, _ in page.tags} - HTML_TAGS
    _no_live_attributes(page)
    assert all(a["src"].startswith("data:image/png;base64,") for t, a in page.tags if t == "img")
    _hostile_text_is_shown(page.visible)


@pytest.mark.parametrize("text", ANSWERS + LEADING + [ATTACK, "back\\slash\\", "*a* **c** snake_case_name", "x\r\ny"])
def test_md_escape_round_trips_as_text(text):
    """md_escape'd text renders to exactly its own characters, in a paragraph and in a table cell."""
    want = " ".join(text.split())
    cell = _parse(_render_md(f"| h |\n|---|\n| {md_escape(text)} |\n"))
    assert [t for t, _ in cell.tags] == ["table", "thead", "tr", "th", "tbody", "tr", "td"]
    assert " ".join("".join(cell.text).split()) == f"h {want}"
    inline = _parse(_render_md(f"**lead:** {md_escape(text)}\n"))
    assert [t for t, _ in inline.tags] == ["p", "strong"], inline.tags
    assert inline.visible == f"lead: {want}"
