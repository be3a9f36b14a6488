import json

import pytest
from click.testing import CliRunner

from ferbench.cli import main


@pytest.mark.parametrize("args", [[], ["run"], ["validate"], ["data"], ["data", "info"], ["models"], ["report"]])
def test_help_everywhere(args):
    r = CliRunner().invoke(main, [*args, "--help"])
    assert r.exit_code == 0 and "Usage:" in r.output


def test_data_info_json_and_table(kaggle_folder):
    root, expected = kaggle_folder
    r = CliRunner().invoke(main, ["data", "info", "--data", str(root), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["totals"] == expected and info["from"] == "--data" and "fer-" in info["cache"]
    r = CliRunner().invoke(main, ["data", "info", "--data", str(root)])
    assert r.exit_code == 0 and "PrivateTest" in r.output


def test_data_info_without_data_explains(monkeypatch):
    monkeypatch.delenv("FERBENCH_DATA", raising=False)
    r = CliRunner().invoke(main, ["data", "info"])
    assert r.exit_code == 1 and "no FER2013 data given" in r.output and "Traceback" not in r.output


def test_run_missing_suite_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(main, ["run", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 1 and "suite file not found" in r.output


def test_run_only_that_matches_nothing(tmp_path):
    (tmp_path / "s.yaml").write_text("name: x\ndata: synthetic\nstudies: [{name: a, experiments: [{model: mlp}]}]\n")
    r = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--only", "zzz*", "--results-dir", str(tmp_path)])
    assert r.exit_code == 1 and "no experiment of suite 'x' matches --only 'zzz*'" in r.output


def test_run_skip_bad_counts_unreadable_images(kaggle_folder, tmp_path):
    root, _ = kaggle_folder
    (root / "train" / "happy" / "Training_999.jpg").write_bytes(b"broken")
    (tmp_path / "s.yaml").write_text("name: x\nstudies: [{name: a, split: {kind: official}, "
                                     "experiments: [{model: mlp, train: {epochs: 1}}]}]\n")
    args = ["run", str(tmp_path / "s.yaml"), "--data", str(root), "--results-dir", str(tmp_path / "r")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "cannot decode image" in r.output and "Training_999.jpg" in r.output
    r = CliRunner().invoke(main, args + ["--skip-bad"])
    assert r.exit_code == 0, r.output
    assert "skipped 1 unreadable image(s)" in r.output
    run = json.loads((tmp_path / "r/x/run.json").read_text())
    assert len(run["data"]["skipped_unreadable"]) == 1
