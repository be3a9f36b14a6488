"""Model experiments as Ray tasks (``ferbench run SUITE --executor ray [--address ADDR]``).

The driver (this process) keeps everything a local run guarantees: it plans, it is the only one
writing results (through the runner's recorder and the result store), and it runs LLM experiments
itself once the models of their study are done. Each train/load experiment is one Ray task
(``max_retries=0``: a failure is the experiment's, recorded once, never silently re-run) that
returns the handler's :class:`~ferbench.experiments.Outcome` to the driver. The decoded dataset
goes into the object store once; each worker process builds the splits it needs from it and keeps
them for its next task. Tasks write only their training checkpoints, into the run folder, so a
re-submitted experiment resumes where its epochs stopped; on several nodes that folder has to be
on a filesystem every node shares.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from ..errors import FerbenchError
from ..schema.results import SplitInfo

if TYPE_CHECKING:
    from ..data.splits import SplitData
    from ..experiments import Outcome, RunOptions
    from .context import PlannedExperiment

try:
    import ray
except ImportError:  # the optional extra; the constructor says how to install it
    ray = None

INSTALL_HINT = "pip install 'ferbench[ray]'"
POLL_SECONDS = 0.2
BATCH_EVENT_SECONDS = 1.0  # batch losses from a worker are sent at most this often


class RemoteExperimentError(FerbenchError):
    """An experiment failed on a Ray worker; the message is the one a local run would record."""


@dataclass
class TaskSpec:
    """What every task of one run shares besides the dataset."""
    store_root: str  # absolute: a worker's working directory need not be the driver's
    profile: str
    options: RunOptions  # without the LLM options (those stay in the driver)
    device: str  # the --device asked for: auto, cpu, cuda, mps


@dataclass
class TaskResult:
    outcome: Outcome | None
    error: str | None = None  # the message a local run records for the exception
    trace: str | None = None
    seconds: float = 0.0
    split: SplitInfo | None = None  # what the result records of the split (the images stay on the worker)
    node: str | None = None
    sees_run_folder: bool = True  # False: this node has its own disk, not the driver's results folder


@dataclass
class Resources:
    gpus: float
    cpus: float

    def options(self) -> dict:
        return {"num_gpus": self.gpus, "num_cpus": self.cpus}

    def describe(self) -> str:
        return f"{self.cpus:g} CPU" + (f", {self.gpus:g} GPU" if self.gpus else "")


# --- on the worker ---------------------------------------------------------------------------------------

_WORKER: dict = {}  # one run's dataset and split cache per worker process, reused by its next tasks


def _worker_splits(data_ref):
    from .context import SplitCache

    key = data_ref.hex()
    if _WORKER.get("key") != key:
        _WORKER.clear()  # another run's dataset: let it go
        _WORKER.update(key=key, splits=SplitCache(ray.get(data_ref)))
    return _WORKER["splits"]


def _worker_device(request: str, gpus: float):
    """CUDA only when Ray assigned this task a GPU (it sets CUDA_VISIBLE_DEVICES); never a GPU another
    task reserved."""
    import torch

    from ..engine import select_device

    if gpus > 0:
        if not torch.cuda.is_available():
            raise FerbenchError(f"Ray assigned GPU(s) {ray.get_gpu_ids()} to this task but torch sees no CUDA "
                                f"device on node {ray.util.get_node_ip_address()}; install a CUDA build of torch there")
        return torch.device("cuda")
    if request == "mps" or (request == "auto" and getattr(torch.backends, "mps", None)
                            and torch.backends.mps.is_available()):
        return select_device("mps")
    return torch.device("cpu")


def _cpu_payload(obj):
    """model.pt travels to the driver, which may have no GPU: tensors go to the CPU first. Dict types
    and a state dict's ``_metadata`` are kept, so the saved file is the one a local run writes."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu() if obj.device.type != "cpu" else obj
    if isinstance(obj, dict):
        out = type(obj)((k, _cpu_payload(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    return obj


def run_task(item, data_box: list, spec: TaskSpec, res: Resources, events) -> TaskResult:
    """One model experiment on a Ray worker. ``data_box`` holds the dataset's ObjectRef (boxed, so
    Ray hands over the reference and the worker fetches the arrays only on its first task)."""
    import torch

    from ..experiments import Context, run_experiment
    from ..store import RunStore

    t0 = time.perf_counter()
    eid = item.exp.id
    events.post.remote(eid, "started", None)
    node = ray.util.get_node_ip_address()
    shared = (Path(spec.store_root) / "run.json").exists()  # the driver wrote it before submitting
    # The declared CPUs are the threads this task uses, so tasks sharing a node do not oversubscribe it.
    torch.set_num_threads(max(1, int(res.cpus)))
    last_batch = [0.0]

    def progress(kind, payload):
        if kind == "batch":
            now = time.monotonic()
            if now - last_batch[0] < BATCH_EVENT_SECONDS:
                return
            last_batch[0] = now
        events.post.remote(eid, kind, payload)

    split = None
    try:
        split = _worker_splits(data_box[0]).get(item.exp)
        device = _worker_device(spec.device, res.gpus)
        ctx = Context(split=split, device=device, store=RunStore(spec.store_root), config_hash=item.config_hash,
                      options=spec.options, progress=progress, console=None)
        outcome = run_experiment(item.exp, ctx)
        if outcome.model_payload is not None:
            outcome.model_payload = _cpu_payload(outcome.model_payload)
        # The result records where it ran: this worker's device, not the driver's.
        outcome.fields = {**outcome.fields, "device": str(device)}
        return TaskResult(outcome, seconds=time.perf_counter() - t0, split=SplitInfo.of(split), node=node,
                          sees_run_folder=shared)
    except Exception as exc:  # recorded by the driver as the experiment's failure, like a local run
        msg = str(exc) if isinstance(exc, FerbenchError) else f"{type(exc).__name__}: {exc}"
        return TaskResult(None, msg, f"on Ray node {node}:\n{traceback.format_exc()}", time.perf_counter() - t0,
                          SplitInfo.of(split) if split is not None else None, node=node, sees_run_folder=shared)


def run_gpu_task(item, data_box: list, spec: TaskSpec, res: Resources, events) -> TaskResult:
    """:func:`run_task` for a task holding GPUs. Its own function, so Ray registers it with
    ``max_calls=1``: a fresh worker process per task. Ray gives that default only where ``num_gpus`` is in
    the decorator, not in ``.options()``; a reused worker keeps the CUDA context of its first GPU (CUDA
    reads CUDA_VISIBLE_DEVICES once per process), so two tasks could share one GPU while another idles,
    and the cached memory of a finished task is never returned."""
    return run_task(item, data_box, spec, res, events)


def remote_tasks() -> dict[bool, object]:
    """The Ray remote functions, by whether the task holds GPUs (``max_retries=0``: a failure is the
    experiment's, recorded once). CPU tasks reuse their worker and its cached splits."""
    return {False: ray.remote(max_retries=0)(run_task),
            True: ray.remote(max_retries=0, num_gpus=1, max_calls=1)(run_gpu_task)}


class _Events:
    """A Ray actor the tasks post to (started, epoch, batch) and the driver drains: what is running."""

    def __init__(self):
        self._queue: list = []

    def post(self, eid: str, kind: str, payload) -> None:
        self._queue.append((eid, kind, payload))

    def drain(self) -> list:
        out, self._queue = self._queue, []
        return out


# --- in the driver -----------------------------------------------------------------------------------------

@dataclass
class _Flight:
    item: PlannedExperiment
    submitted: float
    started: float | None = None
    progress: object = None
    recorded: bool = False  # events that arrive later (the actor may lag the result) are dropped


class _Tracker:
    """The driver's view of the Ray tasks in flight: progress events shown, results recorded."""

    def __init__(self, flights: dict, reporter, events, say, store_root: str):
        self.flights, self.reporter, self.events, self.say, self.store_root = flights, reporter, events, say, store_root
        self.by_id = {f.item.exp.id: f for f in flights.values()}
        self.unfinished: dict = {}  # study -> model experiments not yet recorded
        for f in flights.values():
            self.unfinished.setdefault(f.item.exp.study, set()).add(f.item.exp.id)
        self.warned_nodes: set = set()

    def drain(self) -> None:
        try:
            posted = ray.get(self.events.drain.remote(), timeout=30)
        except (ray.exceptions.RayError, TimeoutError):
            return  # only the display misses them; results come with the tasks
        for eid, kind, payload in posted:
            f = self.by_id.get(eid)
            if f is None or f.recorded:
                continue
            if kind == "started" and f.started is None:
                f.started = time.perf_counter()
                f.progress = self.reporter.started(f.item)
            elif f.progress is not None and kind in ("epoch", "batch"):
                f.progress(kind, payload)

    def record(self, ref) -> None:
        f = self.flights.pop(ref)
        self.drain()
        f.recorded = True
        if f.started is None:  # it ended before its start event arrived
            f.started = f.submitted
            self.reporter.started(f.item)
        try:
            r: TaskResult = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the worker or its node died, the task was cancelled
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            self.reporter.finished(f.item, None, RemoteExperimentError(
                f"the Ray worker running it was lost ({type(exc).__name__}: {first})"),
                time.perf_counter() - f.started, None, str(exc))
        except Exception as exc:  # the outcome could not be read here (e.g. an unpicklable field)
            self.reporter.finished(f.item, None, exc, time.perf_counter() - f.started, None, traceback.format_exc())
        else:
            self._warn_unshared(r.node, r.sees_run_folder)
            if r.error is not None:
                self.reporter.finished(f.item, None, RemoteExperimentError(r.error), r.seconds, r.split, r.trace)
            else:
                self.reporter.finished(f.item, r.outcome, None, r.seconds, r.split)
        self.unfinished[f.item.exp.study].discard(f.item.exp.id)

    def _warn_unshared(self, node: str, sees_run_folder: bool) -> None:
        if not sees_run_folder and node not in self.warned_nodes:
            self.warned_nodes.add(node)
            self.say(f"[yellow]Ray node {node} does not see the results folder {escape(self.store_root)}: training "
                     "checkpoints stay on that node's disk, so an interrupted experiment resumes only if it "
                     "runs there again. Put the results folder on a filesystem every node mounts.[/]")


@dataclass
class _LLMJob:
    """An LLM experiment computing in a driver thread; the main thread records it when done."""
    item: PlannedExperiment
    t0: float = field(default_factory=time.perf_counter)
    split: SplitData | None = None
    outcome: Outcome | None = None
    error: BaseException | None = None
    trace: str | None = None
    seconds: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)

    def start(self, run, progress) -> _LLMJob:
        def go():
            from .context import compute

            try:
                self.split = run.splits.get(self.item.exp)
                self.outcome = compute(self.item, run, self.split, progress)
            except Exception as exc:
                self.error, self.trace = exc, traceback.format_exc()
            finally:
                self.seconds = time.perf_counter() - self.t0
                self.done.set()

        threading.Thread(target=go, name=f"llm {self.item.exp.id}", daemon=True).start()
        return self


def _probe(address: str) -> None:
    """Fail at once, with a hint, when nothing listens at a HOST:PORT address."""
    hostport = address.removeprefix("ray://")
    if hostport in ("auto", "local"):
        return
    host, _, port = hostport.rpartition(":")
    if not port.isdigit():
        raise FerbenchError(f"Ray address {address!r}: expected HOST:PORT (the head node's GCS port, 6379 by "
                            "default), ray://HOST:PORT or auto")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
    except OSError as exc:
        raise FerbenchError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start its head with "
                            "`ray start --head` or leave out --address (and RAY_ADDRESS) for a local Ray "
                            "instance") from None


def _onnx_file(exp) -> bool:
    """An ONNX model file: onnxruntime's CPU wheel runs it on the CPU, so by default its task reserves no
    GPU (a suite whose workers have onnxruntime-gpu asks with ``resources: {gpus: 1}``)."""
    um = getattr(exp, "user_model", None)
    return um is not None and str(um.load or um.checkpoint or "").lower().endswith(".onnx")


class RayExecutor:
    """Train/load experiments as Ray tasks, LLM experiments in the driver after their study's models."""
    name = "ray"

    def __init__(self, address: str | None = None, console=None, device: str = "auto"):
        if ray is None:
            raise FerbenchError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        if self.address:
            _probe(self.address)  # before the data loads: Ray itself retries an absent cluster for minutes
        self.console = console
        self.device = device
        self._owned = False  # this run started (or connected) Ray, so it shuts it down

    # --- cluster -----------------------------------------------------------------------------------------
    def _connect(self) -> str:
        if ray.is_initialized():  # e.g. a notebook or test that called ray.init itself
            return "the Ray instance this process already uses"
        where = self.address or "local"
        try:
            ctx = ray.init(address=where, logging_level=logging.WARNING, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise FerbenchError(f"could not connect to the Ray cluster at {where!r}: {exc}. Start one with "
                                "`ray start --head`, or leave out --address (and RAY_ADDRESS) for a local "
                                "Ray instance") from None
        self._owned = True
        text = "a local Ray instance" if where == "local" else f"the Ray cluster at {where}"
        url = getattr(ctx, "dashboard_url", None)
        return text + (f"; dashboard http://{url}" if url else "")

    def _shutdown(self) -> None:
        if self._owned:
            ray.shutdown()
            self._owned = False

    @staticmethod
    def _node_capacity() -> dict[str, float]:
        """The most CPUs and GPUs any one alive node offers: a task asking for more never starts."""
        cap = {"CPU": 0.0, "GPU": 0.0}
        for n in ray.nodes():
            if n.get("Alive"):
                for k in cap:
                    cap[k] = max(cap[k], float(n.get("Resources", {}).get(k, 0.0)))
        return cap

    def _resources(self, exp, has_gpus: bool) -> Resources:
        asked = getattr(exp, "resources", None)
        gpus = 1.0 if has_gpus and self.device != "cpu" and not _onnx_file(exp) else 0.0
        cpus = 1.0
        if asked is not None:
            gpus = asked.gpus if asked.gpus is not None else gpus
            cpus = asked.cpus if asked.cpus is not None else cpus
        if self.device == "cpu":
            gpus = 0.0  # --device cpu wins over a suite's GPU request
        return Resources(gpus=gpus, cpus=cpus)

    # --- the run -------------------------------------------------------------------------------------------
    def run(self, items, run, reporter) -> None:
        models = [i for i in items if i.exp.kind != "llm"]
        llms = [i for i in items if i.exp.kind == "llm"]
        if not models:  # nothing to distribute: no cluster needed
            from .local import LocalExecutor

            LocalExecutor().run(llms, run, reporter)
            return
        say = self.console.print if self.console is not None else print
        where = self._connect()
        try:
            self._run(models, llms, run, reporter, where, say)
        finally:
            self._shutdown()

    def _submit(self, models, reporter, has_gpus: bool, cap: dict, say, task_args) -> dict:
        """Each model experiment as a Ray task sized by its resources; an ObjectRef -> _Flight map."""
        data_box, spec, events, tasks = task_args
        flights: dict = {}
        for item in models:
            res = self._resources(item.exp, has_gpus)
            if res.cpus > cap["CPU"] or res.gpus > cap["GPU"]:
                msg = (f"asks the Ray cluster for {res.describe()} but its largest node has {cap['CPU']:g} CPU(s) "
                       f"and {cap['GPU']:g} GPU(s)")
                if self.address is None:  # a local instance cannot grow: the task would wait forever
                    reporter.started(item)
                    reporter.finished(item, None, RemoteExperimentError(
                        f"{msg}; lower its 'resources:' in the suite or profile"), 0.0, None)
                    continue
                say(f"[yellow]{escape(item.exp.id)} {msg}; it waits until such a node joins[/]")
            ref = tasks[res.gpus > 0].options(**res.options(), name=item.exp.id).remote(item, data_box, spec, res, events)
            flights[ref] = _Flight(item, time.perf_counter())
        return flights

    def _run(self, models, llms, run, reporter, where: str, say) -> None:
        total = ray.cluster_resources()
        cap = self._node_capacity()
        has_gpus = total.get("GPU", 0) > 0
        if self.device == "cuda" and not has_gpus:
            raise FerbenchError("--device cuda was asked for but the Ray cluster has no GPU")
        say(f"[bold]Ray[/]: {escape(where)}; {total.get('CPU', 0):g} CPU(s), {total.get('GPU', 0):g} GPU(s) in "
            f"{sum(1 for n in ray.nodes() if n.get('Alive'))} node(s); {len(models)} model experiment(s) as Ray tasks"
            + (f", {len(llms)} LLM experiment(s) in this process" if llms else ""))

        store_root = str(Path(run.store.root).resolve())
        spec = TaskSpec(store_root, run.profile, dataclasses.replace(run.options, llm=None), self.device)
        data_box = [ray.put(run.data)]  # decoded once; workers read it from the object store
        events = ray.remote(num_cpus=0)(_Events).remote()
        tasks = remote_tasks()

        flights = self._submit(models, reporter, has_gpus, cap, say, (data_box, spec, events, tasks))
        waiting_llms, llm_job = list(llms), None
        track = _Tracker(flights, reporter, events, say, store_root)

        try:
            while flights or waiting_llms or llm_job is not None:
                if llm_job is None:
                    ready = next((i for i in waiting_llms if not track.unfinished.get(i.exp.study)), None)
                    if ready is not None:  # its study's models are all recorded
                        waiting_llms.remove(ready)
                        llm_job = _LLMJob(ready).start(run, reporter.started(ready))
                if flights:
                    done, _ = ray.wait(list(flights), num_returns=1, timeout=POLL_SECONDS)
                    if done:
                        done, _ = ray.wait(list(flights), num_returns=len(flights), timeout=0)
                    for ref in done:
                        track.record(ref)
                    track.drain()
                elif llm_job is not None:
                    llm_job.done.wait(POLL_SECONDS)
                if llm_job is not None and llm_job.done.is_set():
                    j, llm_job = llm_job, None
                    reporter.finished(j.item, j.outcome, j.error, j.seconds, j.split, j.trace)
        except BaseException:
            # Ctrl-C or a driver failure: what is running is lost; finished results are already stored,
            # and the training checkpoints let a re-run resume.
            for ref in flights:
                ray.cancel(ref, force=True)
            raise
        finally:
            ray.kill(events)
