"""The on-disk result store: the only code that writes or reads a run folder's run header and
experiment folders (the files below). The rendered report and its figures (``report.*``,
``figures/``) are written by :mod:`ferbench.report` and :mod:`ferbench.figures`, atomically too,
at paths under the run folder they are given; nothing reads them back as results.

results/<run>/run.json                          run header (:class:`RunHeader`)
results/<run>/<experiment>/result.json          the typed result (:data:`ExperimentResult`), written last
results/<run>/<experiment>/predictions.csv      one row per evaluated image (or predictions.csv.gz)
results/<run>/<experiment>/model.pt             best weights + model name + input spec + class order
results/<run>/<experiment>/checkpoint-<hash>.pt resume point while training (removed when complete)
results/<run>/<experiment>/error.log            traceback of a failed experiment
results/<run>/<experiment>/answers.jsonl        LLM answers journal, bound to the config hash
results/<run>/<experiment>/*.npz, *.json, *.png sample images, small state (batch jobs), figures

Every write is atomic. A result is complete only when its status is ``ok``, its config hash
matches, and every file it vouches for (``files``: name -> sha256) is present with that digest,
so a result.json never pairs with another configuration's predictions. A vouched-for file may be
stored gzip-packed as ``<name>.gz`` (``ferbench pack``, for runs shared in a repository): its digest is
the unpacked content's, so packing changes nothing a result vouches for. Experiment folders are
named by validated ids and checked to resolve inside the run folder; so are the names a result
vouches for. A results folder may come from someone else, so it is read defensively: only regular
files, never through a symbolic link, and never more than a bound (no /dev/zero or FIFO planted as
a result hangs a reader). One run at a time holds a run folder (``.lock``).
"""
from __future__ import annotations

import csv
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import socket
import stat
import sys
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from pydantic import ValidationError

from .atomic import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
    disk_full_error,
    is_disk_full,
    remove_stale_temps,
)
from .csvsafe import safe_row
from .errors import ResultFormatError, StoreError
from .predictions import Predictions
from .schema.results import RESULT, RESULT_FORMAT, ExperimentResult, LLMResult, ModelResult, RunHeader
from .schema.suite import SAFE_NAME_RULE

MAX_JSON_BYTES = 20_000_000
MAX_CSV_BYTES = 2_000_000_000  # predictions of an LLM answering at length on all 35,887 images fit
MAX_JOURNAL_BYTES = 2_000_000_000
MAX_CSV_FIELD = 1_000_000
_ID_PART = re.compile(r"^[A-Za-z0-9_+\-][A-Za-z0-9 _.+\-]*$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]{0,120}$")  # a file inside an experiment folder


def open_regular(path: Path, limit: int | None = None):
    """Open ``path`` for reading only if it is a regular file, not a symbolic link, at most ``limit``
    bytes; raises ResultFormatError otherwise (OSError if it cannot be opened at all)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block
    try:
        fd = os.open(path, flags)
    except OSError:
        if os.path.islink(path):
            raise ResultFormatError(f"{path} is a symbolic link; ferbench never writes one, so it is not read") \
                from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ResultFormatError(f"{path} is not a regular file")
        if limit is not None and st.st_size > limit:
            raise ResultFormatError(f"{path} is {st.st_size:,} bytes, more than any ferbench file of its kind")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_bounded(path: Path, limit: int) -> bytes:
    with open_regular(path, limit) as fh:
        data = fh.read(limit + 1)  # the file may have grown since fstat
    if len(data) > limit:
        raise ResultFormatError(f"{path} is more than {limit:,} bytes, more than any ferbench file of its kind")
    return data


class _Capped(io.RawIOBase):
    """A decompressing stream read no further than ``limit`` unpacked bytes: a gzip bomb raises
    ResultFormatError instead of filling memory or disk."""

    def __init__(self, packed: gzip.GzipFile, limit: int, path: Path):
        super().__init__()
        self._packed, self._left, self._path = packed, limit, path

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._packed.readinto(b)
        self._left -= n
        if self._left < 0:
            raise ResultFormatError(f"{self._path} unpacks to more than any ferbench file of its kind")
        return n

    def close(self) -> None:
        self._packed.close()
        super().close()


def open_unpacked(path: Path, limit: int | None = None):
    """``path`` opened like :func:`open_regular`; where it is absent but ``<path>.gz`` is there (a packed
    run), that file's unpacked content, read no further than ``limit``. Damaged packing surfaces as
    OSError/EOFError (gzip's own errors) on read."""
    if os.path.lexists(path) or not os.path.lexists(f"{path}.gz"):
        return open_regular(path, limit)
    packed = gzip.GzipFile(fileobj=open_regular(Path(f"{path}.gz"), limit), mode="rb")
    return io.BufferedReader(_Capped(packed, MAX_CSV_BYTES if limit is None else limit, path))


def sha256_file(path: Path) -> str | None:
    """The file's sha256 (a packed ``<path>.gz``'s unpacked content's), or None if it is missing,
    not a regular file (a link, a device, a FIFO) or damaged packing."""
    h = hashlib.sha256()
    try:
        with open_unpacked(path) as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except (OSError, EOFError, zlib.error, ResultFormatError):
        return None
    return h.hexdigest()


def _read_json(path: Path) -> Any:
    return json.loads(_read_bounded(path, MAX_JSON_BYTES).decode("utf-8"))


def parse_result(path: Path) -> ExperimentResult:
    """Read one result.json; raises ResultFormatError with one message for anything else."""
    try:
        raw = _read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ResultFormatError(f"{path}: unreadable or torn result file ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise ResultFormatError(f"{path}: not a ferbench result (a JSON object is expected)")
    fmt = raw.get("format", 1)
    if fmt != RESULT_FORMAT:
        raise ResultFormatError(f"{path}: written by {'an older' if fmt < RESULT_FORMAT else 'a newer'} ferbench "
                                f"(result format {fmt}; this ferbench reads format {RESULT_FORMAT}); "
                                "`ferbench run` re-runs such experiments, or use the ferbench version that wrote it")
    try:
        return RESULT.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ResultFormatError(f"{path}: not a valid ferbench result ({exc.error_count()} problem(s), first: "
                                f"{where}: {first['msg']})") from None


def read_predictions(path: Path) -> Predictions:
    """Parse predictions.csv (or its packed predictions.csv.gz); raises ResultFormatError on a torn or
    malformed file."""
    csv.field_size_limit(MAX_CSV_FIELD)
    try:
        with open_unpacked(path, MAX_CSV_BYTES) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise ResultFormatError(f"{path}: unreadable predictions ({type(exc).__name__}: {exc})") from None
    if not rows or rows[0][:4] != ["id", "split", "true", "predicted"]:
        raise ResultFormatError(f"{path}: not a ferbench predictions file (header {rows[0][:4] if rows else []})")
    header, body = rows[0], rows[1:]
    if any(len(r) != len(header) for r in body):
        raise ResultFormatError(f"{path}: rows of the wrong width (a torn or edited file)")
    cols = {h: np.array([r[i] for r in body], dtype=str) for i, h in enumerate(header)}
    try:
        true, pred = (cols[k].astype(np.int64) if body else np.zeros(0, np.int64) for k in ("true", "predicted"))
        pcols = [h for h in header if h.startswith("p_")]
        proba = np.stack([cols[h].astype(float) for h in pcols], 1) if pcols and body else None
    except ValueError as exc:
        raise ResultFormatError(f"{path}: a non-numeric value where a number belongs ({exc})") from None
    extra = {h: cols[h] for h in header[4:] if not h.startswith("p_")}
    return Predictions(cols["id"], cols["split"], true, pred, proba, extra)


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(safe_row(header))
    w.writerows(safe_row(r) for r in rows)  # an LLM's answer may be a spreadsheet formula
    return buf.getvalue()


class Checkpoint:
    """The resume point of one experiment under one config. Loaded with ``weights_only=True`` (a
    planted pickle cannot run code); an unreadable one is discarded with a message and training
    restarts from scratch."""

    def __init__(self, path: Path):
        self.path = path
        self.discarded: str | None = None

    def save(self, state: dict) -> None:
        atomic_torch_save(self.path, state)

    def load(self, map_location=None) -> dict | None:
        import torch

        if not os.path.lexists(self.path):
            return None
        try:
            with open_regular(self.path) as fh:
                state = torch.load(fh, map_location=map_location, weights_only=True)
            if not isinstance(state, dict) or "epoch" not in state:
                raise ValueError("not a ferbench training checkpoint")
            return state
        except Exception as exc:  # torch raises many types for torn, foreign or unsafe files
            self.discard(f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
            return None

    def discard(self, why: str) -> None:
        """Give up on this checkpoint (unreadable, or not resumable): training restarts from scratch."""
        self.discarded = f"checkpoint {self.path.name} could not be used ({why}); discarded, training restarted"
        self.path.unlink(missing_ok=True)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


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
            lines = _read_bounded(self.path, MAX_JOURNAL_BYTES).split(b"\n")
        except FileNotFoundError:
            return {}
        except (OSError, ResultFormatError):
            lines = [b""]  # not a journal this ferbench wrote: discarded below
        try:
            header = json.loads(lines[0])
        except (json.JSONDecodeError, UnicodeDecodeError, IndexError):
            header = None
        if not isinstance(header, dict) or header.get("config_hash") != self.config_hash:
            if os.path.lexists(self.path):
                self.path.unlink()  # another config's answers (or no header, or not a file): never reused
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
        if not clean or lines[-1] != b"":
            self._rewrite(out)
        return out

    def _header(self) -> bytes:
        return (json.dumps({"config_hash": self.config_hash}) + "\n").encode()

    def _rewrite(self, records: dict[str, dict]) -> None:
        body = b"".join(json.dumps(r, ensure_ascii=True).encode() + b"\n" for r in records.values())
        atomic_write_bytes(self.path, self._header() + body)

    def read(self) -> dict[str, dict]:
        """Answers recorded under this config, by image id."""
        return dict(self._records)

    def clear(self) -> None:
        """Forget every answer (``--refresh-llm``: ask everything again)."""
        with self._lock:
            self.path.unlink(missing_ok=True)
            self._records = {}

    def append(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=True).encode() + b"\n"
        with self._lock:
            if not self.path.exists():
                self._rewrite({})
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))
            try:
                os.write(fd, line)
                os.fsync(fd)
            except OSError as exc:
                if is_disk_full(exc):
                    raise disk_full_error(self.path) from None
                raise
            finally:
                os.close(fd)
            self._records[str(record["id"])] = record


class RunStore:
    """One run folder (``results/<run>``) and every file in it."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # --- paths -------------------------------------------------------------------------------------
    def exp_dir(self, eid: str) -> Path:
        """The folder of experiment ``eid``: a validated id, verified to stay inside the run folder."""
        if not isinstance(eid, str) or not _ID_PART.match(eid) or ".." in eid or "/" in eid or "\\" in eid:
            raise StoreError(f"experiment id {eid!r} cannot name a results folder ({SAFE_NAME_RULE})")
        p = self.root / eid
        if p.is_symlink() or p.resolve().parent != self.root.resolve():
            raise StoreError(f"experiment folder {p} would resolve outside the run folder {self.root} "
                             "(a symbolic link?); ferbench does not write through it")
        return p

    def _file(self, eid: str, name: str) -> Path:
        if not _FILE_NAME.match(name):
            raise StoreError(f"{name!r} cannot name a file in an experiment folder")
        return self.exp_dir(eid) / name

    def check_layout(self) -> None:
        """Refuse a run folder whose report folders are links elsewhere: reports write through them."""
        for name in ("figures", "tables"):
            p = self.root / name
            if p.is_symlink() or (p.exists() and not p.is_dir()):
                raise StoreError(f"{p} is not a folder of this run folder (a symbolic link or a file); "
                                 "remove it, or use another --results-dir")

    # --- run header ----------------------------------------------------------------------------------
    def write_run(self, header: RunHeader) -> None:
        atomic_write_json(self.root / "run.json", header.model_dump(mode="json"))

    def read_run(self) -> RunHeader | None:
        p = self.root / "run.json"
        if not os.path.lexists(p):
            return None
        try:
            raw = _read_json(p)
            if raw.get("format", 1) != RESULT_FORMAT:
                raise ResultFormatError(f"{p}: written by another ferbench (run format {raw.get('format', 1)}; "
                                        f"this ferbench reads format {RESULT_FORMAT})")
            return RunHeader.model_validate(raw)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, AttributeError,
                ValidationError) as exc:
            raise ResultFormatError(f"{p}: not a valid ferbench run header ({type(exc).__name__})") from None

    # --- results -------------------------------------------------------------------------------------
    def write_result(self, result: ExperimentResult) -> None:
        """Written last: its presence (status ok, digests matching) marks the experiment complete."""
        atomic_write_json(self._file(result.id, "result.json"), result.model_dump(mode="json"))

    def read_result(self, eid: str) -> ExperimentResult | None:
        """The stored result, or None if there is none; ResultFormatError if it cannot be trusted."""
        p = self._file(eid, "result.json")
        return parse_result(p) if os.path.lexists(p) else None

    def file_problems(self, result: ExperimentResult, weights_optional: bool = False) -> list[str]:
        """Files the result vouches for that are missing or differ from the recorded digest.
        ``weights_optional``: an absent model.pt is no problem (reporting reads predictions only, and a
        shared reference run ships without weights); a model.pt that is there must still match."""
        out = []
        for name, digest in result.files.items():
            if not _FILE_NAME.match(name):
                out.append(f"it vouches for {name!r}, which is not a file of its folder")
                continue
            actual = sha256_file(self._file(result.id, name))
            if actual is None and weights_optional and name == "model.pt":
                continue
            if actual is None:
                out.append(f"{name} is missing")
            elif actual != digest:
                out.append(f"{name} does not belong to this result.json (another configuration's or edited)")
        return out

    def verify(self, result: ExperimentResult,
               weights_optional: bool = False) -> tuple[ExperimentResult | None, str | None]:
        """(the result with its metrics recomputed from its digested predictions.csv, None), or (None,
        why it cannot be trusted): files that differ from their digests, metrics that differ from
        their predictions. Numbers from result.json itself never reach a table."""
        problems = self.file_problems(result, weights_optional)
        if problems:
            return None, "; ".join(problems)
        if not result.metrics:
            return result, None
        if "predictions.csv" not in result.files:
            return None, "its metrics come without the predictions.csv they are computed from"
        from .verify import verified_metrics

        try:
            preds = self.read_predictions(result.id)
            metrics = verified_metrics(result, preds)
            update = {"metrics": metrics}
            if getattr(result, "single_view", None):  # a TTA result's single-view scores: checked alike
                update["single_view"] = verified_metrics(result, preds, single_view=True)
        except ResultFormatError as exc:
            return None, str(exc).split(": ", 1)[-1]
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            return None, f"its metrics do not match its predictions.csv ({str(exc)[:300]})"
        return result.model_copy(update=update), None

    def completed(self, eid: str, config_hash: str) -> tuple[ExperimentResult | None, str | None]:
        """(result, None) if ``eid`` finished under exactly this config with all its files intact;
        otherwise (None, why not) — why is None when there simply is no result yet."""
        try:
            r = self.read_result(eid)
        except ResultFormatError as exc:
            return None, str(exc)
        if r is None:
            return None, None
        if r.id != eid:
            return None, f"its result.json names experiment {r.id!r}"
        if r.config_hash != config_hash:
            return None, "config changed"
        if r.status != "ok":
            return None, f"previous attempt {r.status}"
        return self.verify(r)

    # --- experiment files --------------------------------------------------------------------------------
    def write_predictions(self, eid: str, header: list[str], rows: list[list]) -> str:
        """Write predictions.csv; returns its sha256 for the result's ``files``."""
        text = _csv_text(header, rows)
        atomic_write_text(self._file(eid, "predictions.csv"), text)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def read_predictions(self, eid: str) -> Predictions:
        return read_predictions(self._file(eid, "predictions.csv"))

    def pack_file(self, eid: str, name: str, digest: str) -> tuple[int, int]:
        """Replace ``name`` by ``<name>.gz`` (``ferbench pack``); (bytes before, after). ``digest``: what
        the result vouches for, checked again here, so a file changed since it was verified stays as it is."""
        path = self._file(eid, name)
        data = _read_bounded(path, MAX_CSV_BYTES)
        if hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(f"{path} changed while it was being packed; nothing was removed")
        packed = gzip.compress(data, compresslevel=9, mtime=0)  # mtime 0: the same run packs to the same bytes
        atomic_write_bytes(self._file(eid, f"{name}.gz"), packed)
        path.unlink()
        return len(data), len(packed)

    def model_path(self, eid: str) -> Path:
        return self._file(eid, "model.pt")

    def save_model(self, eid: str, payload: dict) -> str:
        """Write model.pt (state dict and metadata, loadable with weights_only=True); returns its sha256."""
        p = self.model_path(eid)
        atomic_torch_save(p, payload)
        return sha256_file(p)

    def checkpoint(self, eid: str, config_hash: str) -> Checkpoint:
        """This config's resume point; other configs' checkpoints of the experiment are removed."""
        d = self.exp_dir(eid)
        for stale in d.glob("checkpoint-*.pt"):
            if stale.name != f"checkpoint-{config_hash}.pt":
                stale.unlink(missing_ok=True)  # a changed config never resumes from another config's weights
        return Checkpoint(d / f"checkpoint-{config_hash}.pt")

    def resume_point(self, eid: str, config_prefix: str = "") -> str | None:
        """What an interrupted experiment left to resume from (a training checkpoint, journaled LLM
        answers) under a config hash starting with ``config_prefix``, in words; None if nothing."""
        try:
            d = self.exp_dir(eid)
        except StoreError:
            return None
        if any(p.name.startswith(f"checkpoint-{config_prefix}") for p in d.glob("checkpoint-*.pt")):
            return "training checkpoint of its last finished epoch kept"
        journal = d / "answers.jsonl"
        try:
            lines = _read_bounded(journal, MAX_JOURNAL_BYTES).split(b"\n")
            header = json.loads(lines[0])
        except (OSError, ResultFormatError, ValueError, IndexError):
            return None
        if not isinstance(header, dict) or not str(header.get("config_hash", "")).startswith(config_prefix):
            return None
        answers = sum(1 for line in lines[1:] if line.strip())
        return f"{answers} LLM answer(s) journaled" if answers else None

    def write_error(self, eid: str, text: str) -> None:
        atomic_write_text(self._file(eid, "error.log"), text)

    def write_file(self, eid: str, name: str, data: bytes) -> str:
        """Any other artifact of an experiment (a figure); returns its sha256."""
        atomic_write_bytes(self._file(eid, name), data)
        return hashlib.sha256(data).hexdigest()

    def journal(self, eid: str, config_hash: str) -> AnswerJournal:
        """The LLM answers journal of experiment ``eid`` under exactly this config."""
        return AnswerJournal(self._file(eid, "answers.jsonl"), config_hash)

    def write_state(self, eid: str, name: str, obj: dict) -> None:
        """A small JSON state file of an experiment (e.g. a pending Batch API job), written atomically."""
        atomic_write_json(self._file(eid, f"{name}.json"), obj)

    def read_state(self, eid: str, name: str) -> dict | None:
        try:
            obj = _read_json(self._file(eid, f"{name}.json"))
        except (OSError, ValueError, RecursionError, ResultFormatError):
            return None
        return obj if isinstance(obj, dict) else None

    def write_arrays(self, eid: str, name: str, **arrays: np.ndarray) -> str | None:
        """Numeric/string arrays (e.g. the LLM sample's images) as ``<name>.npz``, written atomically;
        returns its sha256."""
        path = self._file(eid, f"{name}.npz")
        atomic_write_with(path, lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()}), binary=True)
        return sha256_file(path)

    def read_arrays(self, eid: str, name: str) -> dict[str, np.ndarray] | None:
        try:
            with open_regular(self._file(eid, f"{name}.npz")) as fh, np.load(fh, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, ResultFormatError):
            return None

    # --- one run at a time -------------------------------------------------------------------------------
    def _remove_stale_temps(self) -> None:
        """Temporary files of writers killed mid-write (a checkpoint can be hundreds of MB)."""
        for folder in [self.root, *(p for p in self.root.iterdir() if p.is_dir() and not p.is_symlink())]:
            remove_stale_temps(folder)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder; a second run on it fails at once saying who holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.check_layout()
        path = self.root / ".lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as exc:
            raise StoreError(f"{path} cannot be opened as this run folder's lock ({exc.strerror}); remove it if "
                             "it is not a plain file") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
                raise StoreError(f"{self.root} is in use by {holder}; wait for that run to finish or use another "
                                 "--results-dir") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, (f"pid {os.getpid()} on {socket.gethostname()} since "
                           f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} "
                           f"({' '.join(sys.argv[:1] + sys.argv[1:3])})").encode(), 0)
            self._remove_stale_temps()
            yield
        finally:
            os.close(fd)  # closing releases the lock


@dataclass
class RunData:
    """A run folder loaded for reporting: the header, every trustworthy result, and the files left out."""
    store: RunStore
    header: RunHeader
    results: list[ExperimentResult] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (file, why it was not used)

    @property
    def root(self) -> Path:
        return self.store.root

    def of_study(self, study: str) -> list[ExperimentResult]:
        return [r for r in self.results if r.study == study]

    def models(self, study: str) -> list[ModelResult]:
        """Every model scored in ``study`` with status ok: trained and loaded alike."""
        return [r for r in self.of_study(study) if isinstance(r, ModelResult) and r.ok]

    def llms(self, study: str, *, sweeps: bool = False) -> list[LLMResult]:
        """The LLM results of ``study``; a declared sweep's variants only with ``sweeps`` (they have their table)."""
        return [r for r in self.of_study(study) if isinstance(r, LLMResult) and (sweeps or r.config.variant is None)]

    def predictions(self, eid: str) -> Predictions | None:
        try:
            return self.store.read_predictions(eid)
        except ResultFormatError:
            return None

    def arrays(self, eid: str, name: str) -> dict[str, np.ndarray] | None:
        return self.store.read_arrays(eid, name)


def load_run(run_dir: Path | str) -> RunData:
    """Load a run folder for reporting. Results whose files cannot be trusted are left out, and
    ``left_out`` says which and why (the report prints it)."""
    store = RunStore(run_dir)
    if not (store.root / "run.json").exists():
        raise StoreError(f"{store.root} is not a ferbench run directory (no run.json); "
                         "pass results/<run> as written by `ferbench run`")
    header = store.read_run()
    store.check_layout()
    results, left_out = [], []
    for p in sorted(store.root.glob("*/result.json")):
        try:
            store.exp_dir(p.parent.name)
            r = parse_result(p)
            if r.id != p.parent.name:
                raise ResultFormatError(f"{p}: its id {r.id!r} does not match its folder")
        except (ResultFormatError, StoreError) as exc:
            left_out.append((str(p.relative_to(store.root)), str(exc).split(": ", 1)[-1]))
            continue
        r, why = store.verify(r, weights_optional=True)  # a report needs predictions, not weights
        if r is None:
            left_out.append((str(p.relative_to(store.root)), why))
            continue
        results.append(r)
    order = {eid: i for i, eid in enumerate(header.experiments)}
    results.sort(key=lambda r: order.get(r.id, len(order)))
    return RunData(store, header, results, left_out)
