"""Profiles and expansion: a validated suite becomes the list of experiments one run executes.

One experiment per model x seed x fold, one per user model, one per LLM endpoint. Every change a
profile or a command-line override makes to a study's published settings is recorded as a
deviation on the experiment it changes (the report lists them).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ..errors import FerbenchError, SuiteError, unknown_name
from ..limits import MAX_EPOCHS, MAX_PER_CLASS, MAX_SEED, check_number
from ..schema.clip import CLIPModelConfig
from ..schema.experiment import CLIPExperiment, Experiment, LLMExperiment, LoadExperiment, TrainExperiment, Variant
from ..schema.suite import (BUILTIN_PROFILES, MAX_EXPERIMENTS, ExperimentConfig, ProfileConfig, ResourcesConfig,
                            SplitConfig, StudyConfig, UserModelConfig, safe_id_part)
from ..schema.train import TrainConfig
from .llm_sweep import llm_sweep_experiments
from .loading import LoadedSuite, _deep_merge


@dataclass(frozen=True)
class Overrides:
    """Command-line changes to every experiment of a run; each is recorded as a deviation."""
    pretrained: bool | None = None  # False: --no-pretrained
    epochs: int | None = None  # --epochs
    seed: int | None = None  # --seed (replaces the suite's seed list)
    limit: int | None = None  # --limit: images per class in every partition and the LLM sample
    sensitivity: bool | None = None  # --sensitivity: add the studies' declared sweeps (same run folder)

    def __post_init__(self):
        # The suite's own limits, for flags and library callers alike (a flag must not skip them).
        for name, value, high in (("--epochs", self.epochs, MAX_EPOCHS), ("--seed", self.seed, MAX_SEED),
                                  ("--limit", self.limit, MAX_PER_CLASS)):
            if value is not None:
                try:
                    check_number(value, name, low=0 if name == "--seed" else 1, high=high, integer=True)
                except ValueError as exc:
                    raise FerbenchError(str(exc)) from None


def resolve_profile(suite: LoadedSuite, name: str) -> ProfileConfig:
    if name in suite.config.profiles:
        return suite.config.profiles[name]
    if name in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[name]
    avail = sorted(set(BUILTIN_PROFILES) | set(suite.config.profiles))
    raise SuiteError(suite.path, [unknown_name("profile", name, avail)])


def _study_split(st: StudyConfig, prof: ProfileConfig, ov: Overrides) -> tuple[SplitConfig, list, list[str]]:
    """The study's split under the profile, the folds to run, and the deviations that made."""
    split = st.split.model_copy()
    dev: list[str] = []
    if prof.train_per_class and (split.train_per_class is None or split.train_per_class > prof.train_per_class):
        split.train_per_class = prof.train_per_class
        dev.append(f"train capped at {prof.train_per_class} images per class")
    if prof.eval_per_class:
        split.eval_per_class = prof.eval_per_class
        dev.append(f"val/test capped at {prof.eval_per_class} images per class")
    if ov.limit:
        split.train_per_class = min(split.train_per_class or ov.limit, ov.limit)
        split.eval_per_class = min(split.eval_per_class or ov.limit, ov.limit)
        dev.append(f"--limit {ov.limit}: at most {ov.limit} images per class in train, val and test")
    if split.kind == "augmented" and prof.augmented_copies and prof.augmented_copies < split.copies:
        dev.append(f"{prof.augmented_copies} augmented copies instead of {split.copies}")
        split.copies = prof.augmented_copies
    if split.face_detect != "none" and not prof.face_detect:
        dev.append(f"no {split.face_detect.upper()} face re-detection (profile): every image is used")
        split.face_detect = "none"
    folds = split.fold_list()
    if prof.max_folds and len(folds) > prof.max_folds:
        dev.append(f"{prof.max_folds} of {len(folds)} CV folds run")
        folds = folds[:prof.max_folds]
    return split, folds, dev


def _train_config(suite: LoadedSuite, st: StudyConfig, ex: ExperimentConfig, prof: ProfileConfig,
                  ov: Overrides, native_size: int, dev: list[str], scratch: bool = False) -> TrainConfig:
    tcfg = TrainConfig.model_validate(_deep_merge(suite.config.defaults, st.train, ex.train, prof.train))
    cap = ov.epochs or prof.max_epochs
    if cap and (tcfg.epochs > cap or (ov.epochs and tcfg.epochs != cap)):
        why = "--epochs" if ov.epochs else "profile"
        dev.append(f"{cap} epoch{'s' if cap > 1 else ''} instead of {tcfg.epochs} ({why})")
        tcfg.epochs = cap
        tcfg.freeze_epochs = min(tcfg.freeze_epochs, max(cap - 1, 0))
    size = tcfg.input_size or native_size
    # Only upscaled ImageNet-size inputs shrink; 48-px networks have fixed flatten sizes.
    limits = [v for v in (prof.max_input_size, prof.scratch_input_size if scratch else None) if v]
    limit = min(limits, default=None)
    if limit and size > 48 and size > limit:
        why = " (trained from scratch: no pretrained filters expect a scale)" if scratch and \
            limit == prof.scratch_input_size and limit != prof.max_input_size else ""
        dev.append(f"input {limit} px instead of {size} px{why}")
        tcfg.input_size = limit
    return tcfg


def _resources(ex: ExperimentConfig, prof: ProfileConfig) -> ResourcesConfig | None:
    """The experiment's own request over the profile's, field by field (an experiment knows its needs)."""
    if ex.resources is None or prof.resources is None:
        return ex.resources or prof.resources
    return prof.resources.model_copy(update=ex.resources.model_dump(exclude_none=True))


def _load_experiment(suite: LoadedSuite, st: StudyConfig, ex: ExperimentConfig, split: SplitConfig,
                     prof: ProfileConfig, dev: list[str]) -> LoadExperiment:
    um: UserModelConfig = ex.model.model_copy()
    for attr in ("load", "checkpoint", "predictions"):
        v = getattr(um, attr)
        if v and not Path(v).is_absolute():
            setattr(um, attr, str(suite.dir / v))
    f = Path(um.load or um.checkpoint or um.predictions)
    fp = f"{f.stat().st_size}-{f.stat().st_mtime_ns}" if f.is_file() else "missing"
    label = ex.label or safe_id_part(um.name if um.checkpoint else f.stem)
    tcfg = TrainConfig.model_validate(_deep_merge(suite.config.defaults, st.train, ex.train, prof.train))
    return LoadExperiment(id=f"{st.name}.{label}", study=st.name, model=um.name, label=label, split=split,
                          input=st.input,
                          user_model=um, user_model_fingerprint=fp, train=tcfg, deviations=list(dev),
                          resources=_resources(ex, prof))


def _clip_experiment(suite: LoadedSuite, st: StudyConfig, ex: ExperimentConfig, split: SplitConfig,
                     prof: ProfileConfig, dev: list[str]) -> CLIPExperiment:
    cfg: CLIPModelConfig = ex.model.model_copy()
    if not Path(cfg.clip).is_absolute():
        cfg.clip = str(suite.dir / cfg.clip)
    f = Path(cfg.clip)
    stat = [p.stat() for p in (sorted(f.iterdir()) if f.is_dir() else [f]) if p.is_file()] if f.exists() else []
    fp = "-".join(f"{s.st_size}:{s.st_mtime_ns}" for s in stat) or "missing"
    label = ex.label or safe_id_part(f"{cfg.arch or f.name}-{cfg.mode}")
    return CLIPExperiment(id=f"{st.name}.{label}", study=st.name, label=label, split=split, clip=cfg,
                          clip_fingerprint=fp[:4000], deviations=list(dev), resources=_resources(ex, prof))


def _model_experiments(suite: LoadedSuite, st: StudyConfig, ex: ExperimentConfig, split: SplitConfig,
                       folds: list, seeds: list[int], prof: ProfileConfig, profile: str, ov: Overrides,
                       split_dev: list[str]) -> list[TrainExperiment]:
    from ..models.catalog import info as model_info  # cached ModelInfo: no torch

    out = []
    for model in [ex.model] if isinstance(ex.model, str) else ex.model:
        info = model_info(model)
        dev = list(split_dev)
        pre = ex.pretrained if ex.pretrained is not None else (info["pretrained"] or None)
        pre_dev = []
        for forced, why in ((prof.pretrained, f"profile {profile!r}"), (ov.pretrained, "--no-pretrained")):
            if forced is not None and pre and forced != pre:
                pre_dev.append(f"ImageNet weights not used ({why}): trained from scratch")
                pre = forced
        tcfg = _train_config(suite, st, ex, prof, ov, info["input_spec"]["size"], dev,
                            scratch=info["pretrained"] and not pre)
        # Per-epoch validation on a subset, unless the validation set is what the study reports (no test
        # set): there the epoch chosen on it is part of the published protocol.
        cap = prof.monitor_per_class
        if cap and split.has_val and split.test != "none" and (tcfg.monitor_per_class or cap + 1) > cap:
            tcfg.monitor_per_class = cap
            dev.append(f"per-epoch validation (epoch choice, LR schedule, curves) on at most {cap} images per "
                       "class; reported metrics on the full sets")
        dev += pre_dev
        if tcfg.early_stopping and not split.has_val:
            raise SuiteError(suite.path, [f"study {st.name}: early_stopping needs a validation set, and its split "
                                          "has none (val_fraction: null)"])
        label = ex.label or safe_id_part(model.replace(":", "-"))  # timm:resnet18 -> timm-resnet18
        for seed in seeds:
            for fold in folds:
                eid = f"{st.name}.{label}" + (f".fold{fold}" if fold is not None else "") \
                      + (f".seed{seed}" if len(seeds) > 1 else "")
                out.append(TrainExperiment(id=eid, study=st.name, model=model, label=label,
                                           pretrained=pre if info["pretrained"] or info["study"] == "timm" else None,
                                           weights=ex.weights,
                                           model_args=ex.model_args, split=split, fold=fold, input=st.input,
                                           seed=seed, train=tcfg, deviations=dev,
                                           resources=_resources(ex, prof)))
    return out


def _value_text(v) -> str:
    return safe_id_part("-".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v).lower() if
                        isinstance(v, bool) or v is None else str(v))


def _recipe_value(e: TrainExperiment, setting: str):
    field, _, sub = setting.partition(".")
    v = getattr(e.train, field)
    v = getattr(v, sub) if sub else v
    return Variant(of="", setting=setting, value=list(v) if isinstance(v, tuple) else v).text.partition("=")[2]


def _sweep(suite: LoadedSuite, st: StudyConfig, ex: ExperimentConfig, recipe: list[TrainExperiment],
           args: tuple) -> list[TrainExperiment]:
    """The study's sensitivity sweep for the experiments of ``ex``: one setting changed at a time from the
    recipe; a value the recipe (after the profile) already has adds nothing."""
    sens = st.sensitivity
    out: list[TrainExperiment] = []
    for model in [ex.model] if isinstance(ex.model, str) else ex.model:
        label = ex.label or model
        base = next(e for e in recipe if e.model == model)
        if sens.models is not None and label not in sens.models:
            continue
        for setting, values in sens.settings.items():
            field, _, sub = setting.partition(".")
            for value in values:
                change = {field: {sub: value}} if sub else {field: value}
                one = ex.model_copy(update={"model": model, "label": f"{label}+{setting}_{_value_text(value)}",
                                            "train": _deep_merge(ex.train, change)})
                try:
                    exps = _model_experiments(suite, st, one, *args)
                except ValidationError as exc:
                    raise SuiteError(suite.path, [f"study {st.name}: sensitivity {setting}={value!r}: "
                                                  f"{exc.errors()[0]['msg']}"]) from None
                if exps and exps[0].train == base.train:
                    continue
                v = Variant(of=label, setting=setting, value=value)
                dev = f"sensitivity sweep: {v.text} instead of the recipe's {_recipe_value(base, setting)}"
                out += [e.model_copy(update={"variant": v, "deviations": [*e.deviations, dev]}) for e in exps]
    return out


def _llm_experiments(st: StudyConfig, split: SplitConfig, prof: ProfileConfig, ov: Overrides) -> list[LLMExperiment]:
    llm = st.llm.model_copy(deep=True)
    dev = []
    caps = [c for c in (prof.eval_per_class and min(prof.eval_per_class, 5), ov.limit) if c]
    if caps and (llm.sample.per_class is None or llm.sample.per_class > min(caps)):
        dev.append(f"LLM sample of {min(caps)} images per class instead of "
                   f"{llm.sample.per_class or 'the whole split'}")
        llm.sample.per_class = min(caps)
    out = []
    for ep in llm.endpoints:
        label = ep.label or ep.model
        out.append(LLMExperiment(id=f"{st.name}.llm.{safe_id_part(label)}", study=st.name, label=label, split=split,
                                 input=st.input,
                                 llm_endpoint=ep, llm=llm.model_copy(update={"endpoints": [ep], "sensitivity": None}),
                                 seed=llm.sample.seed, deviations=dev))
    return out


def _from_suite(spec: str, base: Path) -> str:
    """A cross-dataset spec with its path made absolute from the suite's folder (``rafdb:raf`` ->
    ``rafdb:/suites/raf``); ``hf:`` and ``synthetic`` specs are not paths."""
    prefix, sep, rest = spec.partition(":")
    if spec.startswith(("hf:", "synthetic")):
        return spec
    named = sep and len(prefix) > 1  # a one-letter prefix is a Windows drive
    path = Path(rest if named else spec)
    if path.is_absolute():
        return spec
    return f"{prefix}:{base / path}" if named else str(base / path)


def _manifest_sha256(suite: LoadedSuite, path: str) -> str:
    from ..data.manifest import manifest_sha256

    try:
        return manifest_sha256(path)
    except FerbenchError as exc:
        raise SuiteError(suite.path, [str(exc)]) from None


def expand(suite: LoadedSuite, profile: str = "paper", only: str | None = None,
           overrides: Overrides = Overrides()) -> list[Experiment]:
    """All experiments of ``suite`` under ``profile``, optionally filtered by an id (or study) glob."""
    prof = resolve_profile(suite, profile)
    exps: list[Experiment] = []
    for st in suite.studies:
        split, folds, split_dev = _study_split(st, prof, overrides)
        split.cross = [_from_suite(c, suite.dir) for c in split.cross]  # a Ray worker has no suite folder
        if split.manifest is not None:  # absolute, and its content pinned: a changed manifest re-runs
            split.manifest = _from_suite(split.manifest, suite.dir)
            split.manifest_sha256 = _manifest_sha256(suite, split.manifest)
        seeds = [overrides.seed] if overrides.seed is not None else (st.seeds or suite.config.seeds)
        if overrides.seed is not None:
            split_dev = [*split_dev, f"--seed {overrides.seed} instead of the suite's seeds {st.seeds or suite.config.seeds}"]
        for ex in st.experiments:
            if isinstance(ex.model, UserModelConfig):
                exps.append(_load_experiment(suite, st, ex, split, prof, split_dev))
            elif isinstance(ex.model, CLIPModelConfig):
                exps.append(_clip_experiment(suite, st, ex, split, prof, split_dev))
            else:
                mine = _model_experiments(suite, st, ex, split, folds, seeds, prof, profile, overrides, split_dev)
                exps += mine
                if overrides.sensitivity and st.sensitivity is not None:
                    exps += _sweep(suite, st, ex, mine, (split, folds, seeds, prof, profile, overrides, split_dev))
            if len(exps) > MAX_EXPERIMENTS:
                raise SuiteError(suite.path, [f"the suite expands to more than {MAX_EXPERIMENTS:,} experiments"])
        if st.llm is not None:
            mine = _llm_experiments(st, split, prof, overrides)
            exps += mine
            if overrides.sensitivity and st.llm.sensitivity is not None:  # the declared LLM sweep
                exps += llm_sweep_experiments(suite, st, mine)
    if len(exps) > MAX_EXPERIMENTS:
        raise SuiteError(suite.path, [f"the suite expands to more than {MAX_EXPERIMENTS:,} experiments"])
    ids = [e.id for e in exps]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise SuiteError(suite.path, [f"experiment ids collide: {', '.join(dup)}; give repeated models a 'label'"])
    if only:
        exps = [e for e in exps if fnmatch.fnmatch(e.id, only) or fnmatch.fnmatch(e.study, only)]
    return exps


# --- where results go (read by `ferbench list` without the training stack) ------------------------------

def run_folder_name(suite: str, profile: str, overrides: Overrides) -> str:
    """Each profile and each set of run-wide overrides gets its own folder: results never mix."""
    parts = [suite] + ([profile] if profile != "paper" else [])
    parts += [f"{k}{v}" for k, v in (("epochs", overrides.epochs), ("limit", overrides.limit),
                                     ("seed", overrides.seed)) if v is not None]
    return "-".join(parts + (["scratch"] if overrides.pretrained is False else []))


def cross_key(spec: str, exp: Experiment) -> str:
    """How run.json names a further test set's fingerprint: its spec, and the study input it was read at."""
    return spec if exp.input.is_default else f"{spec} @ {exp.input.describe()}"


def result_key(exp: Experiment, fingerprint: str, cross: dict[str, str] | None = None) -> str:
    """The config hash a stored result must carry to be reused: the experiment's settings and the data,
    with the content fingerprints of its further test sets (``cross``: {spec: fingerprint}) where it has any."""
    key = exp.config_hash() + fingerprint
    if exp.split.cross:
        fps = [(cross or {}).get(cross_key(spec, exp), "unknown") for spec in exp.split.cross]
        key += "-x" + hashlib.sha256(json.dumps(fps).encode()).hexdigest()[:12]
    return key
