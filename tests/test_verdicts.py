"""A verdict per reported number (within the CI / outside by how much / not comparable, why) and the
sensitivity sweep (one unstated setting at a time; 'reproduced by X' or 'not reproduced; closest: X'),
on a tiny synthetic run of the llm_vs_nn paper's MLP."""
import csv
import io
import json
import math

import pytest
from click.testing import CliRunner

from ferbench.cli import main
from ferbench.report import verdicts_markdown
from ferbench.report.baselines import load_baselines
from ferbench.report.protocol import protocol_table
from ferbench.report.verdicts import judge, sensitivity_table, verdicts_table
from ferbench.runner import RunRequest, run_suite
from ferbench.schema.suite import STUDY_NAMES
from ferbench.store import load_run
from ferbench.suite import expand, load_suite
from ferbench.suite.expansion import Overrides

SUITE = """name: verd
data: synthetic:700:2
defaults: {epochs: 1, batch_size: 64, lr: 0.001, restore_best: false}
studies:
  - name: llm_vs_nn
    paper: llm_vs_nn
    split: {kind: kaggle, val_fraction: null}
    experiments: [{model: mlp}]
    sensitivity:
      settings: {lr: [0.001, 0.01], batch_size: [32]}
      models: [mlp]
"""


def test_judge_within_outside_and_not_comparable():
    w = judge(0.50, 0.52, (0.48, 0.56))
    assert w.kind == "within" and w.text == "within the 95% CI (+2.00 pts)" and math.isclose(w.half_widths, 0.5)
    o = judge(0.5972, 0.5205, (0.509, 0.532))
    assert o.kind == "outside" and math.isclose(o.points, -7.67) and math.isclose(o.half_widths, 7.67 / 1.15)
    assert o.text == "outside the 95% CI: 7.67 pts below (6.7 CI half-widths)"
    assert judge(0.40, 0.45, (0.44, 0.46)).text.startswith("outside the 95% CI: 5.00 pts above")
    n = judge(0.5, 0.5, (0.4, 0.6), "a number on the paper's small sample, not on a test set")
    assert n.kind == "not comparable" and n.text.endswith("small sample, not on a test set")
    assert judge(0.5, None, None).kind == "not comparable"


def test_sweep_expands_one_setting_at_a_time_only_when_asked(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE)
    s = load_suite(tmp_path / "s.yaml")
    assert [e.id for e in expand(s, "paper")] == ["llm_vs_nn.mlp"]
    exps = {e.id: e for e in expand(s, "paper", overrides=Overrides(sensitivity=True))}
    # lr 0.001 is the recipe's: nothing to add
    assert sorted(exps) == ["llm_vs_nn.mlp", "llm_vs_nn.mlp+batch_size_32", "llm_vs_nn.mlp+lr_0.01"]
    v = exps["llm_vs_nn.mlp+lr_0.01"]
    assert (v.train.lr, v.train.batch_size, v.variant.of, v.variant.text) == (0.01, 64, "mlp", "lr=0.01")
    assert v.deviations == ["sensitivity sweep: lr=0.01 instead of the recipe's 0.001"]
    # the recipe's hash does not depend on whether the sweep runs beside it
    assert exps["llm_vs_nn.mlp"].config_hash() == expand(s, "paper")[0].config_hash()
    # `list --sensitivity` shows the members beside the recipe, in the recipe's run folder
    out = CliRunner().invoke(main, ["list", str(tmp_path / "s.yaml"), "--sensitivity", "--json",
                                    "--results-dir", str(tmp_path / "res")])
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    assert listed["run_dir"] == str(tmp_path / "res" / "verd")
    assert sorted(e["id"] for e in listed["experiments"]) == sorted(exps)


def test_an_unknown_sweep_setting_or_model_is_refused(tmp_path):
    for bad, msg in (("settings: {lr_rate: [0.1]}", "unknown sweep setting 'lr_rate'"),
                     ("settings: {augment.crop_size: [[0.5, 1.0]]}", "unknown sweep setting 'augment.crop_size'"),
                     ("settings: {lr: [0.1]}\n      models: [cnn]", "unknown sensitivity model 'cnn'")):
        (tmp_path / "s.yaml").write_text(SUITE.replace("settings: {lr: [0.001, 0.01], batch_size: [32]}\n"
                                                       "      models: [mlp]", bad))
        r = CliRunner().invoke(main, ["validate", str(tmp_path / "s.yaml")])
        assert r.exit_code != 0 and msg in r.output, r.output


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The recipe and its two sweep members, trained for one epoch (the report is built by the tests that
    need it, without figures)."""
    tmp = tmp_path_factory.mktemp("verd")
    (tmp / "s.yaml").write_text(SUITE)
    run_suite(tmp / "s.yaml", RunRequest(results_dir=tmp / "res", overrides=Overrides(sensitivity=True), report=False))
    return tmp / "res" / "verd"


def _verdict_rows(root):
    run = load_run(root)
    return list(csv.DictReader(io.StringIO(verdicts_table(run, run.header.studies, load_baselines).csv())))


def test_every_reported_number_gets_a_verdict_from_the_recipe(swept):
    rows = {r["model"]: r for r in _verdict_rows(swept)}
    assert set(rows) == {"resnet34", "cnn", "mlp", "rnn"}
    assert rows["cnn"]["verdict"] == "not comparable" and rows["cnn"]["why"] == "not comparable: not run"
    res = json.loads((swept / "llm_vs_nn.mlp" / "result.json").read_text())
    acc, (lo, hi) = res["metrics"]["test"]["accuracy"], res["metrics"]["test"]["accuracy_ci"]
    mlp = rows["mlp"]
    assert float(mlp["ferbench %"]) == pytest.approx(100 * acc)  # the recipe, never a sweep member
    assert mlp["verdict"] == ("within" if lo <= 0.4071 <= hi else "outside")
    assert float(mlp["diff (pts)"]) == pytest.approx(100 * (acc - 0.4071), abs=1e-4)
    assert float(mlp["CI half-widths"]) == pytest.approx(abs(acc - 0.4071) / ((hi - lo) / 2), abs=1e-4)
    printed = verdicts_markdown(swept)  # what `ferbench report RUN --verdicts` prints: every paper's numbers
    assert "| llm_vs_nn     | mlp " in printed and "| (cbam)        | kernel_cnn " in printed
    others = sum(len(load_baselines(p).reported) for p in STUDY_NAMES if p != "llm_vs_nn")
    assert printed.count("no study of this paper in this run") == others > 20
    assert "(cbam)" not in {r["study"] for r in rows.values()}  # the report's own table: the run's studies only


def test_the_sensitivity_table_names_the_setting_that_reproduces_or_the_closest(swept):
    run = load_run(swept)
    st = run.header.studies[0]
    base = load_baselines("llm_vs_nn")
    md = sensitivity_table(st, run, base).markdown()
    within, gaps = [], {}
    for r in run.models("llm_vs_nn"):
        if r.config.variant is None:
            continue
        m = r.metrics["test"]
        gaps[r.config.variant.text] = abs(m.accuracy - 0.4071)
        if m.accuracy_ci[0] <= 0.4071 <= m.accuracy_ci[1]:
            within.append(r.config.variant.text)
    assert sorted(gaps) == ["batch_size=32", "lr=0.01"]
    line = next(ln for ln in md.splitlines() if ln.startswith("| mlp ") and "sweep" not in ln and "lr=0.01:" in ln)
    if within:
        assert "reproduced by" in line and all(w in line for w in within)
    else:
        closest = min(gaps, key=gaps.get)
        assert ("reproduced by the recipe" in line) or f"not reproduced; closest: {closest} (" in line
    # sweep members stay off the protocol table (it describes the recipe) and the verdicts
    proto = protocol_table(st, run, base)[0].markdown()
    assert "mlp+" not in proto and "lr=0.01" not in proto and "differs" not in proto.split("learning rate")[1][:300]
