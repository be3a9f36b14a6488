"""pytest-benchmark of suites/strong.yaml's training step (skipped by the default run; run with
`.venv/bin/python -m pytest tests/benchmarks/test_strong_step.py --benchmark-only`): the cpu profile's
model and settings exactly as fit() runs them -- augmentation warp, bf16 autocast where amp: auto picks
it, SGD + Nesterov step -- on real FER2013 when present. Seconds per step x 449 steps is one epoch."""
from pathlib import Path

import torch
import torch.nn.functional as F
from conftest import REAL_DATA

from ferbench.data import load_data
from ferbench.engine import build_optimizer, model_amp_dtype, prepare_model, to_device_images, training_batch
from ferbench.models import create_model
from ferbench.suite import Overrides, expand, load_suite

CPU = torch.device("cpu")


def test_train_step_strong_cpu_profile(benchmark, monkeypatch):
    monkeypatch.setenv("FERBENCH_CPU_BF16", "1")  # the host's own choice (conftest pins fp32 for tests)
    suite = load_suite(Path(__file__).resolve().parents[2] / "suites" / "strong.yaml")
    exp = next(e for e in expand(suite, "cpu", overrides=Overrides()) if e.kind == "train")
    cfg = exp.train
    assert exp.model == "strong_vgg" and cfg.nesterov and cfg.tta == "flip" and cfg.label_smoothing == 0.1
    d = load_data(str(REAL_DATA)) if REAL_DATA.exists() else load_data("synthetic:3500")
    tr = d.usage == "Training"
    x, y = to_device_images(d.images[tr][:4096], CPU), torch.from_numpy(d.labels[tr][:4096])
    torch.manual_seed(0)
    m = prepare_model(create_model(exp.model, **exp.model_args), cfg, CPU).train()
    dtype = model_amp_dtype(cfg, CPU, m)
    opt = build_optimizer(m, cfg)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    state = {"s": 0, "losses": []}
    before = [p.detach().clone() for p in m.parameters()]

    def step():
        s = state["s"] = (state["s"] + 1) % (len(x) // cfg.batch_size)
        idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(m(training_batch(x, idx, cfg, g)).float(), y[idx],
                                   label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["losses"].append(loss.item())
        return loss.item()

    benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=3)
    losses = state["losses"]
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, m.parameters())), "no weight changed"
