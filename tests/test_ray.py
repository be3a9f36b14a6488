"""The Ray executor: same files, reuse and failure recording as a local run, on a local 2-CPU Ray instance.

One Ray instance serves the module (starting one takes seconds); the CLI run in a subprocess joins
it with --address. Everything but the install message skips when ray is not installed.
"""
import importlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ferbench.cli import main
from ferbench.errors import FerbenchError

from conftest import RAY_STORE_BYTES, sigkill_when
from fake_openai import FakeOpenAI, Reply
REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-test-" + "R" * 30


def test_missing_ray_says_how_to_install():
    import ferbench.executors.ray as mod

    saved = sys.modules.get("ray")
    sys.modules["ray"] = None  # import ray -> ImportError
    try:
        importlib.reload(mod)
        with pytest.raises(FerbenchError, match=r"pip install 'ferbench\[ray\]'"):
            mod.RayExecutor()
    finally:
        if saved is None:
            del sys.modules["ray"]
        else:
            sys.modules["ray"] = saved
        importlib.reload(mod)


def test_resources_experiment_over_profile_and_not_hashed(tmp_path):
    from pydantic import ValidationError

    from ferbench.schema.suite import ResourcesConfig
    from ferbench.suite import expand, load_suite

    p = tmp_path / "s.yaml"
    p.write_text("""name: r
data: synthetic:700:1
profiles:
  shared: {resources: {gpus: 0.5, cpus: 2}}
studies:
  - name: s
    experiments:
      - {model: mlp}
      - {model: basic_cnn, resources: {cpus: 4}}
""")
    suite = load_suite(p)
    shared = {e.model: e for e in expand(suite, "shared")}
    assert shared["mlp"].resources == ResourcesConfig(gpus=0.5, cpus=2)
    assert shared["basic_cnn"].resources == ResourcesConfig(gpus=0.5, cpus=4)
    plain = {e.model: e for e in expand(suite, "paper")}
    assert plain["mlp"].resources is None and plain["basic_cnn"].resources == ResourcesConfig(cpus=4)
    # scheduling never changes what a result is: a stored result stays reusable
    assert shared["basic_cnn"].config_hash() == plain["basic_cnn"].config_hash()
    with pytest.raises(ValidationError, match="share of one GPU"):
        ResourcesConfig(gpus=1.5)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance with 2 CPUs; yields its address for drivers in other processes."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             object_store_memory=RAY_STORE_BYTES)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_default_resources(cluster):
    from ferbench.executors.ray import RayExecutor
    from ferbench.schema.suite import ResourcesConfig

    class Exp:
        resources = None

    e = Exp()
    assert RayExecutor()._resources(e, has_gpus=False).options() == {"num_gpus": 0.0, "num_cpus": 1.0}
    assert RayExecutor()._resources(e, has_gpus=True).options() == {"num_gpus": 1.0, "num_cpus": 1.0}
    e.resources = ResourcesConfig(gpus=0.25)
    assert RayExecutor()._resources(e, has_gpus=True).options() == {"num_gpus": 0.25, "num_cpus": 1.0}
    assert RayExecutor(device="cpu")._resources(e, has_gpus=True).gpus == 0  # --device cpu wins


def _suite(tmp_path, base_url: str) -> Path:
    (tmp_path / "broken.pt").write_bytes(b"not a model")  # fails on purpose, on a worker
    p = tmp_path / "suite.yaml"
    p.write_text(f"""name: r
data: synthetic:700:1
defaults: {{epochs: 1, batch_size: 64}}
studies:
  - name: s
    split: {{kind: official, train_per_class: 20, eval_per_class: 8}}
    experiments:
      - model: [mlp, basic_cnn, rnn]
      - model: {{load: broken.pt, input: {{size: 48, channels: 1}}}}
        label: broken
    llm:
      endpoints: [{{model: fake, base_url: "{base_url}", api_key_env: FAKE_KEY}}]
      sample: {{per_class: 1}}
""")
    return p


def _results(root: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in root.glob("*/result.json")}


def _stable(r: dict) -> dict:
    """A result without what differs between any two runs (times, timings, an LLM's request wall time)."""
    out = {k: v for k, v in r.items() if k not in ("wall_seconds", "finished", "timing", "throughput")}
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in r.get("history") or []]
    return out


def test_same_results_as_local_failure_recorded_llm_in_driver(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", SECRET)
    suite = None
    with FakeOpenAI(lambda n, sha, body: Reply("happy")) as srv:
        suite = _suite(tmp_path, srv.base_url)
        # CPU float sums depend on the thread count; a Ray task uses as many threads as CPUs it declares
        # (1 here), so the local run gets 1 too: then the numbers must agree bit for bit.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            local = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "local"), "--no-cache"])
        finally:
            torch.set_num_threads(threads)
        remote = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "ray"), "--no-cache",
                                           "--executor", "ray"])
    assert local.exit_code == remote.exit_code == 1, remote.output  # the broken model fails both runs
    out = " ".join(remote.output.split())  # the console wraps long lines
    assert "Ray: the Ray instance this process already uses; 2 CPU(s), 0 GPU(s)" in out, out
    assert "4 model experiment(s) as Ray tasks, 1 LLM experiment(s) in this process" in out
    # every result line, as it arrives; the LLM only after all models of its study
    lines = [ln for ln in remote.output.splitlines() if "/5 s." in ln]
    assert len(lines) == 5 and "s.llm.fake" in lines[-1], lines
    assert "5/5: 0 running, 0 queued, 4 done, 0 reused, 1 failed" in out

    a, b = _results(tmp_path / "local/r"), _results(tmp_path / "ray/r")
    assert set(a) == set(b) == {"s.mlp", "s.basic_cnn", "s.rnn", "s.broken", "s.llm.fake"}
    for eid in a:
        assert _stable(a[eid]) == _stable(b[eid]), eid  # config, hash, metrics, history, file digests
    for eid in ("s.mlp", "s.basic_cnn", "s.rnn"):
        assert b[eid]["status"] == "ok" and set(b[eid]["files"]) == {"predictions.csv", "model.pt"}
        assert (tmp_path / f"local/r/{eid}/predictions.csv").read_bytes() == \
            (tmp_path / f"ray/r/{eid}/predictions.csv").read_bytes()
        assert not list((tmp_path / f"ray/r/{eid}").glob("checkpoint-*.pt"))  # removed once complete
    assert b["s.llm.fake"]["status"] == "ok" and b["s.llm.fake"]["metrics"]
    bad = b["s.broken"]
    assert bad["status"] == "failed" and "broken.pt" in bad["error"]
    assert "on Ray node" in (tmp_path / "ray/r/s.broken/error.log").read_text()
    assert (tmp_path / "ray/r/report.html").exists() and "s.broken failed" in (tmp_path / "ray/r/report.md").read_text()


def test_an_address_where_no_cluster_listens_fails_at_once(tmp_path):
    pytest.importorskip("ray")
    from ferbench.executors.ray import RayExecutor

    t0 = time.perf_counter()
    with pytest.raises(FerbenchError, match="no Ray cluster answers at 127.0.0.1:1 .*ray start --head"):
        RayExecutor(address="127.0.0.1:1")
    assert time.perf_counter() - t0 < 15
    with pytest.raises(FerbenchError, match="expected HOST:PORT"):
        RayExecutor(address="head-node")


def test_a_task_no_node_can_hold_fails_instead_of_waiting(cluster, tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("""name: big
data: synthetic:700:1
defaults: {epochs: 1}
studies:
  - name: s
    experiments: [{model: mlp, resources: {cpus: 64}}]
""")
    r = CliRunner().invoke(main, ["run", str(p), "--results-dir", str(tmp_path), "--executor", "ray"])
    assert r.exit_code == 1
    res = _results(tmp_path / "big")["s.mlp"]
    assert res["status"] == "failed" and "asks the Ray cluster for 64 CPU" in res["error"]
    assert "largest node has 2 CPU(s)" in res["error"]


@pytest.mark.slow
def test_sigkill_driver_then_rerun_reuses_and_resumes(cluster, tmp_path):
    suite = tmp_path / "k.yaml"
    suite.write_text("""name: k
data: synthetic:700:1
defaults: {epochs: 3}
studies:
  - name: s
    split: {kind: official, train_per_class: 40, eval_per_class: 8}
    experiments: [{model: mlp, label: a}, {model: mlp, label: b}, {model: mlp, label: c}]
""")
    res = tmp_path / "res" / "k"
    cmd = [sys.executable, "-m", "ferbench.cli", "run", str(suite), "--results-dir", str(tmp_path / "res"),
           "--executor", "ray", "--address", cluster]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def ready():  # one experiment stored and another with a checkpoint
        done = {p.parent.name for p in res.glob("*/result.json")}
        return bool(done) and any(p.parent.name not in done for p in res.glob("*/checkpoint-*.pt"))

    sigkill_when(cmd, env, ready)
    before = _results(res)
    assert before and set(before) < {"s.a", "s.b", "s.c"}
    for p in res.rglob("*.json"):
        json.loads(p.read_text())  # nothing torn
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    after = _results(res)
    assert set(after) == {"s.a", "s.b", "s.c"} and all(v["status"] == "ok" for v in after.values())
    for eid, v in before.items():
        assert after[eid]["finished"] == v["finished"]  # reused, not redone
    assert f"{len(before)} reused" in r.stdout
    assert max(after[e]["training"]["resumed_from_epoch"] or 0 for e in set(after) - set(before)) >= 1
    assert not list(res.rglob("checkpoint-*.pt"))
