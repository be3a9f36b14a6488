"""Issue 12, report half: the protocol table (paper beside what ran, marked same / differs (why) /
paper silent), contradiction markers, per-class and confusion numbers reported vs reproduced, and a
check that every number of ferbench/baselines/*.yaml appears in a report.

One synthetic run (each paper's study with one cheap model, 1 epoch) feeds every test here.
``missing_baseline_numbers(md)`` is the check; the real-data smoke of suites/papers.yaml can call it
(tests/test_realdata.py: ``from test_report_baselines import missing_baseline_numbers``).
"""
from __future__ import annotations

import csv
import io
import re
from importlib import resources

import pytest
import yaml
from click.testing import CliRunner

from ferbench.cli import main
from ferbench.report.baselines import (count_text, load_baselines, other_text, per_class_text, reported_text,
                                       timing_text)
from ferbench.report.format import md_escape
from ferbench.report.protocol import LABELS, SETTINGS, fmt, parse_input, same
from ferbench.schema.suite import STUDY_NAMES
from ferbench.store import load_run

# One study per paper (and cbam's CV companion, whose protocol rows live in cbam.yaml), each with a cheap
# model of that paper, except three_class, which runs the MLP instead of the paper's DCNN and a smaller
# batch on purpose: differences no deviation explains must be marked 'not explained'.
SUITE = """name: protorep
data: synthetic:1400:4
profiles:
  tiny: {description: "1 epoch, 8 images per class", max_epochs: 1, train_per_class: 8, eval_per_class: 8,
         max_folds: 1, augmented_copies: 1}
studies:
  - name: comparative
    paper: comparative
    split: {kind: holdout, val_fraction: 0.2, test: PublicTest}
    train: {epochs: 50, batch_size: 64, early_stopping: true, monitor: val_loss, patience: 5, keras_defaults: true,
            augment: {rotation: 15, shift: 0.1, flip: true}}
    experiments: [{model: basic_cnn}]
  - name: llm_vs_nn
    paper: llm_vs_nn
    split: {kind: kaggle, val_fraction: null}
    train: {epochs: 30, restore_best: false}
    experiments: [{model: mlp}]
    llm:
      endpoints: [{model: gpt-4-turbo, label: GPT-4 Turbo, api_key_env: FERBENCH_TEST_NO_KEY}]
      sample: {split: test, per_class: 5}
  - name: cbam_cv
    split: {kind: kfold, k: 3, test: both}
    train: {epochs: 20, restore_best: false, class_weights: true}
    experiments: [{model: emotion_cnn}]
  - name: cbam
    paper: cbam
    split: {kind: kaggle, val_fraction: null}
    train: {epochs: 20, restore_best: false, class_weights: true,
            augment: {flip: true, rotation: 10, crop_scale: [0.8, 1.0]}}
    experiments: [{model: emotion_cnn}]
  - name: augmented_leaky
    paper: augmented
    split: {kind: augmented, copies: 5, ratios: [0.6, 0.2, 0.2], order: augment_then_split}
    train: {epochs: 30, restore_best: false, keras_defaults: true}
    experiments: [{model: cnn3}]
  - name: three_class
    paper: three_class
    split: {kind: pooled, val_fraction: 0.1, classes: [happy, sad, neutral], test: none}
    train: {epochs: 100, batch_size: 16, early_stopping: true, monitor: val_accuracy, patience: 11, schedule: plateau,
            plateau_factor: 0.5, plateau_patience: 7, min_lr: 1.0e-7, plateau_monitor: val_loss, keras_defaults: true,
            augment: {rotation: 15, shift: 0.15, shear: 0.15, zoom: 0.15, flip: true}}
    experiments: [{model: mlp, label: dcnn_elu}]   # labelled as the paper's model: its numbers are matched
  - name: khaireddin
    paper: khaireddin
    split: {kind: official}
    train: {epochs: 300, optimizer: sgd, lr: 0.01, nesterov: true, weight_decay: 0.0001, schedule: plateau,
            plateau_factor: 0.75, plateau_patience: 5, plateau_monitor: val_accuracy, min_lr: 0.0,
            monitor: val_accuracy, augment: {flip: true, crop: 40}}
    experiments: [{model: mlp, label: vgg_khaireddin}]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("protorep")
    (tmp / "s.yaml").write_text(SUITE)
    r = CliRunner().invoke(main, ["run", str(tmp / "s.yaml"), "--profile", "tiny", "--results-dir", str(tmp / "res")])
    assert r.exit_code == 0, r.output
    root = next((tmp / "res").iterdir())
    return load_run(root), (root / "report.md").read_text()


# --- the check: every number of ferbench/baselines/*.yaml in a report ----------------------------------

def _baselines(paper: str) -> dict:
    return yaml.safe_load((resources.files("ferbench") / "baselines" / f"{paper}.yaml").read_text())


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _leaves(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _leaves(x)
    elif isinstance(v, list):
        for x in v:
            yield from _leaves(x)
    elif _is_num(v):
        yield v


def baseline_numbers(paper: str) -> list[tuple[str, str, list[str]]]:
    """(where in the file, the number as the report prints it, words that share its line) for every
    numeric leaf of ferbench/baselines/<paper>.yaml; a numeric leaf under a key this check does not
    know is returned with needle None, so a new key cannot slip past."""
    b, typed = _baselines(paper), load_baselines(paper)  # raw: every leaf, typed: what the formatters take
    out = []
    for key, val in b.items():
        if key in ("paper", "title", "file", "leaky", "notes", "contradictions"):
            continue  # text; contradictions are printed whole
        for i, e in enumerate(val) if isinstance(val, list) else []:
            where = f"{paper}.{key}[{i}]"
            t = getattr(typed, key)[i] if key in type(typed).model_fields else None
            if key == "reported":
                out.append((where, reported_text(e["value"]), [e["model"]]))
            elif key == "per_class_reported":
                out.append((where, per_class_text(t), [e["model"], e["class"], e["metric"]]))
            elif key == "confusion_reported":
                out.append((where, count_text(t), [e["model"]]))
            elif key == "timing":
                out.append((where, timing_text(e["seconds_per_epoch"]), [e["model"]]))
            elif key == "other_reported":
                if _is_num(e["value"]):
                    out.append((where, other_text(t), [e["quantity"]]))
            elif key == "protocol":
                label = LABELS[e["setting"]]
                out += [(f"{where}.value", fmt(v), [label]) for v in _leaves(e.get("value"))]
                out += [(f"{where}.class_counts.{c}", f"{c} {fmt(n)}", [label])
                        for c, n in (e.get("class_counts") or {}).items()]
            else:
                out += [(f"{where} (unknown key)", None, []) for _ in _leaves(e)]
        if key == "sample_table":  # Table 2, printed by report/llm.py: per class '{:.0f}', overall '{:.2f}'
            for m, vals in val["rows"].items():
                out += [(f"{paper}.sample_table.{m}", f"{v:.0f}", [m]) for v in vals[:-1]]
                out.append((f"{paper}.sample_table.{m}.overall", f"{vals[-1]:.2f}", [m]))
        elif not isinstance(val, list) and key not in ("paper", "title", "file", "citation", "leaky", "notes"):
            out += [(f"{paper}.{key} (unknown key)", None, []) for _ in _leaves(val)]
    return out


def missing_baseline_numbers(md: str, papers=STUDY_NAMES) -> list[str]:
    """Every number of the baselines of ``papers`` that no line of ``md`` (a report.md) shows beside
    its words (model, class, quantity or protocol setting); [] when all appear."""
    lines = md.splitlines()
    missing = []
    for paper in papers:
        for where, needle, words in baseline_numbers(paper):
            if needle is None:
                missing.append(f"{where}: a number under a key this check does not know")
                continue
            # numbers are printed as they are (report Num cells), words escaped (text cells)
            want = [md_escape(w) for w in words]
            if not any((needle in line or md_escape(needle) in line) and all(w in line for w in want)
                       for line in lines):
                missing.append(f"{where}: {needle!r} beside {words}")
    return missing


def protocol_problems(run_dir, studies: dict[str, str] | None = None) -> list[str]:
    """What is wrong with the protocol tables of a rendered run folder: for each study (name -> paper;
    default: every study of the run with a paper, plus cbam's CV companion when present), a missing
    table, a setting the paper's protocol has but the table lacks, or an empty cell. [] when none."""
    import json
    from pathlib import Path

    root = Path(run_dir)
    if studies is None:
        header = json.loads((root / "run.json").read_text())
        studies = {s["name"]: s["paper"] for s in header["studies"] if s.get("paper")}
        studies.update({s["name"]: "cbam" for s in header["studies"] if s["name"] == "cbam_cv"})
    problems = []
    for study, paper in studies.items():
        f = root / "tables" / f"{study}_protocol.csv"
        if not f.exists():
            problems.append(f"{study}: no protocol table")
            continue
        rows = list(csv.reader(io.StringIO(f.read_text())))[1:]
        want = {LABELS[r["setting"]] for r in _baselines(paper)["protocol"]
                if not r.get("studies") or study in r["studies"]}
        problems += [f"{study}: no row for {s}" for s in sorted(want - {r[0] for r in rows})]
        problems += [f"{study}: empty cell in {r}" for r in rows if len(r) != 6 or not all(c.strip() for c in r)]
    return problems


def test_protocol_tables_are_complete(run):
    data, _ = run
    assert protocol_problems(data.root) == []
    assert protocol_problems(data.root, {"comparative": "llm_vs_nn"}) == ["comparative: no row for LLM query",
                                                                               "comparative: no row for LLM sample"]


def test_every_baseline_number_appears_in_the_report(run):
    _, md = run
    assert missing_baseline_numbers(md) == []


def test_the_check_can_fail():
    md = "| basic_cnn | accuracy | 44.00 |"
    missing = missing_baseline_numbers(md, ["comparative"])
    assert missing and not any(m.startswith("comparative.reported[0]") for m in missing)
    assert any("resnet50_transfer" in m for m in missing)


# --- the protocol table --------------------------------------------------------------------------------

def _table(md: str, title: str, study_heading: str) -> list[list[str]]:
    """The rows (cells, stripped) of the first table titled ``title`` after the heading ``study_heading``."""
    start = md.index(study_heading)
    i = md.index(f"### {title}", start)
    rows = []
    for line in md[i:].splitlines()[2:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows[2:]  # header and alignment rows


def _protocol(md: str, study: str) -> dict[str, list[list[str]]]:
    by: dict[str, list[list[str]]] = {}
    for row in _table(md, "Protocol: the paper's settings beside this run's", f"## {study}\n"):
        by.setdefault(row[0], []).append(row)
    return by


@pytest.mark.parametrize("study,paper", [("comparative", "comparative"), ("llm_vs_nn", "llm_vs_nn"),
                                         ("cbam", "cbam"), ("cbam_cv", "cbam"), ("augmented_leaky", "augmented"),
                                         ("three_class", "three_class")])
def test_protocol_table_has_every_setting_and_no_empty_cell(run, study, paper):
    _, md = run
    table = _protocol(md, study)
    settings = {r["setting"] for r in _baselines(paper)["protocol"]
                if not r.get("studies") or study in r["studies"]}
    assert {LABELS[s] for s in settings} == set(table) and len(settings) >= 18
    for rows in table.values():
        for row in rows:
            assert len(row) == 6 and all(row), row


def test_protocol_marks_same_differs_and_silent(run):
    _, md = run
    t = {k: v[0] for k, v in _protocol(md, "three_class").items()}
    # same: the suite follows the paper
    assert t["optimizer"][3:] == ["adam", "adam", "same"]
    assert t["early stopping"][4] == "early_stopping=true, monitor=val_accuracy, patience=11"
    assert t["early stopping"][5] == "same"
    assert t["LR schedule"][5] == "same"
    assert t["augmentation"][5] == "same"
    assert t["framework defaults"][3:] == ["keras (keras_defaults on)", "keras (keras_defaults on)", "same"]
    # differs, explained by the profile's recorded deviation
    assert t["epochs"][3:5] == ["100", "1"] and t["epochs"][5] == "differs (1 epoch instead of 100 (profile))"
    assert t["val size"][5] == "differs (val/test capped at 8 images per class)"
    assert t["val size"][3] == "2,127 (happy 899, sad 608, neutral 620)"
    assert t["val size"][4] == "24 (happy 8, sad 8, neutral 8)"
    # differs, and nothing the run recorded explains it
    assert t["batch size"][3:] == ["32", "16", "differs (not explained)"]
    # the paper is silent: ferbench's assumption, and how this run departs from it
    assert t["train size"][2].startswith("(silent) — “The dataset is split 90:10")
    assert t["train size"][5].startswith("paper silent — ferbench assumes 21,264 - 2,127 = 19,137")
    assert t["train size"][5].endswith("this run differs (train capped at 8 images per class)")
    # a test set the paper does not have, and the run has none either
    assert t["test size"][3:] == ["none", "none", "same"]
    assert t["architecture"][3] == "dcnn_elu" and t["architecture"][4].startswith("mlp: flatten")
    assert t["architecture"][5].startswith("differs (not explained); ferbench assumes 'same' padding")
    # architecture: the registry's notes on the model (assumed widths and the like) beside the paper's words
    arch = _protocol(md, "comparative")["architecture"][0]
    assert arch[1] == "basic_cnn" and arch[2].startswith("conv 32 (3x3) + max pool, conv 64 (3x3) + max pool")
    assert arch[4].startswith("basic_cnn: conv32-3x3 \\> pool")
    assert arch[5] == ("same; where the paper is vague, ferbench assumes ReLU after each convolution and 2x2 max "
                       "pooling (the text gives activations for the dense layers only and no pool size)")


def test_protocol_states_a_known_deviation_and_groups_models(run):
    _, md = run
    t = _protocol(md, "augmented_leaky")
    train = t["train size"][0]
    assert train[5] == ("differs (train capped at 8 images per class; 1 augmented copies instead of 5; known "
                        "deviation: 60% of 5 x the images ferbench's MTCNN keeps (without face detection, "
                        "5 x 35,887: 107,661))")
    # rows for the paper's other models are shown as not run, with the paper's words
    arch = {r[1]: r for r in t["architecture"]}
    assert arch["cnn3"][5].startswith("same")
    assert arch["vit_tiny"][4:] == ["not in this run", "not in this run"]
    # this suite does not ask for MTCNN: the row says the run differs from the paper's face_detect
    assert "face_detect=none" in t["data release"][0][4] and "face_detect=mtcnn" in t["data release"][0][3]
    assert t["data release"][0][5].startswith("differs (1 augmented copies instead of 5; known deviation: the paper's "
                                              "MTCNN implementation and thresholds are not stated")


def test_protocol_compares_the_llm_sample(run):
    _, md = run
    t = _protocol(md, "llm_vs_nn")
    assert t["LLM sample"][0][1] == "GPT-4 Turbo"
    assert t["LLM sample"][0][3:] == ["split=test, per_class=5", "split=test, per_class=5", "same"]
    silent = ("paper silent — ferbench assumes no validation set is described: fixed 30 epochs, the final model is "
              "reported (6.3's 'validation data' is Table 1's test number)")
    assert t["val size"][0][3:] == ["none", "none", silent]


def test_cv_companion_gets_its_rows(run):
    _, md = run
    t = _protocol(md, "cbam_cv")
    assert t["data release"][0][3:5] == ["kind=kfold, k=3, test=both", "kind=kfold, k=3, test=both"]
    silent = ("paper silent — ferbench assumes the model after the last (20th) epoch, as for the CBAM model; "
              "this run differs (1 epoch instead of 20 (profile))")
    assert t["epoch reported"][0][3:] == ["the model after epoch 20", "the model after epoch 1", silent]


# --- numbers beside the paper's ------------------------------------------------------------------------

def test_contradictions_are_listed_and_marked(run):
    _, md = run
    section = md[md.index("## llm_vs_nn\n"):md.index("## cbam_cv\n")]
    assert "**Where the paper contradicts itself.**" in section
    assert "- ⚠ test_size: '3 Dataset' says FER-2013" in section
    rows = _table(md, "Reproduced vs reported", "## llm_vs_nn\n")
    by = {r[0]: r for r in rows}
    assert by["mlp"][-1] == "⚠ mlp_val_test" and by["cnn"][-1] == "⚠ test_size"
    assert by["cnn"][2] == "55.49" and by["cnn"][9] == "not run"  # not in this run; the paper's number still shows
    conf = _table(md, "Confusion-matrix counts: reported vs reproduced", "## llm_vs_nn\n")
    assert ["cnn", "happy", "happy", "1,298"] == conf[0][:4] and conf[0][-1] == "⚠ test_size"


def test_per_class_reported_vs_reproduced(run):
    data, md = run
    r = data.models("three_class")[0]
    val = r.metrics["val"]
    rows = _table(md, "Per-class numbers: reported vs reproduced", "## three_class\n")
    by = {(row[1], row[2]): row for row in rows}
    assert len(rows) == 12
    sad = by[("sad", "precision (%)")]
    assert sad[3] == "82.0" and sad[4] == f"{100 * val.per_class.precision[1]:.2f}"
    assert sad[5] == f"{100 * val.per_class.precision[1] - 100 * 0.82:+.2f}" and sad[9] == f"val, {val.n} images"
    assert by[("happy", "support (images)")][3:5] == ["899", str(val.per_class.support[0])]
    # a bound is checked, not differenced (cbam: 'the only two' classes reaching 70%)
    rows = _table(md, "Per-class numbers: reported vs reproduced", "## cbam\n")
    fear = next(row for row in rows if row[1] == "fear")
    assert fear[0] == "cbam_cnn" and fear[3] == "< 70.0" and fear[4] == "not run" and fear[6] == "–"


def test_confusion_counts_are_the_results(run):
    data, md = run
    r = data.models("three_class")[0]
    cm = r.metrics["val"].confusion
    rows = _table(md, "Confusion-matrix counts: reported vs reproduced", "## three_class\n")
    assert rows[0][:5] == ["dcnn_elu", "sad", "neutral", "167", str(cm[1][2])]
    assert rows[0][5] == str(sum(cm[1]))
    assert rows[1][:5] == ["dcnn_elu", "neutral", "sad", "75", str(cm[2][1])]


def test_other_numbers_compare_where_a_path_exists(run):
    data, md = run
    rows = {r[0]: r for r in _table(md, "Every other number the paper reports", "## three_class\n")}
    errors = data.models("three_class")[0].metrics["val"].errors_total
    assert rows["wrong validation predictions"][2:5] == ["380", str(errors), "same" if errors == 380 else "differs"]
    assert rows["disgust images in FER2013"][3] == str(sum(c["disgust"] for c in data.header.data.counts.values()))
    aug = {r[0]: r for r in _table(md, "Every other number the paper reports", "## augmented_leaky\n")}
    assert aug["images in the augmented dataset (5 per original)"][3] == "not comparable"


def test_tables_export_numeric_csv(run):
    data, _ = run
    text = (data.root / "tables" / "three_class_per_class_numbers.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert float(rows[0]["reported"]) == 91.0 and float(rows[0]["reproduced"]) >= 0
    proto = list(csv.reader(io.StringIO((data.root / "tables" / "three_class_protocol.csv").read_text())))
    assert proto[0] == ["setting", "models", "paper (quoted, section)", "in ferbench terms", "this run", "status"]


# --- helpers -------------------------------------------------------------------------------------------

def test_parse_input_reads_what_the_adapter_writes():
    from ferbench.models.adapter import IMAGENET_MEAN, IMAGENET_STD, InputSpec
    from ferbench.report import protocol

    assert (protocol.IMAGENET_MEAN, protocol.IMAGENET_STD) == (IMAGENET_MEAN, IMAGENET_STD)
    for spec in (InputSpec(48, 1), InputSpec(224, 3, IMAGENET_MEAN, IMAGENET_STD), InputSpec(32, 3, (0.5,), (0.5,)),
                 InputSpec(64, 3, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))):
        size, ch, mean, std = parse_input(spec.describe())
        assert (size, ch) == (spec.size, spec.channels) and same(list(spec.mean), mean) and same(list(spec.std), std)
    assert parse_input("something else") is None


def test_same_and_fmt():
    assert same({"mean": [0.5], "std": [0.5]}, {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]})
    assert not same({"early_stopping": False}, {"early_stopping": 0})
    assert same(1.0e-7, 1e-07) and not same(0.001, 0.0001) and same({"kind": "kaggle"}, {"kind": "kaggle", "k": 3})
    assert fmt({"online": {}, "offline": {"copies": 5, "flip": True}}) == "online: none; offline: copies=5, flip=true"
    assert fmt(19137) == "19,137" and fmt(1.0e-7) == "1e-07" and fmt(None) == "none"
    assert set(SETTINGS) >= set(LABELS)


@pytest.mark.parametrize("paper", sorted(p.stem for p in (resources.files("ferbench") / "baselines").iterdir()
                                         if p.name.endswith(".yaml")))
def test_every_baselines_file_fits_its_schema(paper):
    from ferbench.report.baselines import load_baselines
    from ferbench.schema.baselines import Baselines

    base = load_baselines(paper)  # the report reads the typed model, never the raw dict
    assert isinstance(base, Baselines) and base.paper == paper


def test_a_misspelt_baselines_key_fails_naming_file_and_key(monkeypatch):
    from ferbench.errors import FerbenchError
    from ferbench.report import baselines as rb
    from ferbench.schema.baselines import Baselines

    raw = _baselines("cbam")
    raw["reported"][0]["vlaue"] = raw["reported"][0].pop("value")
    with pytest.raises(Exception, match=r"reported\.0\.vlaue"):
        Baselines.model_validate(raw)
    monkeypatch.setattr(rb.yaml, "safe_load", lambda text: raw)  # the file as if it said "vlaue"
    with pytest.raises(FerbenchError, match=r"baselines/cbam\.yaml does not fit its format: reported\.0\.value"):
        rb.load_baselines("cbam")
