"""suites/khaireddin.yaml and suites/strong.yaml: they validate and expand into the recipes they promise."""
from __future__ import annotations

from pathlib import Path

from ferbench.report.baselines import load_baselines
from ferbench.suite import Overrides, expand, load_suite

SUITES = Path(__file__).resolve().parents[1] / "suites"


def _train(suite: str, profile: str):
    exps = expand(load_suite(SUITES / suite), profile, overrides=Overrides())
    return [e for e in exps if e.kind == "train"], [e for e in exps if e.kind == "llm"]


def test_khaireddin_paper_profile_is_their_recipe():
    (exp,), _ = _train("khaireddin.yaml", "paper")
    t = exp.train
    assert exp.model == "vgg_khaireddin" and exp.split.kind == "official"
    assert (t.epochs, t.batch_size, t.optimizer, t.lr, t.momentum, t.nesterov, t.weight_decay) == \
        (300, 64, "sgd", 0.01, 0.9, True, 0.0001)
    assert (t.schedule, t.plateau_factor, t.plateau_patience, t.plateau_monitor) == ("plateau", 0.75, 5, "val_accuracy")
    assert (t.tta, t.tta_crop, t.tta_mean) == ("tencrop", 40, "logits")
    a = t.augment
    assert (a.crop_scale, a.shift, a.flip, a.rotation, a.crop, a.erase) == ((0.8, 1.2), 0.2, True, 10, 40, 0.5)
    assert not exp.deviations


def test_khaireddin_quick_profile_is_small_and_says_so():
    (exp,), _ = _train("khaireddin.yaml", "quick")
    assert exp.train.epochs == 2 and any("epoch" in d for d in exp.deviations)


def test_khaireddin_baselines_cite_the_headline_and_every_setting():
    b = load_baselines("khaireddin")
    assert [(r.model, r.value) for r in b.reported] == [("vgg_khaireddin", 0.7328)]
    settings = {r.setting for r in b.protocol}
    assert {"data_release", "reported_epoch", "augmentation", "schedule", "optimizer"} <= settings
    swap = next(r for r in b.protocol if r.setting == "data_release")
    assert "PrivateTest" in swap.paper and "swaps" in swap.deviation


def test_strong_suite_profiles_and_llm_block():
    (cpu,), llms = _train("strong.yaml", "cpu")
    assert cpu.model == "strong_vgg" and cpu.train.tta == "flip" and cpu.train.nesterov
    assert cpu.train.schedule == "cosine" and cpu.train.label_smoothing == 0.1 and cpu.split.kind == "official"
    assert cpu.train.epochs == 25 and cpu.train.monitor_per_class == 250
    assert len(llms) == 1 and llms[0].llm.sample.per_class == 50
    (gpu,), _ = _train("strong.yaml", "gpu")
    assert (gpu.train.epochs, gpu.train.batch_size, gpu.train.lr) == (120, 128, 0.1)
