"""Shared fixtures. Tests never touch the network: pretrained lookups run offline, caches are private."""
from __future__ import annotations

import dataclasses
import functools
import io
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ferbench import CLASSES, engine, estimates
from ferbench.data import synthetic

REPO = Path(__file__).resolve().parents[1]
# Real FER2013 for the realdata tests: $FERBENCH_TEST_DATA (any form --data takes), else the
# development checkout's ../shared/data/fer2013.tar.gz.
REAL_DATA = Path(os.environ.get("FERBENCH_TEST_DATA") or REPO.parent / "shared" / "data" / "fer2013.tar.gz")
_skip_real = pytest.mark.skipif(not REAL_DATA.exists(), reason=f"real FER2013 not found at {REAL_DATA} "
                                "(set FERBENCH_TEST_DATA to its path)")

# Ray's object store reserves 30 % of the machine's memory by default (shared memory, counted against
# the OOM killer): a few test sessions side by side on a shared box could get the whole pytest
# process killed, with no summary line. The tests put a few MB in it.
RAY_STORE_BYTES = 256 * 1024 * 1024


def requires_real_data(test):
    """Mark a test as needing real FER2013 ($FERBENCH_TEST_DATA or ../shared/data/); it skips cleanly without it."""
    return pytest.mark.realdata(_skip_real(test))

_real_kill, _real_killpg = os.kill, os.killpg
# Under pytest-xdist (addopts: -n auto) tests run in worker processes; their parent is the session that
# prints the summary, so it is as off-limits as the worker itself.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
_SESSION_PIDS = {os.getpid()} | ({os.getppid()} if XDIST_WORKER else set())


def _guarded_kill(pid: int, sig: int) -> None:
    """A test may signal its children, never the pytest process or its process group: that ends the
    session mid-run, with no summary line (pid 0 or -1 means the whole group / every process)."""
    if sig != 0 and (pid <= 0 or pid == os.getpid() or pid in _SESSION_PIDS):
        raise AssertionError(f"a test sent signal {sig} to pid {pid}: that would kill the test session itself")
    _real_kill(pid, sig)


def _guarded_killpg(pgid: int, sig: int) -> None:
    if sig != 0 and pgid in (0, os.getpgrp()):
        raise AssertionError(f"a test sent signal {sig} to the test session's own process group")
    _real_killpg(pgid, sig)


os.kill, os.killpg = _guarded_kill, _guarded_killpg

# PDF/SVG paper figures take most of a report's render time; tests that look at them switch them on
# (tests/test_report.py's run, tests/test_paper_cli.py).
os.environ["FERBENCH_PAPER_FIGURES"] = "0"
os.environ["FERBENCH_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.pop("OPENAI_API_KEY", None)
# fp32 on every CPU (amp: auto would pick bf16 on AMX ones), so no test's numbers depend on the host;
# set here, so subprocesses and Ray workers inherit it. The bf16 path has its own tests.
os.environ["FERBENCH_CPU_BF16"] = "0"
os.environ.pop("FERBENCH_DATA", None)
# Every `ferbench run` times each model: run-time estimates (6 training steps per model and settings) and
# result.json's inference speed (13 batches of 64 per evaluated model), which took more CPU than the tiny
# trainings themselves. In this process they time the fewest steps and batches that still measure (3 and
# 3); tests/test_bench.py checks calibration at its defaults, subprocesses and Ray workers keep them too.
estimates.CALIBRATION_WARMUP, estimates.CALIBRATION_STEPS = 1, 2
engine.INFERENCE_WARMUP, engine.INFERENCE_ITERS = 1, 2
# Drawing synthetic faces took about a seventh of the suite's CPU: ~160 draws, most of them the same few
# (n, seed) again in another test. They are deterministic, so each process draws each set once and hands
# out copies (a test may change the arrays it gets); tests/test_synthetic.py checks the drawing itself.
_draw_synthetic = functools.lru_cache(maxsize=8)(synthetic.make_synthetic)


def _make_synthetic(n: int = 3500, seed: int = 0):
    d = _draw_synthetic(n, seed)
    ids = d.ids.copy()
    return dataclasses.replace(d, images=d.images.copy(), labels=d.labels.copy(), ids=ids, usage=d.usage.copy(),
                               groups=ids, skipped=[], excluded={}, conversions={})


synthetic.make_synthetic = _make_synthetic
if XDIST_WORKER:  # one worker per core: one thread each, inherited by subprocesses and Ray workers
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Session-wide, so module and session fixtures that run the CLI use it too (one per xdist worker)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


def cache_with_catalogue(path: Path) -> Path:
    """``path`` as a fresh $FERBENCH_CACHE holding a copy of this session's model catalogue, for a test
    that needs a private cache but does not test the catalogue: building it counts every model's
    parameters (about 1.5 s of CPU each time). The file is named by the model code's version, as
    ferbench names it, so a copy is never read for other code (tests/test_paper_cli.py tests the build)."""
    from ferbench.models import catalog

    catalog.catalog()  # the session's own, under the session's $FERBENCH_CACHE
    built = catalog._path()
    (path / "models").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built, path / "models" / built.name)
    return path


@pytest.fixture(autouse=True)
def _sigint_left_as_found(request):
    """Ctrl-C tests need Python's own SIGINT handler: a test (or a library it drives) that leaves SIGINT
    ignored or defaulted would make every later one in the worker fail for a reason not its own. Put it
    back, and say which test changed it."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after != before:
        signal.signal(signal.SIGINT, before)
        import warnings

        warnings.warn(f"{request.node.nodeid} left the SIGINT handler as {after!r}; restored", stacklevel=1)


# One finished run for every test that needs one (tests/test_hostile*.py): made once per session.
def one_study_suite(experiments: str, data: str = "synthetic:700:2", defaults: str = "{epochs: 1, batch_size: 64}",
                    split: str = "{kind: official}", name: str = "t") -> str:
    """A suite of one study ``s``; ``experiments`` is the YAML after ``experiments:`` (a flow list, or
    block lines indented by six spaces after a newline)."""
    return (f"name: {name}\ndata: {data}\ndefaults: {defaults}\nstudies:\n  - name: s\n    split: {split}\n"
            f"    experiments:{experiments}\n")


FINISHED_SUITE = one_study_suite("\n      - {model: mlp, label: a}\n      - {model: mlp, label: b}",
                                 data="synthetic:700:1", defaults="{epochs: 1, batch_size: 32}",
                                 split="{kind: official, train_per_class: 10, eval_per_class: 5}")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, _private_cache) -> Path:
    """The results folder of a complete run of FINISHED_SUITE (t/s.a, t/s.b), made once per test session:
    under xdist by the first worker that asks, in the session's temp folder all workers share. Tests copy
    it (shutil.copytree) before changing anything in it."""
    from click.testing import CliRunner
    from filelock import FileLock

    from ferbench.cli import main

    base = tmp_path_factory.getbasetemp()
    base = (base.parent if XDIST_WORKER else base) / "finished_run"
    with FileLock(f"{base}.lock"):
        if not (base / "done").exists():
            shutil.rmtree(base, ignore_errors=True)  # what a failed attempt left
            base.mkdir()
            (base / "suite.yaml").write_text(FINISHED_SUITE)
            r = CliRunner().invoke(main, ["run", str(base / "suite.yaml"), "--results-dir", str(base / "res")])
            assert r.exit_code == 0, r.output
            (base / "done").touch()
    return base / "res"


def jpeg_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def make_kaggle_folder(root: Path, per_class: int = 3, seed: int = 0) -> dict:
    """A miniature Kaggle FER2013 folder; returns the expected counts per usage."""
    rng = np.random.default_rng(seed)
    counts = {"Training": 0, "PublicTest": 0, "PrivateTest": 0}
    n = 0
    for cls in CLASSES:
        for usage, sub in (("Training", "train"), ("PublicTest", "test"), ("PrivateTest", "test")):
            for _ in range(per_class):
                d = root / sub / cls
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{usage}_{1000 + n}.jpg").write_bytes(jpeg_bytes(rng.integers(0, 255, (48, 48), dtype=np.uint8)))
                counts[usage] += 1
                n += 1
    return counts


@pytest.fixture
def kaggle_folder(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "fer2013"
    return root, make_kaggle_folder(root)


@pytest.fixture(scope="session")
def synth():
    from ferbench.data import load_data

    return load_data("synthetic:1400:3")


@pytest.fixture
def env(monkeypatch):
    """For LLM tests: the fake endpoint's key in the environment, the synthetic split, each image's class."""
    from fake_openai import KEY, synthetic_split, truth_by_sha

    monkeypatch.setenv("FAKE_KEY", KEY)
    split = synthetic_split()
    return split, truth_by_sha(split)


class AlwaysHappy(torch.nn.Module):
    """A 'model' that answers happy for every face: degenerate by construction, no training needed."""

    def forward(self, x):
        out = torch.zeros(x.shape[0], 7) + 0 * x.mean()
        out[:, 3] = 5.0
        return out


def sigkill_when(cmd: list[str], env: dict, ready, timeout: float = 240) -> None:
    """Start ``cmd`` and SIGKILL it as soon as ``ready()`` holds (a crash at the worst moment)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "run ended before it could be killed"
            # Killed at the deadline instead, the test would pass without testing the moment it names.
            assert time.time() < deadline, f"the moment to kill at never came within {timeout:g} s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # the child only: never its process group (that holds pytest)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
