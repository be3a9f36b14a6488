"""Suite files: a pydantic schema (the file format), validation with YAML line numbers, profiles,
and expansion into experiments (one per model x seed x fold, plus one per LLM endpoint).

A suite is data; nothing here trains or evaluates anything.
"""
from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import CLASSES
from .engine import TrainConfig
from .errors import SuiteError
from .labels import canonical_class
from .models import list_models, model_info, unknown_model_message
from .schema.llm import EndpointConfig, LLMConfig, SampleConfig  # noqa: F401 - re-exported

STUDY_NAMES = ("comparative", "llm_vs_nn", "cbam", "augmented", "three_class")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitConfig(_Strict):
    kind: Literal["official", "holdout", "kfold", "augmented"] = "official"
    seed: int = 0  # the partition's seed; training seeds vary separately
    classes: list[str] | None = None
    val_fraction: float = Field(0.1, gt=0, lt=1)
    k: int = Field(3, ge=2)
    folds: list[int] | None = None  # kfold: which folds to run (0-based); default all k
    copies: int = Field(5, ge=1)
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
    order: Literal["split_then_augment", "augment_then_split"] = "split_then_augment"
    train_per_class: int | None = Field(None, gt=0)
    train_fraction: float | None = Field(None, gt=0, le=1)
    eval_per_class: int | None = Field(None, gt=0)

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, v):
        if v is not None:
            bad = [c for c in v if canonical_class(c) is None]
            if bad:
                raise ValueError(f"unknown class(es) {bad}; expected names from {', '.join(CLASSES)}")
            if len(v) < 2:
                raise ValueError("a class subset needs at least 2 classes")
        return v

    @model_validator(mode="after")
    def _possible(self):
        if self.folds is not None and any(not 0 <= f < self.k for f in self.folds):
            raise ValueError(f"folds {self.folds} do not exist for k={self.k} (valid: 0..{self.k - 1})")
        if abs(sum(self.ratios) - 1) > 1e-6 or min(self.ratios) <= 0:
            raise ValueError(f"ratios must be three positive numbers summing to 1; got {list(self.ratios)}")
        return self

    def fold_list(self) -> list[int | None]:
        return list(self.folds if self.folds is not None else range(self.k)) if self.kind == "kfold" else [None]


class InputConfig(_Strict):
    """How a user's model expects its input (48x48 grayscale FER images are adapted on the device)."""
    size: int = Field(48, ge=8)
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
    ``{name: registered_architecture, checkpoint: state_dict_file}``."""
    load: str | None = None
    name: str | None = None
    checkpoint: str | None = None
    input: InputConfig | None = None
    classes: list[str] | None = None  # the model's output order, if not the canonical one

    @model_validator(mode="after")
    def _one_source(self):
        if bool(self.load) == bool(self.checkpoint):
            raise ValueError("give either 'load: FILE' (TorchScript/torch.export/ONNX) or 'name' + 'checkpoint'")
        if self.checkpoint and not self.name:
            raise ValueError("'checkpoint' needs 'name', the registered architecture it belongs to")
        if self.name and self.name not in list_models():
            raise ValueError(unknown_model_message(self.name))
        if self.load and self.input is None:
            raise ValueError("a loaded model needs 'input: {size, channels, mean, std}'")
        if self.classes and any(canonical_class(c) is None for c in self.classes):
            raise ValueError(f"unknown class name in {self.classes}")
        return self


class ExperimentConfig(_Strict):
    model: str | list[str] | UserModelConfig
    label: str | None = None  # distinguishes two entries of the same model
    pretrained: bool | None = None
    weights: str | None = None
    model_args: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _known_model(cls, v):
        if isinstance(v, UserModelConfig):
            return v
        for name in [v] if isinstance(v, str) else v:
            if name not in list_models():
                raise ValueError(unknown_model_message(name))
        return v


class StudyConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    paper: str | None = None  # short name of the study whose baselines apply
    title: str | None = None
    description: str = ""
    split: SplitConfig = SplitConfig()
    train: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] | None = None
    experiments: list[ExperimentConfig] = Field(min_length=1)
    llm: LLMConfig | None = None
    notes: list[str] = Field(default_factory=list)

    @field_validator("paper")
    @classmethod
    def _known_paper(cls, v):
        if v is not None and v not in STUDY_NAMES:
            raise ValueError(f"unknown paper {v!r}; expected one of {', '.join(STUDY_NAMES)}")
        return v


class ProfileConfig(_Strict):
    description: str = ""
    max_epochs: int | None = Field(None, gt=0)
    train_per_class: int | None = Field(None, gt=0)
    eval_per_class: int | None = Field(None, gt=0)
    max_input_size: int | None = Field(None, gt=0)
    pretrained: bool | None = None
    max_folds: int | None = Field(None, gt=0)
    augmented_copies: int | None = Field(None, gt=0)
    train: dict[str, Any] = Field(default_factory=dict)


BUILTIN_PROFILES: dict[str, ProfileConfig] = {
    "paper": ProfileConfig(description="the published settings: full data, the papers' epochs and input sizes"),
    "quick": ProfileConfig(
        description="sized for a 2-core CPU: at most 8 epochs, at most 1,000 training images per class, "
                    "224-px models run at 64 px, 1 CV fold, 2 augmented copies; full test sets",
        max_epochs=8, train_per_class=1000, max_input_size=64, max_folds=1, augmented_copies=2),
    "smoke": ProfileConfig(
        description="seconds per experiment, for CI: 1 epoch, 30 training and 20 evaluation images per class, "
                    "32-px inputs for large models, no pretrained weights, 1 fold, 1 augmented copy",
        max_epochs=1, train_per_class=30, eval_per_class=20, max_input_size=32, pretrained=False, max_folds=1,
        augmented_copies=1),
}


class SuiteConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    description: str = ""
    data: str | None = None
    include: list[str] = Field(default_factory=list)  # other suite files whose studies are added
    defaults: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    profiles: dict[str, ProfileConfig] = Field(default_factory=dict)
    studies: list[StudyConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_and_trainable(self):
        if not self.studies and not self.include:
            raise ValueError("a suite needs at least one study (or an 'include' of other suites)")
        names = [s.name for s in self.studies]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"study names must be unique; repeated: {', '.join(dup)}")
        return self


# --- loading with line numbers ----------------------------------------------------------------------

def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at pydantic ``loc`` (deepest node that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next(((k, v) for k, v in node.value if k.value == key), None)
            if nxt is None:
                break
            line, node = nxt[0].start_mark.line + 1, nxt[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            continue  # pydantic adds tags such as 'str' or 'list[str]' into loc
    return line


def _loc_text(loc: tuple) -> str:
    out = ""
    for k in loc:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
    return out or "(top level)"


def _train_problems(raw: dict, root: yaml.Node) -> list[str]:
    """Validate every train block (suite defaults, study, experiment) against TrainConfig."""
    problems = []
    blocks = [(("defaults",), raw.get("defaults") or {})]
    for i, st in enumerate(raw.get("studies") or []):
        if isinstance(st, dict):
            blocks.append((("studies", i, "train"), st.get("train") or {}))
            for j, ex in enumerate(st.get("experiments") or []):
                if isinstance(ex, dict):
                    blocks.append((("studies", i, "experiments", j, "train"), ex.get("train") or {}))
    for i, (name, prof) in enumerate((raw.get("profiles") or {}).items()):
        if isinstance(prof, dict):
            blocks.append((("profiles", name, "train"), prof.get("train") or {}))
    for loc, block in blocks:
        try:
            TrainConfig.model_validate({**{"epochs": 1}, **block} if isinstance(block, dict) else block)
        except ValidationError as exc:
            for e in exc.errors():
                full = loc + tuple(e["loc"])
                problems.append(f"line {_line_of(root, full)}: {_loc_text(full)}: {e['msg']}")
    return problems


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and validate a suite file; raises SuiteError listing every problem with its line."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(path, [f"suite file not found: {path}"])
    text = path.read_text()
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SuiteError(path, [f"not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise SuiteError(path, ["a suite must be a YAML mapping with at least 'name' and 'studies'"])
    # Top-level 'x-*' keys hold YAML anchors for reuse (as in docker-compose); they are not settings.
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    problems = []
    suite = None
    try:
        suite = SuiteConfig.model_validate(raw)
    except ValidationError as exc:
        for e in exc.errors():
            loc = tuple(e["loc"])
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = f"unknown key {loc[-1]!r}"
            problems.append(f"line {_line_of(root, loc)}: {_loc_text(loc)}: {msg}")
    problems += _train_problems(raw, root)
    if problems:
        raise SuiteError(path, problems)
    for inc in suite.include:
        # An included suite's defaults and seeds travel with its studies.
        sub = load_suite(path.parent / inc)
        for st in sub.studies:
            suite.studies.append(st.model_copy(update={"train": _deep_merge(sub.defaults, st.train),
                                                       "seeds": st.seeds or sub.seeds}))
    names = [s.name for s in suite.studies]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SuiteError(path, [f"study names must be unique across included suites; repeated: {', '.join(dup)}"])
    suite._path = path  # noqa: SLF001 - for resolving relative data paths
    return suite


# --- profiles and expansion ---------------------------------------------------------------------------

class Experiment(BaseModel):
    """One unit of work with a stable id; everything that determines its result is in here."""
    model_config = ConfigDict(extra="forbid")

    id: str
    study: str
    kind: Literal["train", "load", "llm"] = "train"
    model: str | None = None
    label: str
    pretrained: bool | None = None
    weights: str | None = None
    model_args: dict[str, Any] = Field(default_factory=dict)
    split: SplitConfig
    fold: int | None = None
    seed: int = 0
    train: TrainConfig | None = None
    user_model: UserModelConfig | None = None
    user_model_fingerprint: str | None = None  # size + mtime of the file: a new file is re-evaluated
    llm_endpoint: EndpointConfig | None = None
    llm: LLMConfig | None = None
    deviations: list[str] = Field(default_factory=list)

    def config_hash(self) -> str:
        """Hash of everything that determines the result (not the id or the deviation text)."""
        d = self.model_dump(mode="json", exclude={"deviations"})
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _load_experiment(suite: SuiteConfig, st: StudyConfig, ex: ExperimentConfig, split: SplitConfig,
                     dev: list[str]) -> Experiment:
    um = ex.model.model_copy()
    base = Path(getattr(suite, "_path", ".")).resolve().parent
    for attr in ("load", "checkpoint"):
        v = getattr(um, attr)
        if v and not Path(v).is_absolute():
            setattr(um, attr, str(base / v))
    f = Path(um.load or um.checkpoint)
    fp = f"{f.stat().st_size}-{f.stat().st_mtime_ns}" if f.is_file() else "missing"
    label = ex.label or (um.name if um.checkpoint else f.stem)
    return Experiment(id=f"{st.name}.{label}", study=st.name, kind="load", model=um.name, label=label,
                      split=split, user_model=um, user_model_fingerprint=fp,
                      train=TrainConfig.model_validate(_deep_merge(suite.defaults, st.train, ex.train)),
                      deviations=list(dev))


def resolve_profile(suite: SuiteConfig, name: str) -> ProfileConfig:
    if name in suite.profiles:
        return suite.profiles[name]
    if name in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[name]
    avail = sorted(set(BUILTIN_PROFILES) | set(suite.profiles))
    raise SuiteError(getattr(suite, "_path", suite.name), [f"unknown profile {name!r}; available: {', '.join(avail)}"])


def _deep_merge(*dicts: dict) -> dict:
    out: dict = {}
    for d in dicts:
        for k, v in (d or {}).items():
            out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def expand(suite: SuiteConfig, profile: str = "paper", only: str | None = None,
           pretrained_override: bool | None = None) -> list[Experiment]:
    """All experiments of ``suite`` under ``profile``, optionally filtered by an id glob."""
    prof = resolve_profile(suite, profile)
    exps: list[Experiment] = []
    for st in suite.studies:
        split = st.split.model_copy()
        split_dev = []
        if prof.train_per_class and (split.train_per_class is None or split.train_per_class > prof.train_per_class):
            split.train_per_class = prof.train_per_class
            split_dev.append(f"train capped at {prof.train_per_class} images per class")
        if prof.eval_per_class:
            split.eval_per_class = prof.eval_per_class
            split_dev.append(f"val/test capped at {prof.eval_per_class} images per class")
        if split.kind == "augmented" and prof.augmented_copies and prof.augmented_copies < split.copies:
            split_dev.append(f"{prof.augmented_copies} augmented copies instead of {split.copies}")
            split.copies = prof.augmented_copies
        folds = split.fold_list()
        if prof.max_folds and len(folds) > prof.max_folds:
            split_dev.append(f"{prof.max_folds} of {len(folds)} CV folds run")
            folds = folds[:prof.max_folds]
        seeds = st.seeds or suite.seeds
        for ex in st.experiments:
            if isinstance(ex.model, UserModelConfig):
                exps.append(_load_experiment(suite, st, ex, split, split_dev))
                continue
            for model in [ex.model] if isinstance(ex.model, str) else ex.model:
                info = model_info(model)
                tcfg = TrainConfig.model_validate(_deep_merge(suite.defaults, st.train, ex.train, prof.train))
                dev = list(split_dev)
                if prof.max_epochs and tcfg.epochs > prof.max_epochs:
                    dev.append(f"{prof.max_epochs} epoch{'s' if prof.max_epochs > 1 else ''} instead of {tcfg.epochs}")
                    tcfg.epochs = prof.max_epochs
                    tcfg.freeze_epochs = min(tcfg.freeze_epochs, max(prof.max_epochs - 1, 0))
                size = tcfg.input_size or info.input.size
                # Only upscaled ImageNet-size inputs shrink; 48-px networks have fixed flatten sizes.
                if prof.max_input_size and size > 48 and size > prof.max_input_size:
                    dev.append(f"input {prof.max_input_size} px instead of {size} px")
                    tcfg.input_size = prof.max_input_size
                pre = ex.pretrained if ex.pretrained is not None else (info.pretrained or None)
                for forced, why in ((prof.pretrained, f"profile {profile!r}"), (pretrained_override, "--no-pretrained")):
                    if forced is not None and pre and forced != pre:
                        dev.append(f"ImageNet weights not used ({why}): trained from scratch")
                        pre = forced
                label = ex.label or model
                for seed in seeds:
                    for fold in folds:
                        eid = f"{st.name}.{label}" + (f".fold{fold}" if fold is not None else "") \
                              + (f".seed{seed}" if len(seeds) > 1 else "")
                        exps.append(Experiment(id=eid, study=st.name, model=model, label=label,
                                               pretrained=pre if info.pretrained else None, weights=ex.weights,
                                               model_args=ex.model_args, split=split, fold=fold, seed=seed,
                                               train=tcfg, deviations=dev))
        if st.llm is not None:
            llm = st.llm.model_copy(deep=True)
            if prof.eval_per_class and (llm.sample.per_class is None or llm.sample.per_class > prof.eval_per_class):
                llm.sample.per_class = min(prof.eval_per_class, 5)
            for ep in llm.endpoints:
                label = ep.label or ep.model
                exps.append(Experiment(id=f"{st.name}.llm.{label}", study=st.name, kind="llm", label=label,
                                       split=split, llm_endpoint=ep, llm=llm.model_copy(update={"endpoints": []}),
                                       seed=llm.sample.seed))
    ids = [e.id for e in exps]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise SuiteError(getattr(suite, "_path", suite.name),
                         [f"experiment ids collide: {', '.join(dup)}; give repeated models a 'label'"])
    if only:
        exps = [e for e in exps if fnmatch.fnmatch(e.id, only) or fnmatch.fnmatch(e.study, only)]
    return exps
