"""Protocol rows added for the silent deviations: k-fold sizes per fold and the LLM query settings."""
from types import SimpleNamespace

import yaml
from importlib import resources

from ferbench.report.protocol import ferbench_side, paper_terms
from ferbench.schema.baselines import ProtocolRow
from ferbench.schema.llm import EndpointConfig


def _row(setting: str) -> ProtocolRow:
    paper = "cbam" if "size" in setting else "llm_vs_nn"
    raw = yaml.safe_load((resources.files("ferbench") / "baselines" / f"{paper}.yaml").read_text())
    return ProtocolRow.model_validate(next(r for r in raw["protocol"] if r["setting"] == setting
                                           and (r.get("studies") or ["cbam_cv"]) == ["cbam_cv"]))


def _fold(n: int, fold: int):
    return SimpleNamespace(split=SimpleNamespace(sizes={"train": n, "val": 28709 - n}, classes=[], notes=[]),
                           metrics={}, fold=fold)


def test_each_cv_fold_is_compared_with_its_own_stratified_size():
    row = _row("train_size")
    assert row.per_fold == [19139, 19139, 19140]  # sklearn StratifiedKFold(3) on FER2013's 28,709 Training images
    assert paper_terms("train_size", row) == "19,139 / 19,139 / 19,140 (folds 1-3)"
    assert ferbench_side("train_size", row.value, row, _fold(19140, 2)).same is True
    assert ferbench_side("train_size", row.value, row, _fold(19140, 0)).same is False
    assert ferbench_side("train_size", row.value, row, _fold(19139, 0)).same is True
    val = _row("val_size")
    assert ferbench_side("val_size", val.value, val, _fold(19140, 2)).same is True


def test_the_llm_query_settings_are_compared_with_what_the_endpoint_sent():
    row = _row("llm_query")
    assert row.paper is None and "never" in row.assumption and "mentions a temperature" in row.assumption
    ep = EndpointConfig(model="gpt-4-turbo", temperature=0, max_tokens=16, detail="low")
    r = SimpleNamespace(config=SimpleNamespace(llm_endpoint=ep, llm=SimpleNamespace(prompt="paper", image_size=48)))
    assert ferbench_side("llm_query", row.value, row, r).same is True
    r.config.llm_endpoint = EndpointConfig(model="gpt-4-turbo", temperature=None, max_tokens=16, detail="low")
    ran = ferbench_side("llm_query", row.value, row, r)
    assert ran.same is False and "temperature=none" in ran.text
