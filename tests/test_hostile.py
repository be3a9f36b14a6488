"""Hostile inputs and faults (issue 16): nothing leaves the results folder, nothing in it executes,
resource bombs are refused before they bite, a second run on a held folder says who holds it, a
stored result is reused only when all its files agree, and a full disk is one message.

Most tests drive the command line, so they say what a user sees. Runs are tiny: synthetic faces,
10 training images per class, 1 epoch of the MLP.
"""
from __future__ import annotations

import ast
import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import FINISHED_SUITE

from ferbench.cli import main

REPO = Path(__file__).resolve().parents[1]

SUITE = FINISHED_SUITE  # the suite of conftest's finished_run


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_suite(folder: Path, text: str = SUITE, name: str = "suite.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text)
    return p


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def leftovers(root: Path) -> list[Path]:
    """Temporary files a write left behind."""
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]


class Expired(BaseException):
    """Not an Exception: code that catches every Exception (a runner going on after a failure) lets it through."""


@contextlib.contextmanager
def time_limit(seconds: int, what: str):
    """Fail (instead of hanging the test session) when the code inside runs longer than ``seconds``."""
    def _expired(signum, frame):
        raise Expired(f"{what} still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def run_copy(finished_run, tmp_path) -> tuple[Path, Path]:
    """(suite file, results dir) holding a private copy of conftest's finished run of SUITE."""
    shutil.copytree(finished_run, tmp_path / "res")
    return write_suite(tmp_path), tmp_path / "res"


def result(res: Path, eid: str) -> dict:
    return json.loads((res / "t" / eid / "result.json").read_text())


# --- nothing leaves the results folder -------------------------------------------------------------

@pytest.mark.parametrize("label", ["x/../../../y", "../y", "a/b", "..", ".hidden", "a\\b", "x" * 81])
def test_validate_rejects_labels_that_could_name_a_path(tmp_path, label):
    suite = write_suite(tmp_path, SUITE.replace("label: a", f"label: {json.dumps(label)}"))
    r = cli("validate", suite)
    assert r.exit_code == 1, r.output
    assert "label" in r.output and "is not allowed" in r.output and "names a folder" in r.output


def test_run_with_a_traversal_label_writes_nothing_outside_the_results_folder(tmp_path):
    work = tmp_path / "work"
    suite = write_suite(work, SUITE.replace("label: a", 'label: "x/../../../y"'))
    before = files_under(tmp_path)
    r = cli("run", suite, "--results-dir", work / "res")
    assert {p for p in files_under(tmp_path) - before if work / "res" not in p.parents} == set()
    assert r.exit_code == 1 and "is not allowed" in r.output, r.output


def test_profile_names_cannot_name_a_path(tmp_path):
    work = tmp_path / "work"
    suite = write_suite(work, SUITE + 'profiles:\n  "../../../esc": {max_epochs: 1}\n')
    r = cli("validate", suite)
    assert r.exit_code == 1 and "profile name '../../../esc' is not allowed" in r.output, r.output
    before = files_under(tmp_path)
    cli("run", suite, "--profile", "../../../esc", "--results-dir", work / "res")
    assert {p for p in files_under(tmp_path) - before if work / "res" not in p.parents} == set()


def test_llm_model_names_with_slashes_get_folders_inside_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("FERBENCH_TEST_NO_KEY", raising=False)
    work = tmp_path / "work"
    suite = write_suite(work, SUITE.replace("      - {model: mlp, label: b}\n", "") + """    llm:
      endpoints:
        - {model: "../../../../escaped/m", api_key_env: FERBENCH_TEST_NO_KEY}
        - {model: "meta-llama/Llama-3.2-11B-Vision-Instruct", api_key_env: FERBENCH_TEST_NO_KEY}
      sample: {split: PrivateTest, per_class: 1}
""")
    before = files_under(tmp_path)
    r = cli("run", suite, "--results-dir", work / "res")
    assert r.exit_code == 0, r.output
    run = work / "res" / "t"
    assert {p for p in files_under(tmp_path) - before if run not in p.parents} == set()
    llm = sorted(p.parent for p in run.glob("*/result.json") if ".llm." in p.parent.name)
    assert len(llm) == 2 and all(p.parent == run and ".." not in p.name for p in llm), llm
    assert llm[0].name.endswith("_escaped_m") and llm[1].name == "s.llm.meta-llama_Llama-3.2-11B-Vision-Instruct"
    for p in llm:
        r = json.loads((p / "result.json").read_text())
        assert r["status"] == "skipped" and r["id"] == p.name  # no key: skipped, and said so
    assert "meta-llama/Llama-3.2-11B-Vision-Instruct" in (run / "report.md").read_text()  # named as given


def test_planted_links_in_a_results_folder_are_not_written_through(run_copy, tmp_path):
    suite, res = run_copy
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(res / "t" / "s.a")
    (res / "t" / "s.a").symlink_to(outside, target_is_directory=True)
    r = cli("run", suite, "--results-dir", res)
    assert r.exit_code == 1 and "resolve outside the run folder" in r.output, r.output
    assert list(outside.iterdir()) == []
    (res / "t" / "s.a").unlink()
    shutil.rmtree(res / "t" / "figures")
    (res / "t" / "figures").symlink_to(outside, target_is_directory=True)
    for args in (("run", suite, "--results-dir", res), ("report", res / "t")):
        r = cli(*args)
        assert r.exit_code == 1 and "figures is not a folder of this run folder" in r.output, r.output
    assert list(outside.iterdir()) == []


def test_store_keeps_every_name_inside_its_folder(run_copy, tmp_path):
    from ferbench.errors import StoreError
    from ferbench.store import RunStore, load_run

    _, res = run_copy
    store = RunStore(res / "t")
    for bad in ("../x", "a/b", "..", ".", ".lock", "x/../../y", "a\\b", ""):
        with pytest.raises(StoreError):
            store.exp_dir(bad)
    with pytest.raises(StoreError):
        store.write_file("s.a", "../../escaped.png", b"x")
    assert not (res / "escaped.png").exists()
    # a result.json vouching for a file outside its folder is not trusted, and that file is not read
    a = result(res, "s.a")
    a["files"]["../../../../../../../../dev/zero"] = "0" * 64
    (res / "t" / "s.a" / "result.json").write_text(json.dumps(a))
    with time_limit(30, "reading a result that vouches for /dev/zero"):
        run = load_run(res / "t")
        assert store.completed("s.a", a["config_hash"])[0] is None
    assert [x.id for x in run.results] == ["s.b"]
    assert len(run.left_out) == 1 and "dev/zero" in run.left_out[0][1], run.left_out


@pytest.mark.parametrize("plant", ["symlink to /dev/zero", "fifo", "too large"])
def test_result_files_that_are_not_plain_files_are_refused_without_hanging(tmp_path, plant):
    from ferbench.errors import ResultFormatError
    from ferbench.store import RunStore, parse_result

    store = RunStore(tmp_path / "run")
    p = store.exp_dir("s.a") / "result.json"
    p.parent.mkdir(parents=True)
    if plant == "fifo":
        os.mkfifo(p)
    elif plant == "too large":
        with open(p, "wb") as fh:
            fh.truncate(30_000_000)
    else:
        p.symlink_to("/dev/zero")
    journal = p.parent / "answers.jsonl"
    if plant == "fifo":
        os.mkfifo(journal)
    else:
        journal.symlink_to(p)
    with time_limit(30, "reading a planted result.json"):
        with pytest.raises(ResultFormatError):
            parse_result(p)
        r, why = store.completed("s.a", "h")
        assert r is None and why
        assert store.journal("s.a", "h").read() == {}


# --- nothing in a results folder executes ----------------------------------------------------------

class _Plant:
    """Pickles to a call of exec: loading it with weights_only=False writes the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


def _replant(res: Path, eid: str, payload) -> Path:
    """Make ``eid`` incomplete (no result.json) with ``payload`` as its resume checkpoint. Planted under
    the config hash and under its first 16 characters (the name ferbench before the refactor used)."""
    h = result(res, eid)["config_hash"]
    (res / "t" / eid / "result.json").unlink()
    for name in (h[:16], h):
        ck = res / "t" / eid / f"checkpoint-{name}.pt"
        if isinstance(payload, bytes):
            ck.write_bytes(payload)
        else:
            torch.save(payload, ck)
    return ck


def test_a_pickle_planted_as_a_checkpoint_never_runs(run_copy, tmp_path):
    suite, res = run_copy
    marker = tmp_path / "MARKER-code-ran"
    ck = _replant(res, "s.a", {"epoch": 0, "model": _Plant(marker)})
    r = cli("run", suite, "--results-dir", res)
    assert not marker.exists(), "a pickle in the results folder ran code"
    assert r.exit_code == 0, r.output
    a = result(res, "s.a")
    assert a["status"] == "ok" and a["training"]["resumed_from_epoch"] is None
    assert ck.name in a["training"]["checkpoint_discarded"]
    assert not list(ck.parent.glob("checkpoint-*"))


@pytest.mark.parametrize("payload", ["truncated", "empty", "not a dict"])
def test_an_unreadable_checkpoint_is_discarded_and_training_restarts(run_copy, payload):
    suite, res = run_copy
    model_pt = (res / "t" / "s.a" / "model.pt").read_bytes()
    ck = _replant(res, "s.a", {"truncated": model_pt[:len(model_pt) // 2], "empty": b"",
                               "not a dict": [1, 2, 3]}[payload])
    r = cli("run", suite, "--results-dir", res)
    assert r.exit_code == 0 and "1 run, 1 reused" in r.output, r.output
    a = result(res, "s.a")
    assert a["status"] == "ok" and ck.name in a["training"]["checkpoint_discarded"]
    if payload == "truncated":  # and it stays fixed: the next run reuses the result
        r = cli("run", suite, "--results-dir", res)
        assert r.exit_code == 0 and "0 run, 2 reused" in r.output, r.output


def test_a_readable_checkpoint_that_cannot_be_resumed_restarts_training(run_copy):
    suite, res = run_copy
    ck = _replant(res, "s.a", {"epoch": 0, "model": {"no": torch.zeros(1)}})  # loads, but is not this model's
    r = cli("run", suite, "--results-dir", res)
    a = result(res, "s.a")
    assert r.exit_code == 0 and a["status"] == "ok", a.get("error")
    assert ck.name in a["training"]["checkpoint_discarded"]


def test_a_discarded_checkpoint_is_named_on_the_console(run_copy):
    suite, res = run_copy
    ck = _replant(res, "s.a", b"not a checkpoint")
    r = cli("run", suite, "--results-dir", res)
    assert r.exit_code == 0 and ck.name in r.output.replace("\n", ""), r.output


def test_every_torch_load_in_ferbench_uses_weights_only():
    calls = []
    for path in (REPO / "ferbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                wo = [k.value for k in node.keywords if k.arg == "weights_only"]
                calls.append((f"{path.relative_to(REPO)}:{node.lineno}", wo))
    assert calls, "the scan found no torch.load at all"
    unsafe = [where for where, wo in calls if not (len(wo) == 1 and isinstance(wo[0], ast.Constant)
                                                   and wo[0].value is True)]
    assert unsafe == []


# --- resource bombs are refused before they bite ---------------------------------------------------

_LAUGHS = "x-bomb:\n  l0: &l0 [a, a, a, a, a, a, a, a, a]\n" + "".join(
    f"  l{i}: &l{i} [*l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, "
    f"*l{i - 1}]\n" for i in range(1, 10))
_MANY_SEEDS = "[" + ", ".join(map(str, range(100))) + "]"
BOMBS = {
    "alias bomb in model_args": (_LAUGHS + SUITE.replace("{model: mlp, label: b}", "{model: mlp, label: b, "
                                                         "model_args: {x: *l9}}"), "aliases"),
    "kfold k 200000": (SUITE.replace("kind: official", "kind: kfold, k: 200000"), "k: Input should be less"),
    "augmented copies 100000": (SUITE.replace("kind: official", "kind: augmented, copies: 100000"),
                                "copies: Input should be less"),
    "models x seeds x folds": (SUITE.replace("kind: official", "kind: kfold, k: 20")
                               .replace("label: a}", "label: a}\n      - model: [mlp, cnn, basic_cnn]")
                               + f"seeds: {_MANY_SEEDS}\n", "experiments (models x seeds x folds)"),
    "nesting 20000 deep": ("name: t\nstudies: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply"),
    "an integer of 100000 digits": (SUITE + "seeds: [" + "9" * 100_000 + "]\n", "integer"),
    "a file of 2 MB": (SUITE + "description: " + "x" * 2_000_000 + "\n", "the limit is"),
}


@pytest.mark.parametrize("case", BOMBS)
def test_validate_refuses_resource_bombs_quickly(tmp_path, case):
    text, expected = BOMBS[case]
    suite = write_suite(tmp_path, text)
    t0 = time.perf_counter()
    with time_limit(60, f"ferbench validate ({case})"):
        r = cli("validate", suite)
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    assert expected in r.output, r.output
    assert time.perf_counter() - t0 < 30


def test_include_cycles_are_refused_with_the_chain(tmp_path):
    a = write_suite(tmp_path, "name: a\ninclude: [b.yaml]\nstudies: []\n", "a.yaml")
    write_suite(tmp_path, "name: b\ninclude: [a.yaml]\nstudies: []\n", "b.yaml")
    me = write_suite(tmp_path, "name: me\ninclude: [me.yaml]\nstudies: []\n", "me.yaml")
    for suite, chain in ((a, "a.yaml -> " + str(tmp_path / "b.yaml") + " -> " + str(tmp_path / "a.yaml")),
                         (me, "me.yaml -> " + str(tmp_path / "me.yaml"))):
        for args in (("validate", suite), ("run", suite, "--results-dir", tmp_path / "res")):
            r = cli(*args)
            assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)
            assert "include cycle" in r.output and chain in r.output.replace("\n", ""), r.output
    assert not (tmp_path / "res").exists()


# --- one run per results folder; temporary files never stay ------------------------------------------

def test_a_second_run_on_a_held_folder_exits_naming_the_holder(tmp_path):
    suite = write_suite(tmp_path, SUITE.replace("epochs: 1", "epochs: 10000"))  # runs until killed
    res = tmp_path / "res"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-m", "ferbench.cli", "run", str(suite), "--results-dir", str(res)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 120
        while not list((res / "t" / "s.a").glob("checkpoint-*.pt")):  # training: the folder is held
            assert holder.poll() is None and time.time() < deadline, "the first run did not start training"
            time.sleep(0.1)
        with time_limit(120, "the second run"):
            r = cli("run", suite, "--results-dir", res)
        assert r.exit_code == 1 and f"pid {holder.pid}" in r.output and "in use" in r.output, r.output
        assert holder.poll() is None, "the second run disturbed the first"
    finally:
        holder.kill()
        holder.wait()
    with time_limit(120, "the run after the holder died"):
        r = cli("run", suite, "--results-dir", res, "--dry-run")  # a killed holder's lock is gone with it
    assert r.exit_code == 0 and "in use" not in r.output, r.output
    assert leftovers(res) == []  # whatever the killed holder was writing is gone


def test_temporary_files_of_a_killed_writer_are_removed_by_the_next_run(run_copy):
    suite, res = run_copy
    child = """
import os, signal, sys
from ferbench.atomic import atomic_write_with
def write_then_die(fh):
    fh.write(b"half a checkpoint" * 1000)
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
atomic_write_with(sys.argv[1], write_then_die, binary=True)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for target in (res / "t" / "s.a" / "checkpoint-0123.pt", res / "t" / "report.html"):
        p = subprocess.run([sys.executable, "-c", child, str(target)], env=env, capture_output=True, timeout=120, check=False)
        assert p.returncode == -signal.SIGKILL, p.stderr
    killed = leftovers(res)
    assert len(killed) == 2, killed
    other_host = res / "t" / "s.b" / ".model.pt.tmp-elsewhere-77.abc.tmp"  # may be at work: kept (for a while)
    other_host.write_bytes(b"x")
    r = cli("run", suite, "--results-dir", res)
    assert r.exit_code == 0 and "2 reused" in r.output, r.output
    assert leftovers(res) == [other_host]


def test_concurrent_checkpoint_saves_never_share_a_temporary_file(tmp_path):
    from ferbench.store import Checkpoint

    ck = Checkpoint(tmp_path / "checkpoint-h.pt")
    errors = []

    def save(i):
        try:
            for _ in range(15):
                ck.save({"epoch": i, "w": torch.full((1000,), float(i))})
        except Exception as exc:  # collected: an assertion in a thread would be lost
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    state = ck.load()
    assert state is not None and (state["w"] == state["epoch"]).all()
    assert leftovers(tmp_path) == []


# --- the data cache ------------------------------------------------------------------------------------

def _csv_source(path: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(0)
    usages = ["Training", "PublicTest", "PrivateTest"]
    path.write_text("emotion,pixels,Usage\n" + "".join(
        f"{i % 7},{' '.join(map(str, rng.integers(0, 256, 2304)))},{usages[i % 3]}\n" for i in range(n)))
    return path


def _temp_folders(cache: Path) -> list[Path]:
    return [p for p in cache.glob(".fer-*") if p.is_dir()]


def test_the_cache_temp_folder_of_a_killed_writer_is_removed_at_the_next_load(tmp_path):
    from ferbench.data import load_data

    src = _csv_source(tmp_path / "fer2013.csv")
    cache = Path(os.environ["FERBENCH_CACHE"])
    # A writer killed between two arrays: the first is written, then SIGKILL (no cleanup can run).
    child = f"""
import os, signal, numpy as np
import ferbench.data.cache as c
real = np.save
def save_then_die(path, arr, **kw):
    real(path, arr, **kw)
    os.kill(os.getpid(), signal.SIGKILL)
c.np.save = save_then_die
from ferbench.data import load_data
load_data({str(src)!r})
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == -signal.SIGKILL, p.stderr
    stale = _temp_folders(cache)
    assert stale, "the killed writer left no temporary folder: the test did not test anything"
    d = load_data(str(src))
    assert len(d) == 40
    assert [p for p in stale if p.exists()] == []
    assert _temp_folders(cache) == []


def test_stale_cache_temp_folders_of_other_hosts_are_removed_only_when_old(tmp_path):
    from ferbench import atomic
    from ferbench.data import cache as c

    fresh, old, mine = (tmp_path / ".fer-abc.tmp-otherhost-1.x1", tmp_path / ".fer-abc.tmp-otherhost-2.x2",
                        tmp_path / f".fer-abc.tmp-{atomic._HOST}-{os.getpid()}.x3")
    for d in (fresh, old, mine):
        d.mkdir()
        (d / "images.npy").write_bytes(b"partial")
    long_ago = time.time() - c.STALE_SECONDS - 60
    os.utime(old / "images.npy", (long_ago, long_ago))
    os.utime(old, (long_ago, long_ago))
    assert c.remove_stale_temps(tmp_path) == [old]
    assert fresh.exists() and mine.exists()  # another host's writer may still be at work; we are alive


@pytest.mark.parametrize("damage", ["flipped image byte", "truncated labels", "pickled ids", "labels out of range"])
def test_a_damaged_cache_is_never_served(tmp_path, damage):
    from ferbench.data import cache as c
    from ferbench.data import load_data

    src = str(_csv_source(tmp_path / "fer2013.csv"))
    truth = load_data(src, use_cache=False)
    load_data(src)  # writes the cache
    folder = c.cache_path(c.source_key(src, skip_bad=False))
    if damage == "flipped image byte":
        with open(folder / "images.npy", "r+b") as fh:
            fh.seek(-1, os.SEEK_END)
            b = fh.read(1)
            fh.seek(-1, os.SEEK_END)
            fh.write(bytes([b[0] ^ 0xFF]))
    elif damage == "truncated labels":
        (folder / "labels.npy").write_bytes((folder / "labels.npy").read_bytes()[:-8])
    elif damage == "pickled ids":
        np.save(folder / "ids.npy", np.array([object()] * len(truth), dtype=object), allow_pickle=True)
    else:  # with checksums that match: what a deliberately forged cache would do
        np.save(folder / "labels.npy", np.full(len(truth), 99, dtype=np.int64))
        meta = json.loads((folder / "meta.json").read_text())
        if "sha256" in meta:
            meta["sha256"]["labels"] = c._sha256(folder / "labels.npy")
        (folder / "meta.json").write_text(json.dumps(meta))
    d = load_data(src)
    np.testing.assert_array_equal(np.asarray(d.images), truth.images)
    np.testing.assert_array_equal(d.labels, truth.labels)
    np.testing.assert_array_equal(d.ids, truth.ids)
    assert c.load_cached(c.source_key(src, skip_bad=False)) is not None  # and the cache was rewritten whole


# --- a stored result is reused only when all its files agree ----------------------------------------------

def test_predictions_of_another_configuration_are_not_reused(run_copy):
    """A killed run of config B left its predictions.csv beside config A's result.json."""
    suite, res = run_copy
    pred = res / "t" / "s.a" / "predictions.csv"
    lines = pred.read_text().splitlines()
    cells = lines[1].split(",")
    cells[3] = str((int(cells[3]) + 1) % 7)  # same shape, another model's answer
    pred.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    r = cli("run", suite, "--results-dir", res)
    assert r.exit_code == 0, r.output
    assert "1 run, 1 reused" in r.output and "predictions.csv does not belong" in r.output.replace("\n", ""), r.output
    from ferbench.store import load_run

    run = load_run(res / "t")
    assert run.left_out == [] and {x.id for x in run.results} == {"s.a", "s.b"}


def test_damaged_results_are_listed_in_the_report_then_run_again(run_copy):
    suite, res = run_copy
    pred = res / "t" / "s.a" / "predictions.csv"
    pred.write_bytes(pred.read_bytes()[: pred.stat().st_size // 2])  # torn
    b = result(res, "s.b")
    (res / "t" / "s.b" / "result.json").write_text(json.dumps(  # the right id and hash, the wrong shape
        {"format": b["format"], "id": "s.b", "status": "ok", "config_hash": b["config_hash"], "metrics": [1, 2]}))
    r = cli("report", res / "t")
    assert r.exit_code == 0, r.output
    md = (res / "t" / "report.md").read_text()
    left = [line for line in md.splitlines() if "Left out" in line]
    assert len(left) == 2, md
    assert "s.a/result.json" in left[0] and "predictions.csv" in left[0]
    assert "s.b/result.json" in left[1] and "not a valid ferbench result" in left[1]
    r = cli("run", suite, "--results-dir", res)
    assert r.exit_code == 0, r.output
    assert "2 run, 0 reused" in r.output and r.output.count("stored result not reused") == 2, r.output
    assert "Left out" not in (res / "t" / "report.md").read_text()


# --- a full disk is one message ------------------------------------------------------------------------

@pytest.fixture
def disk_full_on(monkeypatch):
    """``disk_full_on(prefix)``: every later fsync of a temporary file for a name starting with ``prefix``
    fails with ENOSPC, as a full disk reports it (data reaches the disk at fsync at the latest)."""
    real = os.fsync

    def arm(target: str):
        def fsync(fd):
            where = os.readlink(f"/proc/self/fd/{fd}")
            if os.path.basename(where).startswith(f".{target}"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to see which file an fsync is for")
    return arm


def test_disk_full_while_storing_a_model_is_one_message(tmp_path, disk_full_on):
    disk_full_on("model.pt.")
    r = cli("run", write_suite(tmp_path), "--results-dir", tmp_path / "res")
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    assert "no space left on the device holding" in r.output and "while writing model.pt" in r.output, r.output
    assert r.output.count("no space left") == 1 and "Traceback" not in r.output, r.output
    assert leftovers(tmp_path / "res") == []
    assert not (tmp_path / "res" / "t" / "s.a" / "result.json").exists()  # incomplete: the next run redoes it


def test_disk_full_while_checkpointing_stops_the_run_with_one_message(tmp_path, disk_full_on):
    disk_full_on("checkpoint-")
    r = cli("run", write_suite(tmp_path), "--results-dir", tmp_path / "res")
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    assert r.output.count("no space left") == 1 and "while writing checkpoint-" in r.output, r.output
    assert "FAILED" not in r.output and not list((tmp_path / "res").rglob("result.json")), r.output
    assert leftovers(tmp_path / "res") == []


def test_disk_full_while_writing_the_report_keeps_the_old_pair(run_copy, disk_full_on):
    _, res = run_copy
    md, html = res / "t" / "report.md", res / "t" / "report.html"
    before = [(p.stat().st_ino, p.read_bytes()) for p in (md, html)]
    disk_full_on("report.html.")
    r = cli("report", res / "t")
    assert r.exit_code == 1 and "no space left" in r.output and "while writing report.html" in r.output, r.output
    assert [(p.stat().st_ino, p.read_bytes()) for p in (md, html)] == before  # not a new .md beside an old .html
    assert leftovers(res) == []


def test_disk_full_inside_torch_save_is_recognised(tmp_path):
    """torch.save reports ENOSPC as a RuntimeError raised while handling the OSError."""
    from ferbench.atomic import atomic_write_with
    from ferbench.errors import DiskFullError

    def torch_like(fh):
        fh.write(b"partial")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    with pytest.raises(DiskFullError, match="while writing model.pt"):
        atomic_write_with(tmp_path / "model.pt", torch_like, binary=True)
    assert list(tmp_path.iterdir()) == []


def _can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                        capture_output=True, check=False).returncode == 0
    if ok:
        subprocess.run(["umount", str(where)], check=True)
    return ok


def test_a_real_full_disk_is_one_message(tmp_path):
    """End to end on a 2 MB tmpfs (needs root): the first checkpoint does not fit (torch.save reports
    that as a RuntimeError)."""
    mnt = tmp_path / "small"
    if not _can_mount_tmpfs(mnt):
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    try:
        r = cli("run", write_suite(tmp_path, SUITE.replace("model: mlp, label: b", "model: basic_cnn, label: b")),
                "--results-dir", mnt / "res")
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)
        assert r.output.count("no space left on the device holding") == 1, r.output
        assert "while writing checkpoint-" in r.output and "Traceback" not in r.output, r.output
        assert leftovers(mnt) == [] and not list(mnt.rglob("result.json"))
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
