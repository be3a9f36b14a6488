"""`ferbench list` (a suite's experiments and their status) and `ferbench results` (one long table
across runs), on one tiny run shared by the module."""
import csv
import json
import shutil

import pytest
from click.testing import CliRunner

from ferbench.cli import main
from ferbench.leaderboard import FIELDS, collect, suite_status
from ferbench.store import RunStore
from ferbench.suite import Overrides

SUITE = """name: lb
data: synthetic:700:2
studies:
  - name: s
    split: {kind: official}
    experiments:
      - model: mlp
      - model: basic_cnn
        train: {lr: 0.01}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    (root / "suite.yaml").write_text(SUITE)
    r = CliRunner().invoke(main, ["run", str(root / "suite.yaml"), "--results-dir", str(root / "res"),
                                  "--limit", "4", "--epochs", "1"])
    assert r.exit_code == 0, r.output
    return root, root / "res" / "lb-epochs1-limit4"


def _copy(run, tmp_path):
    """A private copy of the shared run folder, to damage."""
    root, run_dir = run
    dst = tmp_path / "res" / run_dir.name
    shutil.copytree(run_dir, dst)
    return root / "suite.yaml", tmp_path / "res", RunStore(dst)


def _list(suite, results_dir, *extra):
    r = CliRunner().invoke(main, ["list", str(suite), "--results-dir", str(results_dir), "--limit", "4",
                                  "--epochs", "1", *extra])
    assert r.exit_code == 0, r.output
    return r


# --- ferbench list ---------------------------------------------------------------------------------

def test_list_complete_with_headline_and_json(run):
    root, run_dir = run
    r = _list(root / "suite.yaml", root / "res")
    assert "s.mlp" in r.output and "s.basic_cnn" in r.output and "2 complete" in r.output
    assert "checked against the data run.json records: synthetic:700:2" in r.output
    out = json.loads(_list(root / "suite.yaml", root / "res", "--json").stdout)
    assert out["run_dir"] == str(run_dir) and out["counts"] == {"complete": 2}
    stored = json.loads((run_dir / "s.mlp" / "result.json").read_text())["metrics"]["test"]
    mlp = next(e for e in out["experiments"] if e["id"] == "s.mlp")
    assert mlp["accuracy"] == stored["accuracy"] and mlp["split"] == "test" and mlp["kind"] == "train"
    assert mlp["detail"] == f"test accuracy {100 * stored['accuracy']:.2f}% (n={stored['n']})"


def test_list_other_profile_or_overrides_is_another_folder(run):
    root, _ = run
    r = CliRunner().invoke(main, ["list", str(root / "suite.yaml"), "--results-dir", str(root / "res")])
    assert r.exit_code == 0 and "no run folder yet" in r.output and "2 not run" in r.output
    r = CliRunner().invoke(main, ["list", str(root / "suite.yaml"), "--results-dir", str(root / "res"),
                                  "--profile", "nope"])
    assert r.exit_code == 1 and "unknown profile 'nope'" in r.output


def test_list_config_changed_and_only(run, tmp_path):
    root, _ = run
    changed = tmp_path / "suite.yaml"
    changed.write_text(SUITE.replace("train: {lr: 0.01}", "train: {lr: 0.02}"))
    st = suite_status(changed, results_dir=root / "res", overrides=Overrides(epochs=1, limit=4))
    assert {e.id: e.status for e in st.experiments} == {"s.mlp": "complete", "s.basic_cnn": "config changed"}
    st = suite_status(changed, results_dir=root / "res", only="s.mlp", overrides=Overrides(epochs=1, limit=4))
    assert [e.id for e in st.experiments] == ["s.mlp"]


@pytest.mark.parametrize("damage, status, detail", [
    ("failed", "failed", "boom"),
    ("skipped", "skipped", "no weights"),
    ("predictions", "incomplete", "predictions.csv is missing"),
    ("torn", "unreadable", "unreadable or torn result file"),
    ("old", "unreadable", "written by an older ferbench"),
])
def test_list_reports_what_the_folder_holds(run, tmp_path, damage, status, detail):
    suite, res, store = _copy(run, tmp_path)
    r = store.read_result("s.mlp")
    path = store.exp_dir("s.mlp") / "result.json"
    if damage in ("failed", "skipped"):
        store.write_result(r.model_copy(update={"status": damage, "error": "boom\ntraceback" if damage == "failed"
                                                 else None, "reason": "no weights"}))
    elif damage == "predictions":
        (store.exp_dir("s.mlp") / "predictions.csv").unlink()
    elif damage == "torn":
        path.write_text(path.read_text()[:100])
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), "format": 1}))
    st = suite_status(suite, results_dir=res, overrides=Overrides(epochs=1, limit=4))
    mlp = next(e for e in st.experiments if e.id == "s.mlp")
    assert mlp.status == status and detail in mlp.detail and "traceback" not in mlp.detail
    assert next(e for e in st.experiments if e.id == "s.basic_cnn").status == "complete"
    assert status in _list(suite, res).output


def test_list_without_run_json_says_unknown(run, tmp_path):
    suite, res, store = _copy(run, tmp_path)
    (store.root / "run.json").unlink()
    st = suite_status(suite, results_dir=res, overrides=Overrides(epochs=1, limit=4))
    assert {e.status for e in st.experiments} == {"unknown"} and "data the results ran on is unknown" in st.data_note


# --- ferbench results --------------------------------------------------------------------------------

def test_results_long_table_csv_and_json_hold_numbers(run, tmp_path):
    root, run_dir = run
    out_csv = tmp_path / "board.csv"
    r = CliRunner().invoke(main, ["results", str(root / "res"), "--csv", str(out_csv)])
    assert r.exit_code == 0, r.output
    assert "s.basic_cnn" in r.output and "accuracy" in r.output and "lb" in r.output and "left out" not in r.output
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == FIELDS
    for row in rows:
        float(row["value"]) and int(row["n"])  # numbers, not '65.2%'
        assert row["ci_low"] == "" or float(row["ci_low"]) <= float(row["value"]) <= float(row["ci_high"])
    stored = json.loads((run_dir / "s.mlp" / "result.json").read_text())["metrics"]
    acc = {(row["experiment"], row["split"]): float(row["value"]) for row in rows if row["metric"] == "accuracy"}
    assert acc == {(e, s): json.loads((run_dir / e / "result.json").read_text())["metrics"][s]["accuracy"]
                   for e in ("s.mlp", "s.basic_cnn") for s in ("val", "test")}
    f1 = next(row for row in rows if row["experiment"] == "s.mlp" and row["split"] == "test"
              and row["metric"] == "macro_f1")
    assert float(f1["value"]) == stored["test"]["macro_f1"] and float(f1["ci_low"]) == stored["test"]["macro_f1_ci"][0]
    assert {row["suite"] for row in rows} == {"lb"} and {row["profile"] for row in rows} == {"paper"}
    assert {row["overrides"] for row in rows} == {"epochs=1 limit=4"} and "paper epochs=1 limit=4" in r.output
    assert {row["data"] for row in rows} == {"synthetic:700:2"} and {row["run"] for row in rows} == {run_dir.name}
    out = json.loads(CliRunner().invoke(main, ["results", str(run_dir), "--json"]).stdout)
    assert len(out["rows"]) == len(rows) and out["left_out"] == [] and out["runs"] == [str(run_dir)]
    assert out["rows"][0]["value"] == float(rows[0]["value"])


def test_results_merges_runs_once_and_leaves_out_what_it_cannot_trust(run, tmp_path):
    root, run_dir = run
    _, res, store = _copy(run, tmp_path)
    (store.exp_dir("s.mlp") / "predictions.csv").write_text("id,split,true,predicted\n")  # not what it vouched for
    (tmp_path / "notes").mkdir()
    board = collect([root / "res", run_dir, res, tmp_path / "notes"])  # run_dir twice: counted once
    assert len(board.runs) == 2
    n_one = len(collect([run_dir]).rows)
    assert len(board.rows) == n_one + n_one // 2  # the copy's s.mlp is left out
    why = dict(board.left_out)
    assert "does not belong to this result.json" in why[str(store.root / "s.mlp" / "result.json")]
    assert "not a run folder" in why[str(tmp_path / "notes")]
    r = CliRunner().invoke(main, ["results", str(res)])
    assert r.exit_code == 0 and "left out" in r.output and "does not belong" in r.output


def test_results_old_run_folder_and_nothing_found(run, tmp_path):
    _, res, store = _copy(run, tmp_path)
    head = json.loads((store.root / "run.json").read_text())
    (store.root / "run.json").write_text(json.dumps({**head, "format": 1}))
    r = CliRunner().invoke(main, ["results", str(res)])
    assert r.exit_code == 1 and "no ferbench run found" in r.output and "written by another ferbench" in r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["results", str(tmp_path / "empty")])
    assert r.exit_code == 1 and "not a run folder (no run.json) and holds none" in r.output
