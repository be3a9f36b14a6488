"""``ferbench doctor``: its CPU run passes here, a failing required check fails the command."""
import json

import pytest
from click.testing import CliRunner

from ferbench import doctor
from ferbench.cli import main
from ferbench.doctor import checks

REQUIRED = {"device and precision", "training step (fp32)", "checkpoint, kill, resume", "load state_dict",
            "load torchscript", "load export", "augmentation", "synchronized timing", "Grad-CAM", "memory headroom"}


@pytest.mark.slow  # about 15-40 s on the 2-core CPU (a first torch.compile takes most of it)
def test_doctor_passes_on_this_cpu():
    r = CliRunner().invoke(main, ["doctor", "--device", "cpu", "--json"])
    rep = json.loads(r.output[r.output.index("{"):])
    assert r.exit_code == 0, rep
    rows = {c["name"]: c for c in rep["checks"]}
    assert REQUIRED <= set(rows)
    assert all(rows[n]["status"] in ("pass", "skipped") and rows[n]["why"] for n in rows)
    assert rows["checkpoint, kill, resume"]["status"] == "pass"
    assert sum(c["seconds"] for c in rep["checks"]) < 120


def test_a_failing_required_check_fails_the_command(monkeypatch):
    def broken(device):
        raise RuntimeError("augmentation on cpu differs from the CPU's by 1e-1")

    fast = {name: (lambda *a, **k: "ok") for name in ("train_step", "resume", "load_format", "timing", "gradcam_check",
                                                       "compile_check", "memory_headroom", "ray_placement")}
    for name, fn in fast.items():
        monkeypatch.setattr(checks, name, fn)
    monkeypatch.setattr(checks, "augmentation", broken)
    r = CliRunner().invoke(main, ["doctor", "--device", "cpu", "--json"])
    rep = json.loads(r.output[r.output.index("{"):])
    assert r.exit_code == 1 and not rep["ok"]
    row = next(c for c in rep["checks"] if c["name"] == "augmentation")
    assert row["status"] == "fail" and "differs" in row["why"]


def test_an_optional_failure_or_a_skip_does_not_fail_it(monkeypatch):
    for name in ("train_step", "resume", "load_format", "augmentation", "timing", "gradcam_check", "memory_headroom"):
        monkeypatch.setattr(checks, name, lambda *a, **k: "ok")

    def no_compiler(*a):
        raise RuntimeError("inductor failed")

    def skip(*a):
        raise doctor.Skip("no GPU")

    monkeypatch.setattr(checks, "compile_check", no_compiler)
    monkeypatch.setattr(checks, "ray_placement", skip)
    rep = doctor.run_doctor("cpu")
    assert rep.ok and {c.status for c in rep.checks} == {"pass", "fail", "skipped"}


def test_a_device_that_is_not_there_is_one_failed_row():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    rep = doctor.run_doctor("cuda")
    assert not rep.ok and rep.checks[0].status == "fail" and "CUDA" in rep.checks[0].why
