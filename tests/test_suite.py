import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from ferbench.cli import main
from ferbench.errors import SuiteError
from ferbench.suite import expand, load_suite
from ferbench.suite.expansion import Overrides

SUITES = sorted((Path(__file__).resolve().parents[1] / "suites").glob("*.yaml"))


@pytest.mark.parametrize("path", SUITES, ids=[p.name for p in SUITES])
def test_shipped_suites_validate(path):
    r = CliRunner().invoke(main, ["validate", str(path)])
    assert r.exit_code == 0, r.output
    assert ": ok" in r.output


def test_papers_suite_covers_all_five_studies():
    s = load_suite(SUITES[0].parent / "papers.yaml")
    papers = {st.paper for st in s.studies if st.paper}
    assert papers == {"comparative", "llm_vs_nn", "cbam", "augmented", "three_class"}
    ids = [e.id for e in expand(s, "paper")]
    for must in ("comparative.resnet50_transfer", "llm_vs_nn.llm.GPT-4 Turbo", "cbam_cv.cbam_cnn.fold2",
                 "augmented_leaky.vit_tiny", "augmented.vit_tiny", "three_class.dcnn_elu"):
        assert must in ids
    e = next(e for e in expand(s, "paper") if e.id == "three_class.dcnn_elu")
    assert (e.train.batch_size, e.train.patience, e.train.monitor, e.train.schedule) == (32, 11, "val_accuracy",
                                                                                          "plateau")


def _write(tmp_path, text):
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(text))
    return p


BROKEN = {
    "unknown model": ("""\
        name: x
        studies:
          - name: a
            experiments:
              - model: resnet5O
        """, r"line 5: studies\[0\]\.experiments\[0\]\.model: unknown model 'resnet5O'\. Did you mean"),
    "unknown key": ("""\
        name: x
        studies:
          - name: a
            experimnts: []
            experiments: [{model: mlp}]
        """, r"line 4: studies\[0\]\.experimnts: unknown key 'experimnts'"),
    "wrong type": ("""\
        name: x
        studies:
          - name: a
            split: {kind: official, val_fraction: lots}
            experiments: [{model: mlp}]
        """, r"line 4: studies\[0\]\.split\.val_fraction: Input should be a valid number"),
    "epochs <= 0": ("""\
        name: x
        defaults:
          epochs: 0
        studies:
          - name: a
            experiments: [{model: mlp}]
        """, r"line 3: defaults\.epochs: Input should be greater than 0"),
    "impossible split": ("""\
        name: x
        studies:
          - name: a
            split: {kind: kfold, k: 3, folds: [0, 5]}
            experiments: [{model: mlp}]
        """, r"line 4: studies\[0\]\.split: folds \[0, 5\] do not exist for k=3"),
    "unknown class": ("""\
        name: x
        studies:
          - name: a
            split: {kind: holdout, classes: [happy, bored]}
            experiments: [{model: mlp}]
        """, r"unknown class\(es\) \['bored'\]"),
    "key in train": ("""\
        name: x
        studies:
          - name: a
            experiments:
              - model: mlp
                train: {lr: -1}
        """, r"line 6: studies\[0\]\.experiments\[0\]\.train\.lr: Input should be greater than 0"),
    "api key in suite": ("""\
        name: x
        studies:
          - name: a
            experiments: [{model: mlp}]
            llm: {endpoints: [{model: m, api_key_env: sk-fake}]}
        """, r"api_key_env takes the NAME of an environment variable"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_suites_give_one_clear_message_each(tmp_path, case):
    text, pattern = BROKEN[case]
    p = _write(tmp_path, text)
    with pytest.raises(SuiteError) as err:
        load_suite(p)
    assert len(err.value.problems) == 1, err.value.problems
    import re

    assert re.search(pattern, err.value.problems[0]), err.value.problems[0]
    r = CliRunner().invoke(main, ["validate", str(p)])
    assert r.exit_code == 1 and "Traceback" not in r.output and "1 problem(s)" in r.output


def test_all_problems_reported_together(tmp_path):
    p = _write(tmp_path, """\
        name: x
        defaults: {epochs: -2}
        studies:
          - name: a
            bogus: 1
            experiments: [{model: nope}]
        """)
    with pytest.raises(SuiteError) as err:
        load_suite(p)
    assert len(err.value.problems) == 3


def test_matrix_expansion_and_profiles(tmp_path):
    p = _write(tmp_path, """\
        name: x
        seeds: [0, 1]
        defaults: {epochs: 40}
        studies:
          - name: a
            split: {kind: kfold, k: 3}
            experiments: [{model: [mlp, cnn]}, {model: resnet50_transfer}]
        """)
    s = load_suite(p)
    paper = expand(s, "paper")
    assert len(paper) == 3 * 2 * 3
    assert "a.mlp.fold1.seed1" in [e.id for e in paper]
    assert all(not e.deviations for e in paper)
    quick = expand(s, "quick")
    assert len(quick) == 3 * 2 * 1
    r50 = next(e for e in quick if e.model == "resnet50_transfer")
    assert r50.train.input_size == 64 and r50.train.epochs == 4 and r50.train.bn_momentum == 0.1
    assert "input 64 px instead of 224 px" in r50.deviations and "4 epochs instead of 40 (profile)" in r50.deviations
    # From scratch nothing expects ImageNet's scale: the quick profile feeds FER2013's own 48 px.
    scratch = next(e for e in expand(s, "quick", overrides=Overrides(pretrained=False))
                   if e.model == "resnet50_transfer")
    assert scratch.train.input_size == 48 and scratch.pretrained is False
    assert any(d.startswith("input 48 px instead of 224 px (trained from scratch") for d in scratch.deviations)
    smoke = next(e for e in expand(s, "smoke") if e.model == "resnet50_transfer")
    assert smoke.pretrained is False and any("ImageNet weights not used" in d for d in smoke.deviations)
    mlp = next(e for e in expand(s, "smoke") if e.model == "mlp")
    assert mlp.train.input_size is None  # 48-px networks keep their input size
    assert expand(s, "paper", only="a.cnn.*")[0].id.startswith("a.cnn")
    with pytest.raises(SuiteError, match="unknown profile 'fast'. Available: paper, quick, smoke"):
        expand(s, "fast")


def test_quick_profile_validates_each_epoch_on_a_subset_unless_validation_is_reported():
    s = load_suite(SUITES[0].parent / "papers.yaml")
    quick = {e.id: e for e in expand(s, "quick") if e.kind == "train"}
    cv = quick["cbam_cv.cbam_cnn.fold0"]
    assert cv.train.monitor_per_class == 300 and any("per-epoch validation" in d for d in cv.deviations)
    # three_class reports its validation set (no test set): the epoch it picks stays the paper's.
    assert quick["three_class.dcnn_elu"].train.monitor_per_class is None
    assert quick["three_class_heldout.dcnn_elu"].train.monitor_per_class == 300
    assert quick["llm_vs_nn.cnn"].train.monitor_per_class is None  # no validation set at all
    assert all(e.train.monitor_per_class is None for e in expand(s, "paper") if e.kind == "train")


def test_config_hash_is_stable_and_sensitive(tmp_path):
    p = _write(tmp_path, "name: x\nstudies: [{name: a, experiments: [{model: mlp}]}]\n")
    h1 = expand(load_suite(p), "paper")[0].config_hash()
    assert h1 == expand(load_suite(p), "paper")[0].config_hash()
    p.write_text("name: x\ndefaults: {lr: 0.01}\nstudies: [{name: a, experiments: [{model: mlp}]}]\n")
    assert expand(load_suite(p), "paper")[0].config_hash() != h1
