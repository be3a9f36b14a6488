import csv
import json
import os
import stat
import tarfile
import time

import click
import pytest
from click.testing import CliRunner

from ferbench.cli import main


@pytest.mark.parametrize("args", [[], ["run"], ["validate"], ["data"], ["data", "info"], ["data", "faces"], ["models"],
                                  ["report"], ["list"], ["results"], ["bench"], ["doctor"]])
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


# --- one small run shared by the tests below ------------------------------------------------------

SUITE = """name: t
data: synthetic:700:1
studies:
  - name: s
    split: {kind: official}
    experiments:
      - model: mlp
        train: {epochs: 3, batch_size: 32}
"""
OVERRIDES = ["--limit", "5", "--epochs", "1", "--seed", "3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three invocations of one tiny run, under a 022 umask: first (--json), again (reused, tables),
    again with --force (--json)."""
    root = tmp_path_factory.mktemp("cli-run")
    suite = root / "suite.yaml"
    suite.write_text(SUITE)
    args = ["run", str(suite), "--results-dir", str(root / "res"), *OVERRIDES]
    old = os.umask(0o022)
    try:
        first = CliRunner().invoke(main, args + ["--json"])
        again = CliRunner().invoke(main, args)
        forced = CliRunner().invoke(main, args + ["--force", "--json"])
    finally:
        os.umask(old)
    for r in (first, again, forced):
        assert r.exit_code == 0, r.output
    return {"suite": suite, "run_dir": root / "res" / "t-epochs1-limit5-seed3", "first": first, "again": again,
            "forced": forced}


def test_overrides_are_recorded_as_deviations(runs):
    res = json.loads((runs["run_dir"] / "s.mlp" / "result.json").read_text())
    dev = res["deviations"]
    assert "--limit 5: at most 5 images per class in train, val and test" in dev
    assert "1 epoch instead of 3 (--epochs)" in dev
    assert "--seed 3 instead of the suite's seeds [0]" in dev
    assert res["seed"] == 3 and len(res["history"]) == 1 and res["training"]["epochs_run"] == 1
    assert res["split"]["sizes"]["train"] <= 5 * 7 and res["metrics"]["test"]["n"] <= 5 * 7
    report = (runs["run_dir"] / "report.md").read_text()
    assert "1 epoch instead of 3 (--epochs)" in report


def test_run_json_is_a_parseable_summary_matching_the_result(runs):
    out = json.loads(runs["first"].stdout)  # progress and messages went to stderr
    assert out["run_dir"] == str(runs["run_dir"]) and out["done"] == ["s.mlp"] and out["reused"] == []
    (row,) = out["results"]
    res = json.loads((runs["run_dir"] / "s.mlp" / "result.json").read_text())
    assert row["accuracy"] == res["metrics"]["test"]["accuracy"] and row["n"] == res["metrics"]["test"]["n"]
    assert out["report"].endswith("report.md") and "results" not in runs["first"].stderr.split("\n")[-2:]


def test_summary_table_at_the_end_of_a_run(runs):
    out = runs["again"].output
    table = out[out.index("results"):]
    assert "s.mlp" in table and "ok (reused)" in table and "accuracy %" in table
    acc = json.loads(runs["first"].stdout)["results"][0]["accuracy"]
    assert f"{100 * acc:.2f}" in table
    assert "0 run, 1 reused, 0 skipped, 0 failed" in out and "report: " in out


def test_force_reruns_a_complete_experiment(runs):
    out = json.loads(runs["forced"].stdout)
    assert out["done"] == ["s.mlp"] and out["reused"] == []
    assert [p["action"] for p in out["plan"]] == ["run"]


def test_tables_csv_hold_numbers(runs):
    tables = sorted((runs["run_dir"] / "tables").glob("*.csv"))
    assert tables
    numeric_columns = 0
    for path in tables:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert rows, path
        for col in rows[0]:
            cells = [r[col] for r in rows if r[col] != ""]
            if any(_is_number(c) for c in cells):
                numeric_columns += 1
                assert all(_is_number(c) for c in cells), (path.name, col, cells)  # no '12.5%', '[1, 2]', '1.3M'
    acc = json.loads((runs["run_dir"] / "s.mlp" / "result.json").read_text())["metrics"]["test"]["accuracy"]
    with open(runs["run_dir"] / "tables" / "s_accuracy.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["test acc %"]) == pytest.approx(100 * acc, abs=1e-4)
    assert numeric_columns >= 10


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_report_and_result_files_are_readable_by_others(runs):
    d = runs["run_dir"]
    for p in (d / "report.html", d / "report.md", d / "run.json", d / "s.mlp" / "result.json",
              d / "s.mlp" / "predictions.csv", *(d / "tables").glob("*.csv")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


# --- help, models ------------------------------------------------------------------------------------

def _commands(group: click.Group, path=()):
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def test_every_option_of_every_command_has_help():
    missing = [f"{' '.join(path)} {opt.opts[0]}" for path, cmd in _commands(main) for opt in cmd.params
               if isinstance(opt, click.Option) and not (opt.help or "").strip()]
    assert not missing
    for path, cmd in _commands(main):
        assert (cmd.help or "").strip(), path


def test_bench_and_data_info_help_do_not_speak_of_a_suite():
    for args in (["bench"], ["data", "info"]):
        r = CliRunner().invoke(main, [*args, "--help"])
        assert r.exit_code == 0 and "suite" not in r.output.lower(), r.output
    assert "suite's data: entry" in CliRunner().invoke(main, ["run", "--help"]).output


def test_models_pattern_and_counts_without_real_weights(monkeypatch):
    from ferbench.models import _registry

    r = CliRunner().invoke(main, ["models", "*RESNET*", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert set(rows) == {"resnet34", "resnet50_transfer", "resnet_custom", "simple_resnet_fer", "strong_resnet"}
    builder = _registry._REGISTRY["resnet_custom"][1]
    assert rows["resnet_custom"]["parameters"] == _registry.count_parameters(builder(num_classes=7))
    # a second call reads the counts it remembered: nothing is built
    monkeypatch.setattr(_registry, "_built_facts", lambda name: pytest.fail(f"built {name} again"))
    r = CliRunner().invoke(main, ["models", "resnet_custom"])
    assert r.exit_code == 0 and "324,199" in r.output
    r = CliRunner().invoke(main, ["models", "zzz*"])
    assert r.exit_code == 1 and "no model matches 'zzz*'. Available: basic_cnn" in r.output


def test_meta_device_counts_equal_built_counts():
    from ferbench.models import _registry

    for name in ("basic_cnn", "cbam_cnn", "dcnn_elu", "rnn"):
        info, builder = _registry._REGISTRY[name]
        real = builder(num_classes=3 if info.study == "three_class" else 7)
        assert _registry._built_facts(name)["parameters"] == _registry.count_parameters(real), name


# --- bad input: one clear line each -------------------------------------------------------------------

def _validate(tmp_path, text: str, name: str = "s.yaml"):
    (tmp_path / name).write_text(text)
    return CliRunner().invoke(main, ["validate", str(tmp_path / name)])


def test_yaml_syntax_error_names_the_file(tmp_path):
    r = _validate(tmp_path, "name: x\nstudies: [{name: a\n  experiments: [}\n")
    assert r.exit_code == 1 and str(tmp_path / "s.yaml") in r.output and "not valid YAML" in r.output
    assert "<unicode string>" not in r.output and "line 3" in r.output


def test_unknown_keys_and_models_get_did_you_mean_sorted_by_line(tmp_path):
    r = _validate(tmp_path, "name: x\n"
                            "studies:\n"
                            "  - name: a\n"
                            "    experiments:\n"
                            "      - model: mpl\n"
                            "        trian: {epochs: 1}\n"
                            "      - model: mlp\n"
                            "        train: {epohcs: 2}\n"
                            "seeeds: [1]\n")
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip().startswith("- line")]
    assert [int(ln.split("line ")[1].split(":")[0]) for ln in lines] == [5, 6, 8, 9]
    assert "unknown model 'mpl'. Did you mean 'mlp'?" in lines[0]
    assert "unknown key 'trian'. Did you mean 'train'?" in lines[1]
    assert "unknown key 'epohcs'. Did you mean 'epochs'?" in lines[2]
    assert "unknown key 'seeeds'. Did you mean 'seeds'?" in lines[3]


def test_include_error_names_the_including_suite(tmp_path):
    (tmp_path / "sub.yaml").write_text("name: sub\nstudies: [{name: b, experiments: [{model: nope}]}]\n")
    r = _validate(tmp_path, "name: main\ninclude: [sub.yaml]\n", "main.yaml")
    assert r.exit_code == 1
    assert f"{tmp_path / 'main.yaml'}: 1 problem(s)" in r.output and "in included suite sub.yaml" in r.output
    assert "unknown model 'nope'" in r.output


def test_truncated_archive_is_named_not_aborted(kaggle_folder, tmp_path):
    root, _ = kaggle_folder
    arch = tmp_path / "fer2013.tar.gz"
    with tarfile.open(arch, "w:gz") as t:
        t.add(root, arcname="fer2013")
    (tmp_path / "half.tar.gz").write_bytes(arch.read_bytes()[: arch.stat().st_size // 2])
    r = CliRunner().invoke(main, ["data", "info", "--data", str(tmp_path / "half.tar.gz")])
    assert r.exit_code == 1 and "Aborted" not in r.output
    assert f"{tmp_path / 'half.tar.gz'} is truncated or corrupt" in r.output and len(r.output.splitlines()) == 1


def test_hf_id_offline_fails_fast_with_one_line():
    t0 = time.perf_counter()
    r = CliRunner().invoke(main, ["data", "info", "--data", "hf:nonexistent/x"])  # conftest: HF_HUB_OFFLINE=1
    assert r.exit_code == 1 and "Retry" not in r.output and len(r.output.splitlines()) == 1
    assert "Hugging Face dataset 'nonexistent/x' is not in the local Hugging Face cache" in r.output
    assert time.perf_counter() - t0 < 30


def test_data_info_shows_decoding_progress_on_stderr_but_not_with_json(kaggle_folder):
    root, expected = kaggle_folder
    r = CliRunner().invoke(main, ["data", "info", "--data", str(root), "--json"])
    assert r.exit_code == 0 and r.stderr == "" and json.loads(r.stdout)["totals"] == expected
    (root / "train" / "sad" / "Training_4242.jpg").write_bytes((root / "train/sad").iterdir().__next__().read_bytes())
    r = CliRunner().invoke(main, ["data", "info", "--data", str(root)])  # changed source: decoded again
    n = sum(expected.values()) + 1
    assert r.exit_code == 0 and f"decoded {n} images from fer2013" in r.stderr and "decoded" not in r.stdout
