"""Where ferbench runs: library versions, platform, git commit (recorded in run.json), and the
one cache folder every cache lives under (``$FERBENCH_CACHE``, default ``~/.cache/ferbench``)."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from . import __version__


def cache_root() -> Path:
    return Path(os.environ.get("FERBENCH_CACHE") or Path.home() / ".cache" / "ferbench")


def environment() -> dict:
    import importlib.metadata as md

    import torch

    vers = {"python": platform.python_version(), "ferbench": __version__}
    for pkg in ("torch", "torchvision", "timm", "numpy", "scikit-learn", "openai"):
        try:
            vers[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    env = {"versions": vers, "platform": platform.platform(), "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():  # what decides its precision (capability: bf16 from 8.0) and kernels
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        env["cuda"], env["cudnn"] = torch.version.cuda, torch.backends.cudnn.version()
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        env["gpu"] = "Apple MPS"
    try:
        env["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                           check=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    except Exception:
        pass  # not a git checkout (an installed package): no commit to record
    return env


def choose_threads(requested: str | int | None) -> tuple[int, str]:
    """(threads, why) for ``--threads``: a number as given; ``auto`` the cores free at the start (cores
    minus the rounded 1-minute load average, at least 1); None torch's default, which depends on the
    machine (cores or $OMP_NUM_THREADS) and never on its load, so repeated runs compute alike."""
    import torch

    cores = os.cpu_count() or 1
    if requested is None:
        return torch.get_num_threads(), "torch's default for this machine (the same whatever the load)"
    if str(requested) == "auto":
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        n = max(1, min(cores, cores - round(load)))
        return n, f"--threads auto: {cores} cores, load average {load:.1f} at the start"
    n = int(requested)
    if n < 1:
        raise ValueError(f"--threads must be a positive number or 'auto'; got {requested!r}")
    return n, f"--threads {n}"


def busy_cpu_hint(device_type: str) -> str | None:
    """A hint when another process seems to hold a core of a small CPU: torch's OpenMP threads
    spin-wait for each other, so on 2 cores with one taken, 2 threads ran 2-3x slower than 1
    (README, Speed). Judged from the 1-minute load average, so it can misfire after a job just ended."""
    import torch

    cores, threads = os.cpu_count() or 1, torch.get_num_threads()
    if device_type != "cpu" or threads < 2 or cores > 4 or not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0]
    if load < 0.9:
        return None
    return (f"the load average is {load:.1f} on {cores} cores: if another process is using a core, torch's "
            f"{threads} threads wait for each other and train 2-3x slower than one; "
            "consider --threads auto (the cores free now) or --threads 1 for this run")
