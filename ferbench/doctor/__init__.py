"""``ferbench doctor``: every device-dependent path of ferbench, exercised on one device in about a minute.

Each check runs the library's own code (fit, the checkpoint, the loaders, augmentation, Grad-CAM, timing)
on a tiny synthetic set and compares what it gets with a reference: a resumed run with an uninterrupted
one, each load format's outputs with the eager model's, the device's augmentation with the CPU's. A row
says pass, fail or skipped, why, and how long it took; the command exits 0 only when every required
check passes. Run it on a GPU machine before a long run (docs/gpu.md).
"""
from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass
from typing import Callable

from .skip import Skip


@dataclass
class Check:
    name: str
    status: str  # pass | fail | skipped
    why: str
    seconds: float
    required: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class DoctorReport:
    device: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks if c.required)

    def as_dict(self) -> dict:
        return {"device": self.device, "ok": self.ok, "checks": [c.as_dict() for c in self.checks]}


def _run(name: str, fn: Callable[[], str], required: bool = True) -> Check:
    t0 = time.perf_counter()
    try:
        status, why = "pass", fn()
    except Skip as exc:
        status, why = "skipped", str(exc)
    except Exception as exc:  # a failing path is what the doctor reports, in one line
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        status, why = "fail", f"{type(exc).__name__}: {first}"
        if not first:
            why += " " + traceback.format_exc(limit=2).splitlines()[-1]
    return Check(name, status, why, round(time.perf_counter() - t0, 3), required)


def run_doctor(pref: str = "auto", progress: Callable[[str], None] | None = None) -> DoctorReport:
    """Every check on the device ``pref`` selects; a device that cannot be selected is the one failure."""
    from ..engine import apply_determinism, select_device

    try:
        device = select_device(pref)
    except RuntimeError as exc:
        return DoctorReport(pref, [Check("device", "fail", str(exc), 0.0)])
    from .checks import tiny_data

    images, labels = tiny_data()
    checks = []
    for name, fn, required in _plan(device, images, labels):
        if progress:
            progress(name)
        checks.append(_run(name, fn, required))
    apply_determinism(False, device)  # the resume check ran deterministically: leave the process as it was
    return DoctorReport(str(device), checks)


def _plan(device, images, labels) -> list[tuple[str, Callable[[], str], bool]]:
    from . import checks as dc

    plan = [("device and precision", lambda: dc.device_and_precision(device), True)]
    for prec, required in dc.precisions(device):
        plan.append((f"training step ({prec})", (lambda p=prec: dc.train_step(device, p, images, labels)), required))
    plan += [
        ("checkpoint, kill, resume", lambda: dc.resume(device, images, labels), True),
        *[(f"load {fmt}", (lambda f=fmt: dc.load_format(device, f, images)), fmt != "onnx")
          for fmt in dc.LOAD_FORMATS],
        ("compile", lambda: dc.compile_check(device, images, labels), False),
        ("augmentation", lambda: dc.augmentation(device), True),
        ("synchronized timing", lambda: dc.timing(device), True),
        ("Grad-CAM", lambda: dc.gradcam_check(device, images), True),
        ("memory headroom", lambda: dc.memory_headroom(device), True),
        ("Ray GPU placement", lambda: dc.ray_placement(device), False),
    ]
    return plan
