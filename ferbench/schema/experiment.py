"""Experiments: the units of work a suite expands into, as a tagged union on ``kind``.

``train`` trains a registered model, ``load`` evaluates a model file, ``llm`` asks one LLM endpoint
about a study's sample. Each carries everything that determines its result, so
:meth:`config_hash` decides whether a stored result can be reused.
"""
from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .clip import CLIPModelConfig
from .llm import EndpointConfig, LLMConfig
from .suite import ResourcesConfig, SplitConfig, UserModelConfig
from .study_input import DEFAULT_INPUT, StudyInput
from .train import TrainConfig

MODEL_KINDS = ("train", "load", "clip")  # a model scored on the study's test set: everything but an LLM


# Settings added after results were stored: at their default they leave the hash as it was, so
# adding an option does not make every stored result run again.
# (section path, setting, default).
_HASHED_ONLY_WHEN_SET = (("train", "deterministic", False), ("split", "face_detect", "none"),
                         ("train", "soft_labels", False), ("train", "tta", "none"), ("train", "tta_crop", 40),
                         ("train", "tta_mean", "probabilities"), ("train", "nesterov", False),
                         ("train.augment", "crop", None), ("train.augment", "erase", 0.0),
                         ("split", "manifest", None), ("split", "manifest_sha256", None),
                         ("llm", "color", None), ("llm", "repeats", 1), ("llm", "sensitivity", None),
                         ("llm", "strategy", "label"), ("llm", "top_k", 5), ("llm", "structured_via", "json_schema"),
                         ("llm", "images_per_request", 1), ("llm_endpoint", "images_per_request", None),
                         ("llm.endpoints.*", "images_per_request", None))


def _sections(d, path: str) -> list:
    """The dicts at ``path`` ('*' steps into every item of a list)."""
    found = [d]
    for key in path.split("."):
        nxt = []
        for sec in found:
            if key == "*" and isinstance(sec, list):
                nxt += sec
            elif isinstance(sec, dict) and key != "*":
                nxt.append(sec.get(key))
        found = nxt
    return [s for s in found if isinstance(s, dict)]


def _drop_defaults(d: dict) -> None:
    for path, name, default in _HASHED_ONLY_WHEN_SET:
        for section in _sections(d, path):
            if name in section and section[name] == default:
                del section[name]


class _ExperimentBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str  # also the experiment's folder name: built from validated, folder-safe parts
    study: str
    label: str
    split: SplitConfig
    fold: int | None = None
    seed: int = 0
    input: StudyInput = DEFAULT_INPUT  # the study's image size and colour (models are built for it)
    deviations: list[str] = Field(default_factory=list)  # from the paper's protocol, in this run

    def config_hash(self) -> str:
        """Hash of everything that determines the result (not the id, the deviation text or the
        Ray resources it was scheduled with)."""
        d = self.model_dump(mode="json", exclude={"deviations", "resources", "variant"})
        _drop_defaults(d)
        if d["input"] == DEFAULT_INPUT.model_dump(mode="json"):  # results stored before the declaration
            del d["input"]
        if d["split"].get("cross"):  # keyed by the further test sets' content, not their paths (result_key)
            del d["split"]["cross"]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


class Variant(BaseModel):
    """A sensitivity-sweep experiment: the study's recipe for ``of`` with one setting changed."""
    model_config = ConfigDict(extra="forbid")
    of: str  # the label of the recipe's experiment
    setting: str  # a TrainConfig field or augment.<field>
    value: Any

    @property
    def text(self) -> str:
        v = "/".join(map(str, self.value)) if isinstance(self.value, (list, tuple)) else self.value
        return f"{self.setting}={str(v).lower() if isinstance(v, bool) or v is None else v}"


class TrainExperiment(_ExperimentBase):
    kind: Literal["train"] = "train"
    model: str
    pretrained: bool | None = None
    weights: str | None = None
    model_args: dict[str, Any] = Field(default_factory=dict)
    train: TrainConfig
    resources: ResourcesConfig | None = None  # Ray executor scheduling (not hashed)
    variant: Variant | None = None  # a sensitivity sweep's member (not hashed: its train config says it all)


class LoadExperiment(_ExperimentBase):
    kind: Literal["load"] = "load"
    model: str | None = None  # the registered architecture of a state dict; None for model files
    user_model: UserModelConfig
    user_model_fingerprint: str  # size + mtime of the file: a new file is re-evaluated
    train: TrainConfig  # evaluation batch size and memory format
    resources: ResourcesConfig | None = None  # Ray executor scheduling (not hashed)


class CLIPExperiment(_ExperimentBase):
    kind: Literal["clip"] = "clip"
    clip: CLIPModelConfig
    clip_fingerprint: str  # size + mtime of the weights: new weights are re-evaluated
    resources: ResourcesConfig | None = None  # Ray executor scheduling (not hashed)


class LLMExperiment(_ExperimentBase):
    kind: Literal["llm"] = "llm"
    llm_endpoint: EndpointConfig
    llm: LLMConfig  # sample, prompt, image size, request settings (endpoints: just this one)
    variant: Variant | None = None  # an LLM sweep's member (not hashed: its llm config says it all)

    def sweep_value(self, setting: str):
        """This experiment's value of an LLM sweep setting (schema/llm_sweep.py), as a sweep names it."""
        if setting == "color":
            return self.llm.color or ("gray" if self.input.channels == 1 else "rgb")
        if setting in ("detail", "temperature"):
            return getattr(self.llm_endpoint, setting)
        if setting == "repeats":
            n, t = self.llm.repeats, self.llm_endpoint.temperature
            return f"{n} answer{'s' if n > 1 else ''} at temperature {t:g}" if t is not None else f"{n} answers"
        return getattr(self.llm, setting)


Experiment = Annotated[Union[TrainExperiment, LoadExperiment, CLIPExperiment, LLMExperiment], Field(discriminator="kind")]
EXPERIMENT = TypeAdapter(Experiment)
