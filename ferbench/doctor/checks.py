"""The checks of ``ferbench doctor``: each returns what it found (one line) or raises (fail) or
:class:`~ferbench.doctor.skip.Skip` (does not apply here, with the reason)."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..engine import (TrainConfig, amp_dtype, compile_unavailable, cpu_bf16_is_fast, cuda_bf16_is_native, fit,
                      measure_inference, predict_proba, seed_everything, synchronize)
from .. import CLASSES
from ..models import create_model
from .skip import Skip

TINY_MODEL = "cnn"  # convolutions (Grad-CAM, channels-last) and dropout (the device generator), no LSTM
TINY_IMAGES = 96
LOAD_FORMATS = ("state_dict", "torchscript", "export", "onnx")
AMP_SETTING = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}


def tiny_data() -> tuple[np.ndarray, np.ndarray]:
    from ..data.synthetic import make_synthetic

    d = make_synthetic(TINY_IMAGES, seed=0)
    return d.images, d.labels


def _fit(device, cfg: TrainConfig, images, labels, seed: int = 0, checkpoint=None):
    seed_everything(seed)
    m = create_model(TINY_MODEL)
    r = fit(m, images, labels, images[:32], labels[:32], cfg, device=device, seed=seed, checkpoint=checkpoint)
    return m, r


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def device_and_precision(device: torch.device) -> str:
    dtype = amp_dtype(TrainConfig(), device, TINY_MODEL)
    amp = "fp32" if dtype is None else str(dtype).removeprefix("torch.")
    if device.type == "cuda":
        cap = torch.cuda.get_device_capability(device)
        why = (f"compute capability {cap[0]}.{cap[1]}: " + ("bf16 tensor cores (Ampere or later)" if cuda_bf16_is_native(device)
               else "no native bf16 (before Ampere): fp16 with loss scaling"))
        return f"{torch.cuda.get_device_name(device)}; amp: auto trains in {amp} ({why})"
    if device.type == "mps":
        return f"Apple MPS; amp: auto trains in {amp} (autocast on MPS is not used by ferbench)"
    return (f"CPU, {torch.get_num_threads()} thread(s); amp: auto trains in {amp} ("
            + ("AMX bf16" if cpu_bf16_is_fast() else "no AMX bf16, or FERBENCH_CPU_BF16=0") + ")")


def precisions(device: torch.device) -> list[tuple[str, bool]]:
    """The training precisions to check: (name, required). A precision amp: auto may choose is required."""
    if device.type == "cuda":
        return [("fp32", True), ("fp16", True), ("bf16", cuda_bf16_is_native(device))]
    if device.type == "mps":
        return [("fp32", True), ("fp16", False)]
    return [("fp32", True), ("bf16", cpu_bf16_is_fast())]


def train_step(device: torch.device, prec: str, images, labels) -> str:
    if device.type == "cuda" and prec == "bf16" and not cuda_bf16_is_native(device):
        raise Skip("no native bf16 on this GPU (emulated: slower than fp16); amp: auto uses fp16")
    cfg = TrainConfig(epochs=1, batch_size=32, amp=AMP_SETTING[prec])
    _, r = _fit(device, cfg, images, labels)
    loss = r.history[0]["train_loss"]
    if not np.isfinite(loss):
        raise RuntimeError(f"training loss is {loss} under {prec}")
    if (r.autocast or "fp32") != {"fp32": "fp32", "bf16": "bfloat16", "fp16": "float16"}[prec]:
        raise RuntimeError(f"asked for {prec}, fit recorded {r.autocast or 'fp32'}")
    return f"one epoch of {TINY_MODEL}: loss {loss:.3f}, {r.history[0]['seconds']:.2f} s"


class _Killed(Exception):
    pass


def _kill_at(epoch: int):
    def on_epoch(rec):
        if rec["epoch"] == epoch:  # before this epoch's checkpoint is written: as a kill here would
            raise _Killed
    return on_epoch


def resume(device: torch.device, images, labels) -> str:
    """Kill during epoch 2 of 3, resume from the checkpoint: the same losses and weights as a run
    never interrupted."""
    from ..store import Checkpoint

    cfg = TrainConfig(epochs=3, batch_size=32, schedule="cosine", deterministic=True, restore_best=False,
                      augment={"rotation": 10, "shift": 0.1, "flip": True})
    ref, r_ref = _fit(device, cfg, images, labels, seed=3)
    with tempfile.TemporaryDirectory(prefix="ferbench-doctor-") as tmp:
        ck = Checkpoint(Path(tmp) / "ck.pt")
        seed_everything(3)
        try:
            fit(create_model(TINY_MODEL), images, labels, images[:32], labels[:32], cfg, device=device, seed=3,
                checkpoint=ck, on_epoch=_kill_at(2))
        except _Killed:
            pass
        got, r = _fit(device, cfg, images, labels, seed=3, checkpoint=ck)
    if r.resumed_from_epoch != 1:
        raise RuntimeError(f"did not resume ({r.checkpoint_discarded or 'no checkpoint found'})")
    loss_diff = max(abs(a[k] - b[k]) for a, b in zip(r_ref.history, r.history) for k in ("train_loss", "val_loss"))
    weights = max(_max_diff(a.cpu(), b.cpu()) for a, b in zip(ref.state_dict().values(), got.state_dict().values()))
    if loss_diff > 1e-6 or weights > 1e-6:
        raise RuntimeError(f"the resumed run differs from the uninterrupted one: losses by {loss_diff:.2e}, "
                           f"weights by {weights:.2e}")
    return (f"killed in epoch 2 of 3, resumed: losses and weights equal the uninterrupted run's "
            f"(max difference {max(loss_diff, weights):.1e})")


def _tiny_eval_model(device):
    seed_everything(0)
    return create_model(TINY_MODEL).eval().to(device)


def _write_format(model, fmt: str, folder: Path) -> dict:
    """Save ``model`` in ``fmt``; the suite's ``model:`` block that loads it."""
    import warnings

    net, x = model.net.cpu().eval(), torch.zeros(2, 1, 48, 48)
    inp = {"size": 48, "channels": 1, "mean": [0.0], "std": [1.0]}
    if fmt == "state_dict":
        torch.save({"state_dict": model.cpu().state_dict(), "model": TINY_MODEL, "classes": list(CLASSES)},
                   folder / "m.pt")
        return {"name": TINY_MODEL, "checkpoint": str(folder / "m.pt")}
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated, still supported (docs/gpu.md)
            torch.jit.save(torch.jit.trace(net, x), str(folder / "m.ts"))
        return {"load": str(folder / "m.ts"), "input": inp}
    if fmt == "export":
        ep = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(ep, str(folder / "m.pt2"))
        return {"load": str(folder / "m.pt2"), "input": inp}
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        raise Skip("onnx/onnxruntime not installed: pip install 'ferbench[onnx]'") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated, and 3x faster here
        torch.onnx.export(net, (x,), str(folder / "m.onnx"), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
    return {"load": str(folder / "m.onnx"), "input": inp}


def load_format(device: torch.device, fmt: str, images) -> str:
    """Save the tiny model in ``fmt``, load it as a suite would, evaluate on the device: its class
    probabilities must match the eager model's."""
    from ..models.loading import load_user_model, runs_on_cpu_only
    from ..schema.suite import UserModelConfig

    model = _tiny_eval_model(torch.device("cpu"))
    want = predict_proba(model, images, torch.device("cpu"))
    with tempfile.TemporaryDirectory(prefix="ferbench-doctor-") as tmp:
        block = _write_format(model, fmt, Path(tmp))
        loaded = load_user_model(UserModelConfig(**block), tuple(CLASSES), probe_images=images[:8])
        where = torch.device("cpu") if runs_on_cpu_only(loaded.model, device) else device
        got = predict_proba(loaded.model, images, where)
    diff = _max_diff(got, want)
    if diff > 2e-3:  # fp32 everywhere; TF32 convolutions on a GPU stay well inside this
        raise RuntimeError(f"{fmt} model's probabilities on {where} differ from the eager model's by {diff:.2e}")
    return f"evaluated on {where}" + ("" if where == device else " (onnxruntime has no provider for it)") + \
        f"; probabilities within {diff:.1e} of the eager model's"


def compile_check(device: torch.device, images, labels) -> str:
    why = compile_unavailable(device)
    if why:
        raise Skip(why + "; compile: true trains eagerly here and says so")
    m = _tiny_eval_model(device)
    x = torch.from_numpy(images[:32]).float().div(255).unsqueeze(1).to(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        got = torch.compile(m)(x)
        want = m(x)
    diff = _max_diff(got.cpu(), want.cpu())
    if diff > 1e-3:
        raise RuntimeError(f"compiled outputs differ from eager ones by {diff:.2e}")
    return f"compiled in {time.perf_counter() - t0:.1f} s; outputs within {diff:.1e} of eager"


def augmentation(device: torch.device) -> str:
    """The device's warp of one seed's parameters against the CPU's."""
    from ..augment import augment_batch
    from ..schema.train import AugmentConfig

    cfg = AugmentConfig(rotation=15, shift=0.1, zoom=0.1, shear=5, flip=True, crop_scale=(0.8, 1.0))
    x = torch.rand(64, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    cpu = augment_batch(x, cfg, torch.Generator().manual_seed(1))
    dev = augment_batch(x.to(device), cfg, torch.Generator().manual_seed(1)).cpu()
    diff = _max_diff(dev, cpu)
    if diff > 1e-4:
        raise RuntimeError(f"augmentation on {device} differs from the CPU's by {diff:.2e} for the same seed")
    return f"one seed gives the CPU's warps on {device} (max difference {diff:.1e})"


def timing(device: torch.device) -> str:
    m = _tiny_eval_model(device)
    synchronize(device)
    r = measure_inference(m, device, batch_size=64, iters=5, warmup=2)
    if not (r["ms_per_image"] > 0 and np.isfinite(r["ms_per_image"])):
        raise RuntimeError(f"implausible timing {r}")
    return f"{r['ms_per_image']:.3f} ms/image at batch 64, timed between device synchronizations"


def gradcam_check(device: torch.device, images) -> str:
    from ..gradcam import gradcam

    m = _tiny_eval_model(device)
    preds = predict_proba(m, images[:7], device).argmax(1)
    cams = gradcam(m, images[:7], device, classes=preds)
    if cams is None or cams.shape != (7, 48, 48) or not np.isfinite(cams).all() or cams.min() < 0 or cams.max() > 1:
        raise RuntimeError(f"heatmaps of shape {None if cams is None else cams.shape} outside [0, 1] or not finite")
    return "7 heatmaps in [0, 1] for the predicted classes"


def largest_paper_experiment():
    """The train experiment of suites/papers.yaml (paper profile) with the most parameters times input
    pixels: the one most likely to run out of memory. None outside a source checkout."""
    from ..models import count_parameters, model_info
    from ..suite import expand, load_suite

    suite = Path(__file__).resolve().parents[2] / "suites" / "papers.yaml"
    if not suite.is_file():
        return None
    best, size = None, -1
    sizes: dict = {}
    for exp in expand(load_suite(suite), "paper"):
        if exp.kind != "train":
            continue
        if exp.model not in sizes:
            with torch.device("meta"):
                kw = {"pretrained": False} if model_info(exp.model).pretrained else {}
                sizes[exp.model] = count_parameters(create_model(exp.model, **kw, **exp.model_args))
        px = (exp.train.input_size or model_info(exp.model).input.size) ** 2
        if sizes[exp.model] * px * exp.train.batch_size > size:
            best, size = exp, sizes[exp.model] * px * exp.train.batch_size
    return best


def memory_headroom(device: torch.device) -> str:
    """One training step of the largest paper experiment at its batch size and precision: the peak
    memory against what the device has."""
    if device.type == "cpu":
        raise Skip("host memory: the CPU path pages rather than failing; nothing to measure here")
    if device.type == "mps" and not hasattr(torch.mps, "recommended_max_memory"):
        raise Skip(f"torch {torch.__version__} does not report MPS memory limits (torch.mps.recommended_max_memory)")
    exp = largest_paper_experiment()
    if exp is None:
        raise Skip("suites/papers.yaml not found (an installed package): no paper batch sizes to check")
    from ..engine import model_amp_dtype, prepare_model

    kw = {"pretrained": False} if _pretrained(exp.model) else {}  # the same memory without a download
    m = prepare_model(create_model(exp.model, num_classes=7, **kw, **exp.model_args), exp.train, device).train()
    dtype = model_amp_dtype(exp.train, device, m)
    x = torch.rand(exp.train.batch_size, 1, 48, 48, device=device)
    y = torch.randint(0, 7, (exp.train.batch_size,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        loss = torch.nn.functional.cross_entropy(m(x).float(), y)
    loss.backward()
    synchronize(device)
    if device.type == "cuda":
        peak, total = torch.cuda.max_memory_allocated(device), torch.cuda.mem_get_info(device)[1]
    else:
        peak, total = torch.mps.driver_allocated_memory(), torch.mps.recommended_max_memory()
    what = (f"{exp.model} at batch {exp.train.batch_size}, {m.spec.size} px: peak {peak / 2**30:.1f} GiB of "
            f"{total / 2**30:.1f} GiB")
    if peak > 0.9 * total:
        raise RuntimeError(what + ": under 10 % headroom; lower batch_size or input_size in the profile")
    return what


def _pretrained(name: str) -> bool:
    from ..models import model_info

    return model_info(name).pretrained


def ray_placement(device: torch.device) -> str:
    """One GPU task per visible GPU, all at once, as ``--executor ray`` submits them: each must land on
    its own device."""
    if device.type != "cuda":
        raise Skip(f"no CUDA GPU on {device.type}: Ray places GPU tasks only on CUDA devices")
    try:
        import ray
    except ImportError:
        raise Skip("Ray is not installed: pip install 'ferbench[ray]'") from None
    n = torch.cuda.device_count()
    owned = not ray.is_initialized()
    if owned:
        ray.init(address="local", num_gpus=n, num_cpus=max(n, 1), include_dashboard=False, logging_level="ERROR")
    try:
        @ray.remote(num_gpus=1, max_calls=1, max_retries=0)
        def where():
            import torch as t

            time.sleep(2)  # overlap: all tasks hold their GPU at the same time
            return t.cuda.get_device_properties(0).uuid, os.environ.get("CUDA_VISIBLE_DEVICES")

        got = ray.get([where.remote() for _ in range(n)], timeout=120)
    finally:
        if owned:
            ray.shutdown()
    uuids = {str(u) for u, _ in got}
    if len(uuids) != n:
        raise RuntimeError(f"{n} concurrent GPU tasks landed on {len(uuids)} distinct GPU(s): {got}")
    return f"{n} concurrent task(s) on {n} distinct GPU(s) (CUDA_VISIBLE_DEVICES {', '.join(v or '?' for _, v in got)})"
