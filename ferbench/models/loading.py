"""Loading models instead of training them: ferbench checkpoints, state dicts of registered
architectures, and users' own TorchScript, ``torch.export`` or ONNX files.

Every loaded model is wrapped like a registered one (input adaptation from its declared spec, on the
device) and checked with a dry forward pass before evaluation, so a bad file fails with one clear
message: not found, unreadable, wrong number of classes, or input shape mismatch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ModelLoadError
from ..labels import canonical_class
from .adapter import FERModel, InputSpec
from ._registry import create_model, list_models, model_info


class OnnxModule(nn.Module):
    """Runs an ONNX graph through onnxruntime on the CPU (inference only)."""

    def __init__(self, path: Path):
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelLoadError(f"{path}: ONNX models need onnxruntime: pip install 'ferbench[onnx]'") from None
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"{path}: not a readable ONNX model: {exc}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(np.asarray(out)).to(x.device)


def runs_on_cpu_only(model: FERModel) -> bool:
    return any(isinstance(m, OnnxModule) for m in model.modules())


class ExportedModule(nn.Module):
    """A ``torch.export`` program. It is kept out of the module tree because exported programs
    refuse ``.train()``/``.eval()``, which evaluation calls on the whole model."""

    def __init__(self, program):
        super().__init__()
        self.__dict__["program"] = program

    def forward(self, x):
        return self.program(x)


class ClassRemap(nn.Module):
    """Reorders (and, for a class subset, selects) a model's outputs into the study's class order."""

    def __init__(self, net: nn.Module, index: list[int]):
        super().__init__()
        self.net = net
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)

    def forward(self, x):
        return self.net(x).index_select(1, self.index)


def class_index(model_classes: list[str], study_classes: tuple[str, ...], where: str) -> list[int] | None:
    """Positions of the study's classes among the model's outputs (None if already identical)."""
    canon = [canonical_class(c) for c in model_classes]
    if None in canon:
        bad = model_classes[canon.index(None)]
        raise ModelLoadError(f"{where}: unknown class {bad!r} in the model's class order")
    missing = [c for c in study_classes if c not in canon]
    if missing:
        raise ModelLoadError(f"{where}: the model does not predict {', '.join(missing)}, which this study needs")
    idx = [canon.index(c) for c in study_classes]
    return None if idx == list(range(len(canon))) else idx


def _torch_load(path: Path, where: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"{where}: cannot read {path} as a PyTorch checkpoint: {exc}") from None


def load_user_model(cfg, study_classes: tuple[str, ...]) -> FERModel:
    """Build a FERModel from a suite's ``model: {load: ...}`` or ``{name: ..., checkpoint: ...}`` block."""
    path = Path(cfg.load or cfg.checkpoint)
    where = f"model file {path}"
    if not path.is_file():
        raise ModelLoadError(f"{where} not found")
    classes = list(cfg.classes) if cfg.classes else list(study_classes)
    spec = InputSpec(cfg.input.size, cfg.input.channels, tuple(cfg.input.mean), tuple(cfg.input.std)) \
        if cfg.input else None
    if cfg.name:  # a registered architecture's state dict (ferbench's model.pt included)
        if cfg.name not in list_models():
            raise ModelLoadError(f"{where}: unknown architecture {cfg.name!r}")
        ck = _torch_load(path, where)
        state = ck.get("state_dict", ck) if isinstance(ck, dict) else None
        if not isinstance(state, dict):
            raise ModelLoadError(f"{where}: expected a state dict (or ferbench's model.pt)")
        if isinstance(ck, dict) and "classes" in ck and not cfg.classes:
            classes = list(ck["classes"])
        model = create_model(cfg.name, num_classes=len(classes),
                             **({"pretrained": False} if model_info(cfg.name).pretrained else {}),
                             **(ck.get("model_args", {}) if isinstance(ck, dict) else {}))
        if isinstance(ck, dict) and ck.get("input"):
            model.set_input_size(ck["input"]["size"]) if ck["input"]["size"] != model.spec.size else None
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise ModelLoadError(f"{where}: does not fit {cfg.name} with {len(classes)} classes: {first}") from None
        net, spec = model.net, spec or model.spec
    else:
        if spec is None:
            raise ModelLoadError(f"{where}: declare the model's input (size, channels, mean, std) under 'input:'")
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            net = OnnxModule(path)
        elif suffix == ".pt2":
            try:
                net = ExportedModule(torch.export.load(str(path)).module())
            except Exception as exc:
                raise ModelLoadError(f"{where}: not a readable torch.export program: {exc}") from None
        else:
            try:
                net = torch.jit.load(str(path), map_location="cpu")
            except Exception as exc:
                raise ModelLoadError(f"{where}: not a readable TorchScript file ({exc.__class__.__name__}); "
                                     "save with torch.jit.save, torch.export.save (.pt2) or export to .onnx") from None
    model = FERModel(net, spec, name=cfg.name or path.stem, num_classes=len(classes))
    _dry_run(model, len(classes), where)
    idx = class_index(classes, study_classes, where)
    if idx is not None:
        model = FERModel(ClassRemap(net, idx), spec, name=model.name, num_classes=len(study_classes))
    return model.eval()


@torch.no_grad()
def _dry_run(model: FERModel, n_classes: int, where: str) -> None:
    """One forward pass on three blank images before any evaluation starts (three: an export with a
    fixed batch size, usually 1 or 2, is caught here rather than mid-evaluation)."""
    try:
        out = model.eval()(torch.zeros(3, 1, 48, 48))
    except Exception as exc:
        spec = model.spec
        raise ModelLoadError(f"{where}: input shape mismatch: the declared input {spec.size}x{spec.size}x"
                             f"{spec.channels} does not fit the model ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]}); exported models need a dynamic batch "
                             "dimension") from None
    if out.ndim != 2 or out.shape[0] != 3:
        raise ModelLoadError(f"{where}: expected outputs of shape (batch, classes); got {tuple(out.shape)}")
    if out.shape[1] != n_classes:
        raise ModelLoadError(f"{where}: wrong number of classes: the model outputs {out.shape[1]} scores but "
                             f"{n_classes} classes are declared")
