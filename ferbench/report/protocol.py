"""The protocol table of a study: every setting its paper describes (``protocol`` in
``ferbench/baselines/<paper>.yaml``), the paper's words quoted with their section beside what
ferbench ran, marked *same*, *differs (why)* or *paper silent — ferbench assumes X*.

ferbench's side is read from each result, never from the suite file: the experiment's configuration
after profile and command-line overrides, the split sizes, the input the model saw, the registry's
notes on the model and the deviations the run recorded. So the table cannot drift from what ran.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..schema.baselines import Baselines, ProtocolRow
from ..schema.results import LLMResult, ModelResult, StudyMeta
from ..schema.train import AugmentConfig
from ..store import RunData
from .study import label_of, n_seeds
from .tables import Table
from .verdicts import is_variant

SETTINGS = ("data_release", "train_size", "val_size", "test_size", "input", "normalization", "architecture",
            "optimizer", "lr", "batch_size", "epochs", "early_stopping", "schedule", "augmentation",
            "class_weights", "loss", "reported_epoch", "framework", "llm_sample", "llm_query")
LABELS = {"data_release": "data release", "train_size": "train size", "val_size": "val size",
          "test_size": "test size", "input": "input size, channels", "normalization": "normalization",
          "architecture": "architecture", "optimizer": "optimizer", "lr": "learning rate",
          "batch_size": "batch size", "epochs": "epochs", "early_stopping": "early stopping",
          "schedule": "LR schedule", "augmentation": "augmentation", "class_weights": "class weights",
          "loss": "loss", "reported_epoch": "epoch reported", "framework": "framework defaults",
          "llm_sample": "LLM sample", "llm_query": "LLM query"}
LLM_SETTINGS = ("llm_sample", "llm_query")
TRAINING = {"optimizer", "lr", "batch_size", "epochs", "early_stopping", "schedule", "augmentation",
            "class_weights", "loss", "reported_epoch", "framework"}

# Which of the deviations a run records (ferbench/suite/expansion.py) explain a difference in a setting.
DEVIATION_KEYS = {
    "train_size": ("train capped", "--limit", "augmented copies", "face re-detection"),
    "val_size": ("val/test capped", "--limit", "augmented copies", "face re-detection"),
    "test_size": ("val/test capped", "--limit", "augmented copies", "face re-detection"),
    "input": (" px instead of",),
    "architecture": ("ImageNet weights",),
    "epochs": ("epoch",),
    "reported_epoch": ("epoch",),
    "augmentation": ("augmented copies",),
    "llm_sample": ("LLM sample",),
    "llm_query": ("temperature not sent", "completion budget", "reasoning"),
    "data_release": ("augmented copies", "face re-detection"),
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # ferbench.models.adapter's constants (torch-free copy; tested equal)
IMAGENET_STD = (0.229, 0.224, 0.225)
SILENT = "paper silent — ferbench assumes"


# --- values as text: the paper's value and ferbench's are printed by the same functions --------------

def fmt(v) -> str:
    """A setting value in ferbench's terms: 19,137 · 0.001 · 1e-07 · true · 0.5/0.5 · key=value, …"""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "/".join(fmt(x) for x in v)
    if isinstance(v, dict):
        if not v:
            return "none"
        if any(isinstance(x, dict) for x in v.values()):
            return "; ".join(f"{k}: {fmt(x)}" for k, x in v.items())
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
    return str(v)


def fmt_setting(setting: str, v, counts: dict | None = None) -> str:
    """``v`` (a protocol ``value`` or what ran) as the protocol table prints it."""
    if setting in ("train_size", "val_size", "test_size") and counts:
        return f"{fmt(v)} ({', '.join(f'{c} {fmt(n)}' for c, n in counts.items())})"
    if setting == "loss" and isinstance(v, dict):
        return "cross-entropy, " + fmt(v)
    if setting == "reported_epoch" and v in ("best", "last"):
        return "best validation epoch, restored" if v == "best" else "last epoch"
    if setting == "reported_epoch" and isinstance(v, int) and not isinstance(v, bool):
        return f"the model after epoch {fmt(v)}"
    if setting == "framework":
        return {"keras": "keras (keras_defaults on)", "pytorch": "pytorch (keras_defaults off)"}.get(v, fmt(v))
    return fmt(v)


def same(paper, ran) -> bool:
    """Equal in ferbench's terms: numbers to rounding, a one-value list equals a per-channel list of
    that value, a dict compares only the keys the paper gives."""
    if isinstance(paper, dict):
        return isinstance(ran, dict) and all(k in ran and same(x, ran[k]) for k, x in paper.items())
    if isinstance(paper, (list, tuple)) and isinstance(ran, (list, tuple)):
        a, b = list(paper), list(ran)
        if len(a) != len(b) and 1 in (len(a), len(b)):
            a, b = a * len(b) if len(a) == 1 else a, b * len(a) if len(b) == 1 else b
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(paper, bool) or isinstance(ran, bool):
        return paper is ran
    if isinstance(paper, (int, float)) and isinstance(ran, (int, float)):
        return math.isclose(paper, ran, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(paper, str) and isinstance(ran, str):
        return paper.lower() == ran.lower()
    return paper == ran


# --- which protocol row applies to which experiment ---------------------------------------------------

def rows_for_study(base: Baselines, study: str) -> list[ProtocolRow]:
    return [r for r in base.protocol if not r.studies or study in r.studies]


def pick_row(rows: list[ProtocolRow], setting: str, label: str, model: str | None) -> ProtocolRow | None:
    """The row for one experiment: one naming its label, else its model, else one naming no model."""
    rs = [r for r in rows if r.setting == setting]
    for hits in ([r for r in rs if label in (r.models or [])],
                 [r for r in rs if model and model in (r.models or [])],
                 [r for r in rs if not r.models]):
        if hits:
            return hits[0]
    return None


def protocol_baseline(study: StudyMeta, load) -> Baselines | None:
    """The baselines whose protocol covers ``study``: its paper's, or (a study without a paper, such as
    a cross-validation companion) the one whose rows name it under ``studies``."""
    from ..schema.suite import STUDY_NAMES

    if study.paper:
        return load(study.paper)
    for p in STUDY_NAMES:
        base = load(p)
        if base and any(study.name in (r.studies or []) for r in base.protocol):
            return base
    return None


# --- what ran -------------------------------------------------------------------------------------------

@dataclass
class Ran:
    text: str  # ferbench's side as printed
    same: bool | None  # None: nothing to compare (not recorded, not applicable)
    note: str = ""  # the status when ``same`` is None


_INPUT = re.compile(r"^(\d+)x(\d+)x(\d+), (.+)$")
_NUM = r"[-+0-9.e]+"


def parse_input(text: str | None) -> tuple[int, int, list[float], list[float]] | None:
    """(size, channels, mean, std) from a result's ``input`` (``InputSpec.describe()``), None if unreadable."""
    m = _INPUT.match(text or "")
    if not m:
        return None
    size, channels, norm = int(m.group(1)), int(m.group(3)), m.group(4)
    if norm == "x/255":
        return size, channels, [0.0], [1.0]
    if norm == "ImageNet mean/std":
        return size, channels, list(IMAGENET_MEAN), list(IMAGENET_STD)
    if n := re.fullmatch(rf"\(x/255-({_NUM})\)/({_NUM})", norm):
        return size, channels, [float(n.group(1))], [float(n.group(2))]
    if n := re.fullmatch(r"\(x/255-\[(.*)\]\)/\[(.*)\]", norm):
        try:
            return size, channels, [float(x) for x in n.group(1).split(",")], [float(x) for x in n.group(2).split(",")]
        except ValueError:
            return None
    return None


_SUBSAMPLED = re.compile(r"^train subsampled per class: [\d,]+ of ([\d,]+) images")


def _size(setting: str, value, row: ProtocolRow, r) -> Ran:
    part = setting[:-5]
    if r.split is None:
        return Ran("not recorded", None, "not recorded (the experiment did not run)")
    n = r.split.sizes.get(part) or None
    m = r.metrics.get(part) if isinstance(r, ModelResult) else None
    counts = dict(zip(r.split.classes, m.per_class.support)) if m is not None and n else None
    text = fmt_setting(setting, n, counts)
    if row.per_fold and r.fold is not None and r.fold < len(row.per_fold):
        value = row.per_fold[r.fold]  # k-fold sizes differ by one image between folds
    ok = same(value, n)
    if ok and row.class_counts and counts:
        ok = all(counts.get(c) == k for c, k in row.class_counts.items())
    if part == "train":
        full = next((int(g.group(1).replace(",", "")) for g in map(_SUBSAMPLED.match, r.split.notes) if g), None)
        if full is not None:
            text += f"; {fmt(full)} before the per-class cap" + (" (= the paper's)" if same(value, full) else "")
    return Ran(text, ok)


def _input(setting: str, value, r) -> Ran:
    got = parse_input(getattr(r, "input", None)) if isinstance(r, ModelResult) else None
    if got is None:
        raw = getattr(r, "input", None)
        return Ran(raw or "not recorded", None, "not recorded in a form ferbench can compare")
    size, channels, mean, std = got
    if setting == "input":
        ran = {"size": size, "channels": channels}
        return Ran(fmt(ran), same(value, ran))
    ran = {"mean": mean, "std": std}
    imagenet = same(list(IMAGENET_MEAN), mean) and same(list(IMAGENET_STD), std)
    return Ran(fmt(ran) + (" (ImageNet)" if imagenet else ""), same(value, ran))


def _architecture(value, r: ModelResult) -> Ran:
    info = r.model_info
    if r.kind == "load":
        return Ran(f"{r.model or 'a user model'}, loaded from a file ({r.load.file if r.load else 'not recorded'})",
                   None, "not compared: a loaded model")
    pretrained = info is not None and info.pretrained
    used = r.config.pretrained if r.config.pretrained is not None else pretrained
    text = r.model or "not recorded"
    if pretrained:
        text += " with ImageNet weights" if used else " trained from scratch (no ImageNet weights)"
    if info is not None and info.notes:
        text += f": {info.notes}"
    return Ran(text, r.model == value and (used or not pretrained))


def _train(setting: str, value, r: ModelResult) -> Ran:
    t = r.config.train
    if setting in ("optimizer", "lr", "batch_size", "epochs", "class_weights"):
        ran = {k: getattr(t, k) for k in value} if isinstance(value, dict) else getattr(t, setting)
        return Ran(fmt(ran), same(value, ran))
    if setting == "early_stopping":
        keys = ("early_stopping", "monitor", "patience") if t.early_stopping else ("early_stopping",)
        cmp = {k: getattr(t, k) for k in value} if isinstance(value, dict) else None
        return Ran(fmt({k: getattr(t, k) for k in keys}), cmp is not None and same(value, cmp))
    if setting == "schedule":
        plateau_monitor = t.monitor if t.plateau_monitor == "same" else t.plateau_monitor
        full = {"schedule": t.schedule, "plateau_factor": t.plateau_factor, "plateau_patience": t.plateau_patience,
                "min_lr": t.min_lr, "plateau_monitor": plateau_monitor}
        shown = {"plateau": full, "cosine": {"schedule": "cosine", "min_lr": t.min_lr}}.get(t.schedule, "none")
        ok = t.schedule == "none" if value == "none" else isinstance(value, dict) and same(value, full)
        return Ran(fmt(shown), ok)
    if setting == "augmentation":
        online = _non_default(t.augment)
        ran = {"online": online}
        split = r.config.split
        if split.kind == "augmented":
            from ..data.splits import PAPER_AUGMENT  # imports torch: only for augmented splits

            ran["offline"] = {"copies": split.copies, **_non_default(PAPER_AUGMENT)}
        ok = isinstance(value, dict) and _same_augment(value.get("online", {}), t.augment)
        off = value.get("offline") if isinstance(value, dict) else None
        if off is not None or "offline" in ran:  # both must have the offline copies, and the same ones
            ok = ok and off is not None and "offline" in ran and same(off.get("copies"), split.copies) \
                and _same_augment({k: v for k, v in off.items() if k != "copies"}, PAPER_AUGMENT)
        return Ran(fmt(ran), ok)
    if setting == "loss":
        ran = {"label_smoothing": t.label_smoothing, "weight_decay": t.weight_decay}
        return Ran(fmt_setting("loss", ran), same(value, ran))
    if setting == "reported_epoch":
        ran = "best" if t.restore_best else (t.epochs if isinstance(value, int) else "last")
        ok = (not t.restore_best and t.epochs == value) if isinstance(value, int) else same(value, ran)
        return Ran(fmt_setting("reported_epoch", ran), ok)
    if setting == "framework":
        ran = "keras" if t.keras_defaults else "pytorch"
        return Ran(fmt_setting("framework", ran), same(value, ran))
    raise ValueError(f"unknown protocol setting {setting!r}")


def _non_default(a: AugmentConfig) -> dict:
    d = AugmentConfig().model_dump()
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in a.model_dump().items() if v != d[k]}


def _same_augment(paper: dict, ran: AugmentConfig) -> bool:
    try:
        return AugmentConfig.model_validate(paper) == ran
    except ValueError:
        return False


def ferbench_side(setting: str, value, row: ProtocolRow, r) -> Ran:
    """What ``r`` ran for ``setting``, compared with the paper's ``value``."""
    if setting == "llm_sample":
        s = r.config.llm.sample
        ran = {k: getattr(s, k) for k in (value if isinstance(value, dict) else ("split", "per_class"))}
        return Ran(fmt(ran), same(value, ran))
    if setting == "llm_query":
        ep, cfg = r.config.llm_endpoint, r.config.llm
        have = {"model": ep.model, "temperature": ep.temperature, "max_completion_tokens": ep.max_completion_tokens,
                "detail": ep.detail, "prompt": cfg.prompt, "image_size": cfg.image_size}
        ran = {k: have.get(k) for k in (value if isinstance(value, dict) else have)}
        return Ran(fmt(ran), same(value, ran))
    if setting == "data_release":
        split = r.config.split
        keys = list(value) if isinstance(value, dict) else ["kind"]
        ran = {k: (list(v) if isinstance(v := getattr(split, k), tuple) else v) for k in keys}
        return Ran(fmt(ran), same(value, ran))
    if setting in ("train_size", "val_size", "test_size"):
        return _size(setting, value, row, r)
    if setting in ("input", "normalization"):
        return _input(setting, value, r)
    if setting == "architecture":
        return _architecture(value, r)
    if r.kind == "load":
        return Ran("not trained by ferbench (a loaded model)", None, "not applicable: a loaded model")
    return _train(setting, value, r)


def _why(setting: str, r, row: ProtocolRow) -> str:
    why = [d for d in r.deviations if any(k in d for k in DEVIATION_KEYS.get(setting, ()))]
    if row.deviation:
        why.append(f"known deviation: {row.deviation}")
    return "; ".join(why) or "not explained"


def status(setting: str, row: ProtocolRow, ran: Ran, r) -> str:
    if ran.same is None:
        return ran.note
    assumed = row.assumption
    if row.paper is None:
        return f"{SILENT} {assumed or fmt_setting(setting, row.value)}" + \
            ("" if ran.same else f"; this run differs ({_why(setting, r, row)})")
    if ran.same:
        # A known deviation the value cannot express (e.g. no MTCNN re-detection) is still said.
        return "same" + (f" in ferbench terms; known deviation: {row.deviation}" if row.deviation else "") \
            + (f"; where the paper is vague, ferbench assumes {assumed}" if assumed else "")
    return f"differs ({_why(setting, r, row)})" + (f"; ferbench assumes {assumed}" if assumed else "")


def paper_text(row: ProtocolRow) -> str:
    said = row.paper
    return f"{said if said is not None else '(silent)'} — “{row.quote}” ({row.section})"


def paper_terms(setting: str, row: ProtocolRow) -> str:
    if row.per_fold:
        return " / ".join(fmt(v) for v in row.per_fold) + " (folds 1-" + str(len(row.per_fold)) + ")"
    return fmt_setting(setting, row.value, row.class_counts)


# --- the table -----------------------------------------------------------------------------------------

def protocol_table(study: StudyMeta, run: RunData, base: Baselines) -> tuple[Table | None, list[str]]:
    """(the protocol table of ``study``, the evidence notes of its rows); (None, []) without rows."""
    rows = rows_for_study(base, study.name)
    if not rows:
        return None, []
    # A sensitivity sweep's members change one setting on purpose: the table is about the recipe; a CLIP model
    # is not a reproduction of a paper's network (its rows are in the VLM table).
    models = [r for r in run.of_study(study.name)
              if isinstance(r, ModelResult) and not is_variant(r) and r.kind != "clip"]
    llms = [r for r in run.of_study(study.name) if isinstance(r, LLMResult)]
    seeds = n_seeds(models)
    body, evidence, used, explained = [], [], set(), set()
    settings = [s for s in SETTINGS if any(r.setting == s for r in rows)]
    settings += sorted({r.setting for r in rows} - set(settings))  # unknown settings still show
    for setting in settings:
        # a skipped LLM sent no request: its query settings did not run
        results = models if setting not in LLM_SETTINGS else \
            [r for r in llms if setting == "llm_sample" or r.status != "skipped"]
        groups: dict[tuple, list] = {}
        for r in results:
            row = pick_row(rows, setting, r.label, getattr(r, "model", None))
            if row is None:
                ran, st = Ran("–", None), "no protocol row for this model in the baselines"
                key = (None, "–", st)
            else:
                used.add(id(row))
                ran = ferbench_side(setting, row.value, row, r) if setting in SETTINGS else \
                    Ran("not compared", None, f"unknown setting {setting!r}: not compared")
                st = status(setting, row, ran, r)
                key = (id(row), ran.text, st)
            groups.setdefault(key, [row, ran, st, []])[3].append(r)
        for row, ran, st, members in groups.values():
            who = _who(members, results, seeds)
            body.append([LABELS.get(setting, setting), who, paper_text(row) if row else "–",
                         paper_terms(setting, row) if row else "–", ran.text, st])
            if row is not None and row.evidence and id(row) not in explained:
                explained.add(id(row))
                evidence.append(f"{LABELS.get(setting, setting)} ({who}): {row.evidence}")
        for row in rows:  # rows whose experiments are not in this run
            if row.setting == setting and id(row) not in used:
                what = "no LLM in this run" if setting in LLM_SETTINGS else "not in this run"
                body.append([LABELS.get(setting, setting), ", ".join(row.models or []) or "all",
                             paper_text(row), paper_terms(setting, row), what, what])
                if row.evidence:
                    evidence.append(f"{LABELS.get(setting, setting)}: {row.evidence}")
    note = (f"Paper: {base.title}" + (f" [{base.citation.key}]" if base.citation.key else "")
            + ", its words quoted with their section. "
            "'In ferbench terms' is the paper's setting as ferbench names it; 'this run' is read from each "
            "experiment's recorded configuration after profile and command-line overrides, its split sizes "
            "(per class from the evaluated images) and the input its model saw. 'keras_defaults on' means Keras' "
            "initializers, BatchNorm momentum/epsilon, Adam epsilon 1e-7 and ReduceLROnPlateau timing.")
    return Table(f"{study.name}_protocol", "Protocol: the paper's settings beside this run's",
                 ["setting", "models", "paper (quoted, section)", "in ferbench terms", "this run", "status"],
                 body, note), evidence


def _who(members: list, results: list, seeds: int) -> str:
    """'all', or the labels of ``members`` (fold / seed only where a label's runs fall in several groups)."""
    if len(members) == len(results) and len({r.label for r in results}) > 1:
        return "all"
    out = []
    for r in members:
        whole = all(m in members for m in results if m.label == r.label)
        name = r.label if whole else label_of(r, seeds)
        if name not in out:
            out.append(name)
    return ", ".join(out)
