"""Loading models instead of training them: ferbench checkpoints, state dicts of registered
architectures, and users' own TorchScript, ``torch.export`` or ONNX files.

Every loaded model is wrapped like a registered one (input adaptation from its declared spec, on the
device) and checked with a dry forward pass before evaluation, so a bad file fails with one clear
message: not found, unreadable, wrong number of classes, wrong layout or input shape. The dry pass
also tells what the model outputs (logits, probabilities or log-probabilities) unless the suite
says so, so probabilities are never put through a softmax a second time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ModelLoadError
from ..vocabulary import vocab_class
from .adapter import FERModel, InputSpec, image_batch
from ._registry import count_parameters, create_model, list_models, model_info


CUDA_PROVIDER = "CUDAExecutionProvider"


def onnx_providers(device: torch.device) -> list[str]:
    """onnxruntime's execution providers for a torch device: CUDA's where the installed onnxruntime has
    it (the onnxruntime-gpu wheel), else the CPU's."""
    import onnxruntime as ort

    if device.type == "cuda" and CUDA_PROVIDER in ort.get_available_providers():
        return [CUDA_PROVIDER, "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxModule(nn.Module):
    """Runs an ONNX graph through onnxruntime (inference only), on the GPU where onnxruntime has a CUDA
    provider and the model was moved to a CUDA device, else on the CPU."""

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
        self._sessions = {"cpu": self.session}
        inp = self.session.get_inputs()[0]
        self.input_name, self.input_shape = inp.name, list(inp.shape)
        self.path = path
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)

    def session_for(self, device: torch.device):
        key = "cuda" if onnx_providers(device)[0] == CUDA_PROVIDER else "cpu"
        if key not in self._sessions:
            import onnxruntime as ort

            self._sessions[key] = ort.InferenceSession(str(self.path), providers=onnx_providers(device))
        return self._sessions[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        session = self.session_for(x.device)
        out = session.run(None, {self.input_name: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(np.asarray(out)).to(x.device)

    def parameter_count(self) -> int:
        """Elements of the graph's floating-point initializers (an ONNX file's weights; integer
        initializers are shapes and indices, not parameters)."""
        try:
            import onnx
        except ImportError:
            return 0
        floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
        graph = onnx.load(str(self.path), load_external_data=False).graph
        return int(sum(np.prod(t.dims, dtype=np.int64) for t in graph.initializer if t.data_type in floats))


def runs_on_cpu_only(model: FERModel, device: torch.device) -> bool:
    """An ONNX model that onnxruntime can only run on the CPU, whatever ``device`` is."""
    return any(isinstance(m, OnnxModule) for m in model.modules()) and onnx_providers(device)[0] != CUDA_PROVIDER


class ExportedModule(nn.Module):
    """A ``torch.export`` program, registered as a submodule so ``.to(device)`` moves its weights.
    Exported programs refuse ``.train()``/``.eval()`` (their graph is fixed in the mode it was exported
    in), which evaluation calls on the whole model: they stop here instead of reaching the program."""

    def __init__(self, program):
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> "ExportedModule":
        self.training = mode
        return self

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


class ChannelsLastInput(nn.Module):
    """Feeds an NHWC model (e.g. a Keras model exported with tf2onnx) from ferbench's NCHW batches."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.permute(0, 2, 3, 1).contiguous())


def class_index(model_classes: list[str], study_classes: tuple[str, ...], where: str) -> list[int] | None:
    """Positions of the study's classes among the model's outputs (None if already identical)."""
    canon = [vocab_class(c) for c in model_classes]
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


@dataclass
class LoadedModel:
    """A model ready for evaluation and what loading found out about it (recorded in result.json)."""
    model: FERModel
    format: str  # torchscript | export | onnx | state_dict
    outputs: str  # logits | probabilities | log_probabilities
    outputs_detected: bool
    layout: str = "NCHW"
    parameters: tuple[int, int, str] = (0, 0, "module parameters")  # total, trainable, counted from
    gradcam: str | None = None  # why Grad-CAM cannot be computed, or None if it can
    notes: list[str] = field(default_factory=list)


def _state_dict_model(cfg, path: Path, where: str, classes: list[str]) -> tuple[FERModel, list[str]]:
    if cfg.name not in list_models():
        raise ModelLoadError(f"{where}: unknown architecture {cfg.name!r}")
    ck = _torch_load(path, where)
    state = ck.get("state_dict", ck) if isinstance(ck, dict) else None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{where}: expected a state dict (or ferbench's model.pt)")
    if isinstance(ck, dict) and isinstance(ck.get("classes"), list) and not cfg.classes:
        classes = [str(c) for c in ck["classes"]]
    model_args = ck.get("model_args", {}) if isinstance(ck, dict) and isinstance(ck.get("model_args"), dict) else {}
    model = create_model(cfg.name, num_classes=len(classes),
                         **({"pretrained": False} if model_info(cfg.name).pretrained else {}), **model_args)
    size = ck.get("input", {}).get("size") if isinstance(ck, dict) and isinstance(ck.get("input"), dict) else None
    if isinstance(size, int) and size != model.spec.size:
        model.set_input_size(size)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelLoadError(f"{where}: does not fit {cfg.name} with {len(classes)} classes: {first}") from None
    return model, classes


def _file_net(path: Path, where: str) -> tuple[nn.Module, str]:
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return OnnxModule(path), "onnx"
    if suffix == ".pt2":
        try:
            return ExportedModule(torch.export.load(str(path)).module()), "export"
        except Exception as exc:
            raise ModelLoadError(f"{where}: not a readable torch.export program: {exc}") from None
    try:
        return torch.jit.load(str(path), map_location="cpu"), "torchscript"
    except Exception as exc:
        raise ModelLoadError(f"{where}: not a readable TorchScript file ({exc.__class__.__name__}); "
                             "save with torch.jit.save, torch.export.save (.pt2) or export to .onnx") from None


def _parameter_count(net: nn.Module, fmt: str) -> tuple[int, int, str]:
    if fmt == "onnx":
        n = net.parameter_count()
        return n, 0, "ONNX initializers"
    if fmt == "export":
        n = sum(p.numel() for p in net.program.parameters())
        return n, 0, "exported program parameters"
    n = count_parameters(net)
    return n, (count_parameters(net, trainable_only=True) if fmt == "state_dict" else 0), "module parameters"


def _onnx_layout(net: nn.Module, spec: InputSpec, declared: str, where: str) -> str:
    """The layout an ONNX graph declares for its input, checked against the suite's declaration."""
    shape = getattr(net, "input_shape", None)
    if not shape or len(shape) != 4:
        return "NCHW" if declared == "auto" else declared
    nhwc = shape[3] == spec.channels and shape[1] == shape[2] and shape[1] != spec.channels
    found = "NHWC" if nhwc else "NCHW"
    if declared != "auto" and declared != found:
        raise ModelLoadError(f"{where}: the suite declares layout {declared} but the ONNX input is {shape}, "
                             f"which is {found} (N, {'H, W, C' if nhwc else 'C, H, W'}); fix 'layout:' or the export")
    return found


def detect_outputs(scores: torch.Tensor) -> str:
    """What a model's raw outputs are, from a batch of them."""
    s = scores.double()
    if s.min() >= 0 and s.max() <= 1 and torch.allclose(s.sum(1), torch.ones(len(s), dtype=s.dtype), atol=1e-3):
        return "probabilities"
    if s.max() <= 0 and torch.allclose(torch.logsumexp(s, 1), torch.zeros(len(s), dtype=s.dtype), atol=1e-3):
        return "log_probabilities"
    return "logits"


def load_user_model(cfg, study_classes: tuple[str, ...], probe_images: np.ndarray | None = None) -> LoadedModel:
    """Build a model from a suite's ``model: {load: ...}`` or ``{name: ..., checkpoint: ...}`` block.

    ``probe_images`` (uint8 N x 48 x 48, a few test images) are what the output kind is detected on.
    """
    path = Path(cfg.load or cfg.checkpoint)
    where = f"model file {path}"
    if not path.is_file():
        raise ModelLoadError(f"{where} not found")
    classes = list(cfg.classes) if cfg.classes else list(study_classes)
    spec = InputSpec(cfg.input.size, cfg.input.channels, tuple(cfg.input.mean), tuple(cfg.input.std)) \
        if cfg.input else None
    layout, notes = "NCHW", []
    if cfg.name:  # a registered architecture's state dict (ferbench's model.pt included)
        model, classes = _state_dict_model(cfg, path, where, classes)
        net, spec, fmt = model.net, spec or model.spec, "state_dict"
    else:
        if spec is None:
            raise ModelLoadError(f"{where}: declare the model's input (size, channels, mean, std) under 'input:'")
        net, fmt = _file_net(path, where)
        layout = _onnx_layout(net, spec, cfg.layout, where) if fmt == "onnx" else \
            ("NCHW" if cfg.layout == "auto" else cfg.layout)
        if layout == "NHWC":
            net = ChannelsLastInput(net)
            notes.append(f"the model takes NHWC input ({spec.size}x{spec.size}x{spec.channels} last-dim channels); "
                         "ferbench transposes its NCHW batches for it")
    params = _parameter_count(net.net if isinstance(net, ChannelsLastInput) else net, fmt)
    model = FERModel(net, spec, name=cfg.name or path.stem, num_classes=len(classes))
    scores = _dry_run(model, len(classes), where, layout, probe_images)
    outputs, detected = (detect_outputs(scores), True) if cfg.outputs == "auto" else (cfg.outputs, False)
    idx = class_index(classes, study_classes, where)
    if idx is not None:
        model = FERModel(ClassRemap(net, idx), spec, name=model.name, num_classes=len(study_classes))
    model.outputs = outputs
    convs = any(isinstance(m, nn.Conv2d) for m in net.modules()) if fmt == "state_dict" else False
    why = None if convs else ("the architecture has no convolution" if fmt == "state_dict" else
                              f"a {fmt} file cannot be hooked for activations and gradients "
                              "(Grad-CAM needs an eager torch module; load a state dict of the architecture for it)")
    return LoadedModel(model.eval(), fmt, outputs, detected, layout, params, why, notes)


@torch.no_grad()
def _dry_run(model: FERModel, n_classes: int, where: str, layout: str, probe: np.ndarray | None) -> torch.Tensor:
    """Forward passes before any evaluation starts: three blank images (an export with a fixed batch
    size, usually 1 or 2, is caught here rather than mid-evaluation), then the probe images."""
    spec = model.spec
    try:
        out = model.eval()(torch.zeros(3, 1, 48, 48))
    except Exception as exc:
        message = str(exc).strip()[:2000]
        single_ok = False
        try:
            model(torch.zeros(1, 1, 48, 48))
            single_ok = True
        except Exception:
            pass
        if single_ok:
            raise ModelLoadError(f"{where}: the model accepts one image at a time but not a batch of 3: exported "
                                 f"models need a dynamic batch dimension ({type(exc).__name__}: {message})") from None
        other = "NHWC (N, H, W, C)" if layout == "NCHW" else "NCHW (N, C, H, W)"
        raise ModelLoadError(f"{where}: the model does not accept the declared input {spec.size}x{spec.size}x"
                             f"{spec.channels} in {layout} layout (if it expects {other}, say 'layout:' in the "
                             f"suite). The runtime said: {type(exc).__name__}: {message}") from None
    if out.ndim != 2 or out.shape[0] != 3:
        raise ModelLoadError(f"{where}: expected outputs of shape (batch, classes); got {tuple(out.shape)}")
    if out.shape[1] != n_classes:
        raise ModelLoadError(f"{where}: wrong number of classes: the model outputs {out.shape[1]} scores but "
                             f"{n_classes} classes are declared")
    if probe is not None and len(probe):
        out = torch.cat([out, model(image_batch(np.asarray(probe)).float().div(255))])
    return out.float()
