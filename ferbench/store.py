"""The on-disk result store.

results/<suite>/run.json                   run header (profile, data, device, versions, dates)
results/<suite>/<experiment>/result.json   config, config hash, status, metrics, history, timings
results/<suite>/<experiment>/predictions.csv  one row per evaluated image
results/<suite>/<experiment>/checkpoint.pt    resume point while training (removed when complete)
results/<suite>/<experiment>/model.pt         best weights + model name + input spec + class order

Every write is atomic; ``result.json`` is written last, so its presence with ``status: ok`` and
the same config hash is what marks an experiment complete.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import atomic_write_json, atomic_write_text, atomic_write_with


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
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    try:
        env["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                           timeout=5, check=True).stdout.strip()
    except Exception:
        pass
    return env


class RunStore:
    def __init__(self, results_dir: Path | str, suite_name: str):
        self.root = Path(results_dir) / suite_name

    def exp_dir(self, eid: str) -> Path:
        return self.root / eid

    def load_result(self, eid: str) -> dict | None:
        p = self.exp_dir(eid) / "result.json"
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def is_complete(self, eid: str, config_hash: str) -> bool:
        """Finished with this exact config; failed and skipped experiments are tried again."""
        r = self.load_result(eid)
        return bool(r and r.get("status") == "ok" and r.get("config_hash") == config_hash)

    def write_result(self, eid: str, result: dict) -> None:
        atomic_write_json(self.exp_dir(eid) / "result.json", result)

    def write_predictions(self, eid: str, header: list[str], rows: list[list]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows(rows)
        atomic_write_text(self.exp_dir(eid) / "predictions.csv", buf.getvalue())

    def write_run(self, info: dict) -> None:
        atomic_write_json(self.root / "run.json", info)

    def journal(self, eid: str, config_hash: str) -> "AnswerJournal":
        """The LLM answers journal of experiment ``eid`` under exactly this config."""
        return AnswerJournal(self.exp_dir(eid) / "answers.jsonl", config_hash)

    def write_state(self, eid: str, name: str, obj: dict) -> None:
        """A small JSON state file of an experiment (e.g. a pending Batch API job), written atomically."""
        atomic_write_json(self.exp_dir(eid) / f"{name}.json", obj)

    def read_state(self, eid: str, name: str) -> dict | None:
        try:
            obj = json.loads((self.exp_dir(eid) / f"{name}.json").read_text())
        except (OSError, ValueError):
            return None
        return obj if isinstance(obj, dict) else None

    def write_arrays(self, eid: str, name: str, **arrays: np.ndarray) -> None:
        """Numeric/string arrays (e.g. the LLM sample's images) as ``<name>.npz``, written atomically."""
        def write(fh):
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
        atomic_write_with(self.exp_dir(eid) / f"{name}.npz", write, binary=True)

    def read_arrays(self, eid: str, name: str) -> dict[str, np.ndarray] | None:
        p = self.exp_dir(eid) / f"{name}.npz"
        try:
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            return None


class AnswerJournal:
    """Append-only JSON-lines journal of LLM answers, bound to one experiment config.

    Line 1 is ``{"config_hash": ...}``; a journal written under another config is discarded on
    open, so a changed prompt, model, sample or parameter never resumes from old answers. Each
    answer is one ``write`` of one complete line, flushed and fsync'd; a line torn by a kill is
    dropped when the journal is next opened, and the file is then rewritten atomically without it.
    """

    def __init__(self, path: Path, config_hash: str):
        self.path, self.config_hash = Path(path), config_hash
        self._lock = threading.Lock()
        self._records = self._load()

    def _load(self) -> dict[str, dict]:
        try:
            lines = self.path.read_bytes().split(b"\n")
        except OSError:
            return {}
        try:
            header = json.loads(lines[0])
        except (json.JSONDecodeError, UnicodeDecodeError, IndexError):
            header = None
        if not isinstance(header, dict) or header.get("config_hash") != self.config_hash:
            self.path.unlink(missing_ok=True)  # another config's answers (or no header): never reused
            return {}
        out, clean = {}, True
        for line in lines[1:]:
            if not line:
                continue
            try:
                rec = json.loads(line)
                out[str(rec["id"])] = rec
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                clean = False  # a torn last line from a kill
        if not clean or not lines[-1] == b"":
            self._rewrite(out)
        return out

    def _header(self) -> bytes:
        return (json.dumps({"config_hash": self.config_hash}) + "\n").encode()

    def _rewrite(self, records: dict[str, dict]) -> None:
        body = b"".join(json.dumps(r, ensure_ascii=True).encode() + b"\n" for r in records.values())
        atomic_write_with(self.path, lambda fh: fh.write(self._header() + body), binary=True)

    def read(self) -> dict[str, dict]:
        """Answers recorded under this config, by image id."""
        return dict(self._records)

    def append(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=True).encode() + b"\n"
        with self._lock:
            if not self.path.exists():
                self._rewrite({})
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._records[str(record["id"])] = record


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    """predictions.csv as columns: id, split, true, predicted (ints), and the rest as strings."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    cols = {h: np.array([r[i] for r in body]) for i, h in enumerate(header)}
    for k in ("true", "predicted"):
        cols[k] = cols[k].astype(np.int64) if len(body) else np.zeros(0, dtype=np.int64)
    return cols


@dataclass
class RunData:
    """A run directory loaded for reporting."""
    root: Path
    run: dict
    results: list[dict] = field(default_factory=list)

    def predictions(self, eid: str) -> dict[str, np.ndarray] | None:
        p = self.root / eid / "predictions.csv"
        return read_predictions(p) if p.exists() else None

    def arrays(self, eid: str, name: str) -> dict[str, np.ndarray] | None:
        return RunStore(self.root.parent, self.root.name).read_arrays(eid, name)


def load_run(run_dir: Path | str) -> RunData:
    root = Path(run_dir)
    run_file = root / "run.json"
    if not run_file.exists():
        raise FileNotFoundError(f"{root} is not a ferbench run directory (no run.json); "
                                "pass results/<suite> as written by `ferbench run`")
    run = json.loads(run_file.read_text())
    results = []
    for p in sorted(root.glob("*/result.json")):
        try:
            results.append(json.loads(p.read_text()))
        except json.JSONDecodeError:
            continue  # an in-flight or foreign file; atomic writes make this rare
    order = {eid: i for i, eid in enumerate(run.get("experiments", []))}
    results.sort(key=lambda r: order.get(r.get("id"), len(order)))
    return RunData(root, run, results)
