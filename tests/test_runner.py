import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import cache_with_catalogue, one_study_suite, sigkill_when

from ferbench.cli import main

REPO = Path(__file__).resolve().parents[1]


def _suite(tmp_path, body: str) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(body)
    return p


SMALL = one_study_suite("""
      - model: [basic_cnn, mlp]
      - model: resnet50_transfer
        pretrained: true""", data="synthetic:1400:2", defaults="{epochs: 2, batch_size: 64}",
                        split="{kind: official, train_per_class: 20, eval_per_class: 10}")


def _results(root: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in root.glob("*/result.json")}


def test_failure_is_recorded_others_run_and_exit_code_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    r = CliRunner().invoke(main, ["run", str(_suite(tmp_path, SMALL)), "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 1
    res = _results(tmp_path / "res" / "t")
    assert res["s.basic_cnn"]["status"] == "ok" and res["s.mlp"]["status"] == "ok"
    bad = res["s.resnet50_transfer"]
    assert bad["status"] == "failed" and "ImageNet weights for resnet50_transfer are not available" in bad["error"]
    assert "resnet50-0676ba61.pth" in bad["error"]
    md = (tmp_path / "res/t/report.md").read_text()
    assert "s.resnet50_transfer failed" in md
    # result.json carries config, hash, environment-level facts
    ok = res["s.basic_cnn"]
    assert ok["config"]["train"]["epochs"] == 2 and len(ok["config_hash"]) == 28
    assert ok["timing"]["inference"]["ms_per_image"] > 0 and ok["parameters"]["total"] == 839047
    run = json.loads((tmp_path / "res/t/run.json").read_text())
    assert run["environment"]["versions"]["torch"] and run["data"]["counts"]["Training"]
    pred = (tmp_path / "res/t/s.basic_cnn/predictions.csv").read_text().splitlines()
    assert pred[0].startswith("id,split,true,predicted,p_angry") and len(pred) - 1 == sum(
        ok["split"]["sizes"][k] for k in ("val", "test"))


def test_rerun_reuses_and_changed_config_reruns(tmp_path):
    suite = _suite(tmp_path, SMALL.replace("      - model: resnet50_transfer\n        pretrained: true\n", ""))
    args = ["run", str(suite), "--results-dir", str(tmp_path / "res")]
    assert CliRunner().invoke(main, args).exit_code == 0
    first = _results(tmp_path / "res/t")
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "2 reused" in r.output and "0 run" in r.output
    suite.write_text(suite.read_text().replace("      - model: [basic_cnn, mlp]",
                                               "      - model: basic_cnn\n      - model: mlp\n        train: {lr: 0.01}"))
    r = CliRunner().invoke(main, args)
    assert "1 run, 1 reused" in r.output, r.output
    again = _results(tmp_path / "res/t")
    assert again["s.basic_cnn"]["finished"] == first["s.basic_cnn"]["finished"]
    assert again["s.mlp"]["config_hash"] != first["s.mlp"]["config_hash"]
    # a partial run keeps the rest of the suite in the report
    r = CliRunner().invoke(main, args + ["--only", "s.mlp"])
    assert "1 reused" in r.output
    assert set(json.loads((tmp_path / "res/t/run.json").read_text())["experiments"]) == {"s.basic_cnn", "s.mlp"}


def test_dry_run_estimates_each_training_from_a_short_calibration(tmp_path, monkeypatch):
    from ferbench import estimates as bench

    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # an idle machine: calibrations are cached
    monkeypatch.setattr(bench, "STEADY_RATIO", float("inf"))  # however much this shared machine's speed moves
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FERBENCH_CACHE", str(cache_with_catalogue(tmp_path / "cache")))
    r = CliRunner().invoke(main, ["run", str(_suite(tmp_path, SMALL)), "--results-dir", str(tmp_path / "res"),
                                  "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    plan = {p["id"]: p for p in json.loads(r.output[r.output.index("{"):])["plan"]}
    assert plan["s.basic_cnn"]["estimated_seconds"] > 0 and plan["s.mlp"]["estimated_seconds"] > 0
    assert plan["s.resnet50_transfer"]["estimated_seconds"] is None  # no weights: it will fail, not be timed
    assert not list((tmp_path / "res").rglob("result.json"))  # nothing was trained
    cache = tmp_path / "cache" / "calibration.json"
    assert len(json.loads(cache.read_text())) == 2  # one calibration per model, kept for the next run


@pytest.mark.parametrize("load, cores, hinted", [(1.6, 2, True), (0.2, 2, False), (1.6, 16, False)])
def test_a_busy_small_cpu_gets_the_one_thread_hint(tmp_path, monkeypatch, load, cores, hinted):
    import torch

    monkeypatch.setenv("FERBENCH_CACHE", str(cache_with_catalogue(tmp_path / "cache")))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    suite = _suite(tmp_path, SMALL.replace("[basic_cnn, mlp]", "mlp").replace(
        "      - model: resnet50_transfer\n        pretrained: true\n", ""))
    r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res"), "--dry-run",
                                  "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert ("--threads auto" in " ".join(r.output.split())) is hinted  # the hint names the flag
    if hinted:
        assert f"load average is {load:.1f} on {cores} cores" in " ".join(r.output.split())


def test_monitor_subset_reaches_fit_and_metrics_use_the_full_validation_set(tmp_path, monkeypatch):
    import ferbench.experiments.train as T

    seen, real_fit = [], T.fit
    monkeypatch.setattr(T, "fit", lambda m, xt, yt, xv, yv, cfg, **kw: seen.append(len(xv)) or
                        real_fit(m, xt, yt, xv, yv, cfg, **kw))
    suite = _suite(tmp_path, """name: t
data: synthetic:1400:2
profiles: {tiny: {max_epochs: 1, monitor_per_class: 3}}
studies:
  - name: s
    split: {kind: holdout, val_fraction: 0.2}
    experiments: [{model: mlp}]
""")
    r = CliRunner().invoke(main, ["run", str(suite), "--profile", "tiny", "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    res = _results(tmp_path / "res" / "t-tiny")["s.mlp"]
    assert seen == [3 * 7]  # per-epoch validation: 3 images per class
    assert res["metrics"]["val"]["n"] == res["split"]["sizes"]["val"] > 21  # reported: the whole validation set
    assert any("per-epoch validation" in d for d in res["deviations"])


def test_autocast_training_is_recorded_as_a_deviation(tmp_path):
    suite = _suite(tmp_path, """name: a
data: synthetic:700:2
defaults: {epochs: 1}
studies:
  - name: s
    experiments:
      - {model: mlp, label: fp32, train: {amp: "off"}}
      - {model: mlp, label: bf16, train: {amp: bf16}}
""")
    r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    res = _results(tmp_path / "res" / "a")
    assert res["s.bf16"]["training"]["autocast"] == "bfloat16"
    assert any("final val/test evaluation under bfloat16 autocast" in d for d in res["s.bf16"]["deviations"])
    assert res["s.fp32"]["training"]["autocast"] is None
    assert not any("autocast" in d for d in res["s.fp32"]["deviations"])
    report = (tmp_path / "res" / "a" / "report.md").read_text()
    assert "bfloat16 autocast" in report
    # The reported numbers are those of the model as trained: its predictions were computed under bf16.
    import csv

    import numpy as np
    import torch

    from ferbench.data import load_data
    from ferbench.engine import predict_proba
    from ferbench.models.loading import load_user_model
    from ferbench.schema.suite import UserModelConfig

    exp_dir = tmp_path / "res" / "a" / "s.bf16"
    with open(exp_dir / "predictions.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"]
    data = load_data("synthetic:700:2")
    pos = {i: n for n, i in enumerate(data.ids)}
    images = data.images[[pos[r["id"]] for r in rows]]
    saved = np.array([[float(v) for k, v in r.items() if k.startswith("p_")] for r in rows])
    m = load_user_model(UserModelConfig(name="mlp", checkpoint=str(exp_dir / "model.pt")), data.classes).model
    cpu = torch.device("cpu")
    assert np.allclose(predict_proba(m, images, cpu, 128, torch.bfloat16), saved, atol=2e-5)
    assert not np.allclose(predict_proba(m, images, cpu, 128), saved, atol=2e-5)
    # --eval-only scores it the same way and says so once, whatever an earlier result's wording was.
    before = json.loads((exp_dir / "result.json").read_text())
    before["deviations"].append("training steps and per-epoch validation under bfloat16 autocast (amp: bf16), "
                                "final val/test metrics in fp32")  # the wording results had before
    (exp_dir / "result.json").write_text(json.dumps(before))
    r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res"), "--device", "cpu",
                                  "--eval-only"])
    assert r.exit_code == 0, r.output
    after = _results(tmp_path / "res" / "a")["s.bf16"]
    assert after["metrics"]["test"]["accuracy"] == before["metrics"]["test"]["accuracy"]
    assert [d for d in after["deviations"] if "autocast" in d] == [
        "training, per-epoch validation and the final val/test evaluation under bfloat16 autocast (amp: bf16)"]


@pytest.mark.slow
def test_sigkill_midway_then_rerun_completes_without_redoing(tmp_path):
    suite = _suite(tmp_path, """name: k
data: synthetic:3500:1
defaults: {epochs: 4}
studies:
  - name: s
    split: {kind: official}
    experiments: [{model: basic_cnn, label: a}, {model: basic_cnn, label: b}, {model: basic_cnn, label: c}]
""")
    res = tmp_path / "res"
    cmd = [sys.executable, "-m", "ferbench.cli", "run", str(suite), "--results-dir", str(res)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # kill once 'a' is done and 'b' has a checkpoint
    sigkill_when(cmd, env, lambda: (res / "k/s.a/result.json").exists()
                 and bool(list((res / "k/s.b").glob("checkpoint-*.pt"))))
    done_before = _results(res / "k")
    assert set(done_before) == {"s.a"}
    for p in (res / "k").rglob("*.json"):
        json.loads(p.read_text())  # nothing torn
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    after = _results(res / "k")
    assert set(after) == {"s.a", "s.b", "s.c"}
    assert after["s.a"]["finished"] == done_before["s.a"]["finished"]  # not redone
    assert after["s.b"]["training"]["resumed_from_epoch"] >= 1
    assert not list((res / "k").rglob("checkpoint-*.pt"))
    assert (res / "k/report.html").exists()


def test_demo_suite_smoke_profile(tmp_path):
    r = CliRunner().invoke(main, ["run", str(REPO / "suites/demo.yaml"), "--profile", "smoke",
                                  "--results-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "OPENAI_API_KEY is not set" in (tmp_path / "demo-smoke/report.md").read_text()


def test_a_cpu_driver_plans_a_ray_gpu_run_without_checking_its_own_device(tmp_path, monkeypatch):
    """--executor ray --device cuda from a laptop: the cluster's GPUs are checked when it connects; the
    driver neither dies on its own lack of CUDA nor times the models on its own CPU for GPU tasks."""
    import torch

    from ferbench import estimates as bench

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("FERBENCH_CACHE", str(cache_with_catalogue(tmp_path / "cache")))
    monkeypatch.setattr(bench, "calibrate", lambda *a, **k: pytest.fail("the driver calibrated on its own device"))
    suite = _suite(tmp_path, SMALL.replace("[basic_cnn, mlp]", "mlp").replace(
        "      - model: resnet50_transfer\n        pretrained: true\n", ""))
    r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res"), "--dry-run",
                                  "--executor", "ray", "--device", "cuda"])
    assert r.exit_code == 0, r.output
    assert "none under --executor ray" in " ".join(r.output.split())
