"""The same four experiments run one after another in this process (``--executor local``) and as
Ray tasks on a 2-CPU local Ray instance (two workers, one thread each). Skipped by the default test
run; run it with

    .venv/bin/python -m pytest tests/benchmarks/test_ray_scaling.py --benchmark-only -n 0 -s

The timed call is the Ray run; the sequential runs happen in each round's setup, right before it,
so both see the same machine load. ``extra_info`` holds every time and the ratio of the medians.
Four equal experiments on two workers could at best take half the time; what a 2-core machine
shows instead is mostly Ray's overhead (worker start, torch import per worker, result transfer)
against per-process thread efficiency. The point of the executor is machines with more devices.
"""
import logging
import statistics
import time

import pytest
import torch
from conftest import RAY_STORE_BYTES, one_study_suite
from rich.console import Console

from ferbench.runner import RunRequest, run_suite

ROUNDS = 3
SUITE = one_study_suite(" [{model: basic_cnn, label: a}, {model: basic_cnn, label: b},\n"
                        "                  {model: basic_cnn, label: c}, {model: basic_cnn, label: d}]",
                        data="synthetic:3500:0", defaults="{epochs: 2, batch_size: 64}", name="scale")


def _run(suite, results, executor: str) -> float:
    t0 = time.perf_counter()
    s = run_suite(suite, RunRequest(results_dir=results, device="cpu", executor=executor, report=False),
                  console=Console(quiet=True))
    assert len(s.done) == 4 and not s.failed
    return time.perf_counter() - t0


def test_four_experiments_sequential_vs_ray_2_workers(benchmark, tmp_path):
    ray = pytest.importorskip("ray")
    suite = tmp_path / "scale.yaml"
    suite.write_text(SUITE)
    t0 = time.perf_counter()
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             object_store_memory=RAY_STORE_BYTES)
    ray_start = time.perf_counter() - t0
    times = {"sequential": [], "sequential_1_thread": [], "ray": []}
    n = iter(range(10_000))

    def setup():
        i = next(n)
        times["sequential"].append(_run(suite, tmp_path / f"seq{i}", "local"))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what each Ray task uses: shows how much is parallelism
        try:
            times["sequential_1_thread"].append(_run(suite, tmp_path / f"seq1_{i}", "local"))
        finally:
            torch.set_num_threads(threads)
        return (tmp_path / f"ray{i}",), {}

    def on_ray(results):
        times["ray"].append(_run(suite, results, "ray"))

    try:
        benchmark.pedantic(on_ray, setup=setup, rounds=ROUNDS, iterations=1)
    finally:
        ray.shutdown()
    med = {k: statistics.median(v) for k, v in times.items()}
    benchmark.extra_info.update(
        ray_start_seconds=ray_start, torch_threads_sequential=torch.get_num_threads(),
        **{f"{k}_seconds": v for k, v in times.items()},
        **{f"{k}_median_seconds": v for k, v in med.items()},
        ratio_sequential_over_ray=med["sequential"] / med["ray"],
        ratio_sequential_1_thread_over_ray=med["sequential_1_thread"] / med["ray"])
    print(f"\nfour experiments: sequential {med['sequential']:.1f} s ({torch.get_num_threads()} threads), "
          f"sequential 1 thread {med['sequential_1_thread']:.1f} s, Ray 2 workers {med['ray']:.1f} s "
          f"(median of {ROUNDS}; rounds {', '.join(f'{t:.1f}' for t in times['ray'])} s, the first with cold "
          f"workers); ratio sequential/Ray {med['sequential'] / med['ray']:.2f}; Ray start {ray_start:.1f} s")
