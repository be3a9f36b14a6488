"""The result store: atomic files under SIGKILL, the answers journal, the typed result contract."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ferbench.errors import ResultFormatError, StoreError
from ferbench.store import AnswerJournal, RunStore, parse_result

from conftest import REPO

WRITER = r"""
import sys, torch
from ferbench.atomic import atomic_torch_save
from ferbench.store import AnswerJournal
kind, path = sys.argv[1], sys.argv[2]
if kind == "model":
    i = 0
    while True:  # ~40 MB payloads, each naming its generation
        atomic_torch_save(path, {"gen": i, "w": torch.full((10_000_000,), float(i))})
        i += 1
else:
    j = AnswerJournal(path, "h")
    i = len(j.read())
    while True:
        j.append({"id": f"img{i}", "text": "x" * (i % 5000), "status": "ok"})
        i += 1
"""


def _kill_while_writing(kind: str, path, seconds: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, kind, str(path)], env=env)
    try:
        deadline = time.time() + 60
        while not path.exists() and time.time() < deadline:  # the first complete file (torch imports slowly)
            time.sleep(0.02)
        time.sleep(seconds)  # then kill somewhere in the middle of later writes
        assert proc.poll() is None, "the writer died on its own"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("delay", [0.7, 1.3])
def test_model_file_killed_mid_write_is_old_or_new_and_complete(tmp_path, delay):
    path = tmp_path / "model.pt"
    _kill_while_writing("model", path, delay)
    state = torch.load(path, weights_only=True)  # a complete file: it loads
    assert torch.equal(state["w"], torch.full((10_000_000,), float(state["gen"])))


def test_journal_killed_mid_append_keeps_every_complete_answer(tmp_path):
    path = tmp_path / "answers.jsonl"
    for delay in (0.3, 0.45, 0.35):  # several kills, each resuming the journal
        _kill_while_writing("journal", path, delay)
        j = AnswerJournal(path, "h")
        recs = j.read()
        assert recs and all(r["text"] == "x" * (int(k[3:]) % 5000) for k, r in recs.items())
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])  # torn tail rewritten away
    assert sorted(int(k[3:]) for k in AnswerJournal(path, "h").read()) == list(range(len(recs)))


def test_journal_of_another_config_is_never_resumed(tmp_path):
    path = tmp_path / "answers.jsonl"
    AnswerJournal(path, "config-a").append({"id": "1", "text": "happy"})
    assert AnswerJournal(path, "config-a").read() == {"1": {"id": "1", "text": "happy"}}
    assert AnswerJournal(path, "config-b").read() == {}
    assert not path.exists() or "config-a" not in path.read_text()


def test_result_of_an_older_format_is_refused_with_one_message(tmp_path):
    p = tmp_path / "s.x" / "result.json"
    p.parent.mkdir()
    p.write_text(json.dumps({"id": "s.x", "status": "ok", "kind": "train", "metrics": {}}))
    with pytest.raises(ResultFormatError, match=r"written by an older ferbench \(result format 1; this ferbench "
                                                r"reads format 2\)"):
        parse_result(p)
    p.write_text(json.dumps({"format": 2, "id": "s.x", "kind": "train", "status": "ok"}))
    with pytest.raises(ResultFormatError, match="not a valid ferbench result"):
        parse_result(p)
    store = RunStore(tmp_path)
    assert store.completed("s.x", "h")[0] is None and "not a valid ferbench result" in store.completed("s.x", "h")[1]


@pytest.mark.parametrize("eid", ["../x", "a/b", "x/../../y", ".hidden", "..", "a\\b"])
def test_experiment_folders_never_leave_the_run_folder(tmp_path, eid):
    with pytest.raises(StoreError, match="cannot name a results folder"):
        RunStore(tmp_path / "run").exp_dir(eid)


def test_a_report_needs_predictions_not_weights_but_reuse_needs_both(finished_run, tmp_path):
    """A reference run ships without model.pt: its numbers still report (from predictions.csv); an
    edited model.pt is still refused, and a run does not reuse a result whose weights are gone."""
    import shutil

    from ferbench.store import load_run

    run = tmp_path / "t"
    shutil.copytree(finished_run / "t", run)
    (run / "s.a" / "model.pt").unlink()
    (run / "s.b" / "model.pt").write_bytes(b"edited")
    data = load_run(run)
    assert [r.id for r in data.results] == ["s.a"]
    assert data.left_out == [("s.b/result.json", "model.pt does not belong to this result.json "
                                                  "(another configuration's or edited)")]
    store = RunStore(run)
    a = store.read_result("s.a")
    assert store.completed("s.a", a.config_hash) == (None, "model.pt is missing")


def test_a_packed_run_reports_and_resumes_as_before_and_an_edited_pack_is_refused(finished_run, tmp_path):
    """`ferbench pack` gzips predictions.csv; the report recomputes the same metrics from the packed file,
    a run reuses the packed result, and a pack whose content was edited is left out like an edited CSV."""
    import gzip
    import shutil

    from click.testing import CliRunner

    from ferbench.cli import main
    from ferbench.store import load_run

    run = tmp_path / "t"
    shutil.copytree(finished_run / "t", run)
    before = {r.id: r.metrics for r in load_run(run).results}
    out = CliRunner().invoke(main, ["pack", str(run)])
    assert out.exit_code == 0, out.output
    assert "packed 2 file(s)" in out.output
    assert not (run / "s.a" / "predictions.csv").exists() and (run / "s.a" / "predictions.csv.gz").exists()
    assert {r.id: r.metrics for r in load_run(run).results} == before
    store = RunStore(run)
    a = store.read_result("s.a")
    assert store.completed("s.a", a.config_hash)[1] is None
    text = gzip.decompress((run / "s.b" / "predictions.csv.gz").read_bytes()).decode()
    rows = text.splitlines()
    cells = rows[1].split(",")
    cells[3] = str((int(cells[3]) + 1) % 7)  # one prediction edited
    rows[1] = ",".join(cells)
    (run / "s.b" / "predictions.csv.gz").write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    data = load_run(run)
    assert [r.id for r in data.results] == ["s.a"]
    assert data.left_out[0][1].startswith("predictions.csv does not belong")


def test_a_gzip_bomb_or_torn_pack_is_refused_not_unpacked(tmp_path, monkeypatch):
    """A planted predictions.csv.gz that unpacks past the bound, or a torn one, is refused with a message."""
    import gzip

    import ferbench.store as st

    bomb = tmp_path / "predictions.csv"
    (tmp_path / "predictions.csv.gz").write_bytes(gzip.compress(b"id,split,true,predicted\n" + b"0" * 5_000_000))
    monkeypatch.setattr(st, "MAX_CSV_BYTES", 1_000_000)
    with pytest.raises(ResultFormatError, match="unpacks to more than"):
        st.read_predictions(bomb)
    assert st.sha256_file(bomb) is None
    (tmp_path / "predictions.csv.gz").write_bytes(gzip.compress(b"id,split,true,predicted\n0,test,1,1\n")[:-9])
    with pytest.raises(ResultFormatError, match="unreadable predictions"):
        st.read_predictions(bomb)


def test_the_committed_reference_run_is_intact_and_small():
    """results/reference/papers: every result's packed predictions match the digest it vouches for, and no
    committed file exceeds the repository's 1 MB bound (what `ferbench pack` is for)."""
    run = REPO / "results" / "reference" / "papers"
    if not run.is_dir():
        pytest.skip("no reference run in this checkout")
    store = RunStore(run)
    results = [parse_result(p) for p in sorted(run.glob("*/result.json"))]
    assert len(results) >= 12
    assert {r.id: store.file_problems(r, weights_optional=True) for r in results} == {r.id: [] for r in results}
    assert [p for p in run.rglob("*") if p.is_file() and p.stat().st_size > 1_000_000] == []
