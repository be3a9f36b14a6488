"""The suite file format: what a suite YAML may say, validated, with bounds.

Model names are checked against the model registry passed as validation context
(``{"models": [...]}``) by :func:`ferbench.suite.load_suite`; without a context (objects built in
code) they are not re-checked. Nothing here imports torch.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..errors import unknown_name
from ..vocabulary import VOCABULARY, vocab_class
from ..limits import MAX_EPOCHS, MAX_PER_CLASS, Seed
from .clip import CLIPModelConfig
from .llm import LLMConfig
from .study_input import StudyInput
from .base import Strict as _Strict

STUDY_NAMES = ("comparative", "llm_vs_nn", "cbam", "augmented", "three_class", "khaireddin")
USAGE_NAMES = ("Training", "PublicTest", "PrivateTest")

# Labels become folder names under the results folder: letters, digits, space, _ . + - only,
# never a leading dot or space and never "..", so no label can name a path outside the run folder.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_+\-][A-Za-z0-9 _.+\-]{0,79}$")
SAFE_NAME_RULE = ("1-80 characters: letters, digits, space, '_', '.', '+', '-'; no leading '.' or space "
                  "and no '..' (it names a folder under the results folder)")

# Bounds that keep a hostile or mistyped suite from exhausting memory or time before it runs.
MAX_FOLDS = 20
MAX_COPIES = 20
MAX_SEEDS = 100
MAX_EXPERIMENTS_PER_STUDY = 200
MAX_STUDIES = 100
MAX_MODELS_PER_ENTRY = 50  # `model: [a, b, ...]`
MAX_EXPERIMENTS = 5_000  # one suite file, after models x seeds x folds


def check_safe_name(value: str, what: str) -> str:
    if not SAFE_NAME.match(value) or ".." in value:
        raise ValueError(f"{what} {value!r} is not allowed: {SAFE_NAME_RULE}")
    return value


def safe_id_part(text: str) -> str:
    """A folder-safe rendering of free text (e.g. an LLM model name 'org/model:tag')."""
    out = re.sub(r"[^A-Za-z0-9 _.+\-]", "_", text).strip(" .") or "_"
    return re.sub(r"\.{2,}", "_", out)[:80]


def _check_model_name(name: str, info: ValidationInfo) -> None:
    known = (info.context or {}).get("models")
    if known is not None and name.startswith("timm:"):
        from ..models.catalog import info as model_info  # checks the name against timm's list

        try:
            model_info(name)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
    elif known is not None and name not in known:
        raise ValueError(unknown_name("model", name, sorted(known)))


def _split_kinds() -> list:
    from ..data.splits import list_split_kinds, split_kind

    return [split_kind(n) for n in list_split_kinds()]


class SplitConfig(_Strict):
    """How a study partitions FER2013 (see :func:`ferbench.data.splits.make_split`)."""
    kind: str = "official"  # a registered split kind (ferbench.data.splits.list_split_kinds)
    seed: Seed = 0  # the partition's seed; training seeds vary separately
    classes: list[str] | None = None
    # holdout / kfold: which images test (a challenge half, or both = the Kaggle test/ folder);
    # pooled: 'none' (the study reports its validation set) or 'PrivateTest'/'PublicTest'/'both' kept apart
    test: Literal["PrivateTest", "PublicTest", "both", "none"] = "PrivateTest"
    val_fraction: float | None = Field(0.1, gt=0, lt=1)  # kaggle: None = no validation set
    k: int = Field(3, ge=2, le=MAX_FOLDS)
    folds: list[int] | None = Field(None, max_length=MAX_FOLDS)  # kfold: which folds to run (0-based); default all k
    copies: int = Field(5, ge=1, le=MAX_COPIES)
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
    order: Literal["split_then_augment", "augment_then_split"] = "split_then_augment"
    train_per_class: int | None = Field(None, gt=0, le=MAX_PER_CLASS)
    train_fraction: float | None = Field(None, gt=0, le=1)
    eval_per_class: int | None = Field(None, gt=0, le=MAX_PER_CLASS)
    # Further datasets (paths or named specs such as rafdb:PATH, relative to the suite) whose test partition
    # every model of the study is also scored on, on the classes the model and the dataset share.
    cross: list[str] = Field(default_factory=list, max_length=8)
    # Re-detect faces before splitting (ferbench.data.faces): images without a face are dropped, the rest
    # cropped to it. 'mtcnn' needs facenet-pytorch; a run that asks for it without it fails before training.
    face_detect: Literal["none", "mtcnn"] = "none"
    # kind manifest: a benchmark's test list (QA manifest .json/.jsonl/.csv or ids .txt), relative to the suite
    manifest: str | None = Field(None, max_length=4096)
    manifest_sha256: str | None = None  # set when the suite is expanded: the manifest's content

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v):
        from ..data.splits import list_split_kinds  # the table; torch-free, read on first validation

        if v not in list_split_kinds():
            raise ValueError(unknown_name("split kind", v, list_split_kinds()))
        return v

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, v):
        if v is not None:
            bad = [c for c in v if vocab_class(c) is None]
            if bad:
                raise ValueError(f"unknown class(es) {bad}; expected names from {', '.join(VOCABULARY)}")
            if len(v) < 2:
                raise ValueError("a class subset needs at least 2 classes")
        return v

    @model_validator(mode="after")
    def _possible(self):
        if self.folds is not None and any(not 0 <= f < self.k for f in self.folds):
            raise ValueError(f"folds {self.folds} do not exist for k={self.k} (valid: 0..{self.k - 1})")
        if self.folds is not None and len(set(self.folds)) != len(self.folds):
            raise ValueError(f"folds {self.folds} repeat a fold")
        if abs(sum(self.ratios) - 1) > 1e-6 or min(self.ratios) <= 0:
            raise ValueError(f"ratios must be three positive numbers summing to 1; got {list(self.ratios)}")
        from ..data.splits import split_kind

        kinds = _split_kinds()
        kind = split_kind(self.kind)
        if self.val_fraction is None and not kind.no_val:
            raise ValueError(f"val_fraction: null (no validation set) is only possible with kind: "
                             f"{', '.join(k.name for k in kinds if k.no_val)}, not {self.kind}")
        if self.test == "none" and not kind.no_test:
            raise ValueError(f"test: none (no test set) is only possible with kind: "
                             f"{', '.join(k.name for k in kinds if k.no_test)}, not {self.kind}")
        if (self.kind == "manifest") != (self.manifest is not None):
            raise ValueError("kind: manifest needs 'manifest: FILE', and 'manifest' goes with kind: manifest only")
        if self.test != "PrivateTest" and kind.fixes_test:
            raise ValueError(f"kind: {self.kind} fixes its own test set; 'test' applies to "
                             f"{', '.join(k.name for k in kinds if not k.fixes_test)}")
        return self

    @property
    def has_val(self) -> bool:
        return self.val_fraction is not None

    def fold_list(self) -> list[int | None]:
        return list(self.folds if self.folds is not None else range(self.k)) if self.kind == "kfold" else [None]


class InputConfig(_Strict):
    """How a user's model expects its input: NCHW float tensors of ``size`` x ``size`` with ``channels``
    channels, normalized as ``(pixel / 255 - mean) / std`` (mean and std apply to pixels in [0, 1])."""
    size: int = Field(48, ge=8, le=1024)
    channels: Literal[1, 3] = 1
    mean: list[float] = Field(default_factory=lambda: [0.0])
    std: list[float] = Field(default_factory=lambda: [1.0])

    @model_validator(mode="after")
    def _lengths(self):
        if len(self.mean) != len(self.std) or len(self.mean) not in (1, self.channels):
            raise ValueError(f"mean and std need 1 or {self.channels} values each; got {self.mean} and {self.std}")
        if any(v <= 0 for v in self.std):
            raise ValueError("std values must be positive")
        return self


class UserModelConfig(_Strict):
    """A model to load, not train: ``{load: file}`` (TorchScript .pt, torch.export .pt2, .onnx) or
    ``{name: registered_architecture, checkpoint: state_dict_file}``. Paths are relative to the suite file."""
    load: str | None = None
    name: str | None = None
    checkpoint: str | None = None
    # A published model's per-image outputs (``id, predicted[, p_<class>...]``): scored on the images it covers.
    predictions: str | None = None
    input: InputConfig | None = None
    classes: list[str] | None = None  # the model's output order, if not the canonical one
    # What the model outputs; 'auto' detects it on the dry run (rows summing to 1 -> probabilities,
    # rows of log-probabilities -> log_probabilities, else logits) and records the answer.
    outputs: Literal["auto", "logits", "probabilities", "log_probabilities"] = "auto"
    layout: Literal["auto", "NCHW", "NHWC"] = "auto"  # NHWC: transposed for the model (recorded)

    @field_validator("name")
    @classmethod
    def _known(cls, v, info: ValidationInfo):
        if v is not None:
            _check_model_name(v, info)
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if sum(map(bool, (self.load, self.checkpoint, self.predictions))) != 1:
            raise ValueError("give one of 'load: FILE' (TorchScript/torch.export/ONNX), 'name' + 'checkpoint', "
                             "or 'predictions: FILE.csv' (a model's published per-image answers)")
        if self.checkpoint and not self.name:
            raise ValueError("'checkpoint' needs 'name', the registered architecture it belongs to")
        if self.load and self.input is None:
            raise ValueError("a loaded model needs 'input: {size, channels, mean, std}'")
        if self.predictions and (self.input is not None or self.name or self.outputs != "auto" or self.layout != "auto"):
            raise ValueError("a predictions file is scored as it is: it takes no name, input, outputs or layout")
        if self.classes and any(vocab_class(c) is None for c in self.classes):
            raise ValueError(f"unknown class name in {self.classes}")
        return self


class ResourcesConfig(_Strict):
    """What one model experiment asks of a Ray cluster (``--executor ray``): scheduling only, never
    part of a result or its config hash. Unset fields take the executor's defaults (1 GPU when the
    cluster has GPUs, else 0; 1 CPU)."""
    gpus: float | None = Field(None, ge=0, le=256)
    cpus: float | None = Field(None, gt=0, le=4096)

    @field_validator("gpus")
    @classmethod
    def _whole_above_one(cls, v):
        if v is not None and v > 1 and v != int(v):
            raise ValueError(f"gpus {v}: a share of one GPU (at most 1) or a whole number of GPUs")
        return v


class ExperimentConfig(_Strict):
    model: str | list[str] | UserModelConfig | CLIPModelConfig
    label: str | None = None  # distinguishes two entries of the same model; names the result folder
    pretrained: bool | None = None
    weights: str | None = None
    model_args: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    resources: ResourcesConfig | None = None  # Ray executor: overrides the profile's, field by field

    @field_validator("model", mode="before")
    @classmethod
    def _timm_by_name(cls, v):
        """``{timm: resnet18}`` is the model ``timm:resnet18`` (any architecture timm has)."""
        if isinstance(v, dict) and set(v) == {"timm"}:
            if not isinstance(v["timm"], str) or not v["timm"]:
                raise ValueError("'timm' names one timm architecture, e.g. {timm: resnet18}")
            return "timm:" + v["timm"]
        return v

    @field_validator("model")
    @classmethod
    def _known_model(cls, v, info: ValidationInfo):
        if isinstance(v, (UserModelConfig, CLIPModelConfig)):
            return v
        names = [v] if isinstance(v, str) else v
        if not names:
            raise ValueError("an empty model list runs nothing")
        if len(names) > MAX_MODELS_PER_ENTRY:
            raise ValueError(f"{len(names)} models in one entry; at most {MAX_MODELS_PER_ENTRY}")
        for name in names:
            _check_model_name(name, info)
        return v

    @field_validator("label")
    @classmethod
    def _safe_label(cls, v):
        return v if v is None else check_safe_name(v, "label")

    @model_validator(mode="after")
    def _label_for_one_model(self):
        if self.label and isinstance(self.model, list) and len(self.model) > 1:
            raise ValueError("'label' names one experiment; give each model of a list its own entry")
        return self


MAX_SWEEP_SETTINGS = 10
MAX_SWEEP_VALUES = 10


class SensitivityConfig(_Strict):
    """A declared sweep over the settings a paper is silent or vague on (run with ``--sensitivity``): each
    listed value of each setting is tried on its own, every other setting kept at the study's recipe.
    Setting names are TrainConfig fields (``lr``, ``batch_size``, ``epochs``, ``class_weights``,
    ``restore_best`` ...) or ``augment.<field>`` (``augment.crop_scale``)."""
    settings: dict[str, list[Any]] = Field(min_length=1, max_length=MAX_SWEEP_SETTINGS)
    one_at_a_time: Literal[True] = True  # the only design: which single assumption moves the number
    models: list[str] | None = Field(None, min_length=1)  # labels of the study's trained experiments; default all

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, v):
        from .train import AugmentConfig, TrainConfig

        for name, values in v.items():
            field, _, sub = name.partition(".")
            known = AugmentConfig.model_fields if field == "augment" and sub else TrainConfig.model_fields
            if (sub or field) not in known or field == "augment" and not sub:
                raise ValueError(unknown_name("sweep setting", name, sorted(TrainConfig.model_fields)
                                              + [f"augment.{k}" for k in AugmentConfig.model_fields]))
            if not 1 <= len(values) <= MAX_SWEEP_VALUES:
                raise ValueError(f"sweep setting {name!r}: give 1 to {MAX_SWEEP_VALUES} values")
        return v


class StudyConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    paper: str | None = None  # short name of the study whose baselines apply
    title: str | None = None
    description: str = ""
    split: SplitConfig = SplitConfig()
    train: dict[str, Any] = Field(default_factory=dict)
    seeds: list[Seed] | None = Field(None, min_length=1, max_length=MAX_SEEDS)
    experiments: list[ExperimentConfig] = Field(min_length=1, max_length=MAX_EXPERIMENTS_PER_STUDY)
    llm: LLMConfig | None = None
    notes: list[str] = Field(default_factory=list)
    sensitivity: SensitivityConfig | None = None  # expanded only with --sensitivity
    # The images' size and colour (default 48 px gray, FER2013's): e.g. {size: 100, channels: 3} for RAF-DB.
    input: StudyInput = StudyInput()

    @field_validator("paper")
    @classmethod
    def _known_paper(cls, v):
        if v is not None and v not in STUDY_NAMES:
            raise ValueError(unknown_name("paper", v, STUDY_NAMES))
        return v

    @model_validator(mode="after")
    def _sweep_names_labels(self):
        if self.sensitivity is not None and self.sensitivity.models is not None:
            labels = {ex.label or m for ex in self.experiments if not isinstance(ex.model, UserModelConfig)
                      for m in ([ex.model] if isinstance(ex.model, str) else ex.model)}
            for name in self.sensitivity.models:
                if name not in labels:
                    raise ValueError(unknown_name("sensitivity model", name, sorted(labels)))
        return self


class ProfileConfig(_Strict):
    """A named way to scale a suite without editing it (``--profile``); every change is a deviation."""
    description: str = ""
    max_epochs: int | None = Field(None, gt=0, le=MAX_EPOCHS)
    train_per_class: int | None = Field(None, gt=0, le=MAX_PER_CLASS)
    eval_per_class: int | None = Field(None, gt=0, le=MAX_PER_CLASS)
    max_input_size: int | None = Field(None, gt=0)
    # ImageNet-size architectures trained from scratch: no pretrained filters expect a scale, so upsampling
    # the 48-px images buys nothing but FLOPs (48: FER2013's own size).
    scratch_input_size: int | None = Field(None, ge=48)
    pretrained: bool | None = None
    max_folds: int | None = Field(None, gt=0)
    augmented_copies: int | None = Field(None, gt=0)
    monitor_per_class: int | None = Field(None, gt=0, le=MAX_PER_CLASS)  # per-epoch validation subset (TrainConfig.monitor_per_class)
    face_detect: bool = True  # false: a study's face re-detection (split face_detect) is skipped, as a deviation
    train: dict[str, Any] = Field(default_factory=dict)
    resources: ResourcesConfig | None = None  # Ray executor: every model experiment's default request


BUILTIN_PROFILES: dict[str, ProfileConfig] = {
    "paper": ProfileConfig(description="the published settings: full data, the papers' epochs and input sizes"),
    "quick": ProfileConfig(
        description="sized for a 2-core CPU: at most 4 epochs, at most 1,000 training images per class, "
                    "224-px models run at 64 px (at 48 px when trained from scratch), 1 CV fold, 2 augmented "
                    "copies, no MTCNN face re-detection, per-epoch validation on 300 images per class, BatchNorm "
                    "running statistics with torch's momentum 0.1 instead of Keras' 0.99 for so short a run; full validation and test "
                    "sets for every reported number",
        max_epochs=4, train_per_class=1000, max_input_size=64, scratch_input_size=48, max_folds=1,
        augmented_copies=2, monitor_per_class=300, face_detect=False,
        train={"eval_batch_size": 128, "bn_momentum": 0.1}),
    "smoke": ProfileConfig(
        description="seconds per experiment, for CI: 1 epoch, 30 training and 20 evaluation images per class, "
                    "32-px inputs for large models, no pretrained weights, no torch.compile, 1 fold, 1 augmented copy, "
                    "no face re-detection",
        max_epochs=1, train_per_class=30, eval_per_class=20, max_input_size=32, pretrained=False, max_folds=1,
        augmented_copies=1, face_detect=False, train={"compile": False}),
}


class SuiteConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    description: str = ""
    data: str | None = None
    include: list[str] = Field(default_factory=list, max_length=50)  # other suite files whose studies are added
    defaults: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=MAX_SEEDS)
    profiles: dict[str, ProfileConfig] = Field(default_factory=dict, max_length=50)
    studies: list[StudyConfig] = Field(default_factory=list, max_length=MAX_STUDIES)

    @field_validator("profiles")
    @classmethod
    def _safe_profile_names(cls, v):
        for name in v:  # a profile name becomes part of the run folder's name
            check_safe_name(name, "profile name")
        return v

    @model_validator(mode="after")
    def _unique_and_trainable(self):
        if not self.studies and not self.include:
            raise ValueError("a suite needs at least one study (or an 'include' of other suites)")
        names = [s.name for s in self.studies]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"study names must be unique; repeated: {', '.join(dup)}")
        n = sum(experiment_count(st, self.seeds) for st in self.studies)
        if n > MAX_EXPERIMENTS:
            raise ValueError(f"the suite expands to {n:,} experiments (models x seeds x folds) under the paper "
                             f"profile; at most {MAX_EXPERIMENTS:,}")
        return self


def experiment_count(study: StudyConfig, suite_seeds: list[int]) -> int:
    """How many experiments ``study`` expands to under the paper profile, computed without expanding."""
    models = sum(1 if isinstance(e.model, (str, UserModelConfig, CLIPModelConfig)) else len(e.model)
                 for e in study.experiments)
    trained = sum(0 if isinstance(e.model, (UserModelConfig, CLIPModelConfig)) else (1 if isinstance(e.model, str) else len(e.model))
                  for e in study.experiments)
    runs = len(study.seeds or suite_seeds) * len(study.split.fold_list())
    endpoints = len(study.llm.endpoints) if study.llm is not None else 0
    return trained * runs + (models - trained) + endpoints
