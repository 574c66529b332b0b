"""Where one CPU throughput run spends its time, next to what the machine can do.

Runs ``llmrt bench throughput`` in this process with wall-clock timers around each kind of work:
the matrix products (by step kind and weight shape, with their GFLOP/s), paged attention, the
small native ops, sampling, the forward passes, and the engine's host work between them. Then it
measures two ceilings on the same machine: a 32-row product on weights resident in the last-level
cache (what the products reach when their weights need not come from memory) and a plain
streaming read (the memory's rate, best of 5). The gap between a row and its ceiling is what a
faster kernel could still win; the host rows are Python.

    .venv/bin/python plugins/cpu/benchmarks/time_breakdown.py          # the side-by-side model
    .venv/bin/python plugins/cpu/benchmarks/time_breakdown.py --dtype bfloat16 --output-len 256

The timers add about 1 us a call (about 10,000 calls a run): throughput is a few percent below a
plain ``llmrt bench throughput`` run. Counting starts with the first request (the startup
warm-up is left out). A product belongs to a "prompt" step when its step computes more tokens
than it has sequences, else to a "decode" step (the LM head included). Rows nest: the engine
steps contain everything, the forward passes their products, attention and ops.
"""

from __future__ import annotations

import argparse
import collections
import functools
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MODEL = ROOT / ".bench_venvs" / "models" / "qwen3-small"  # built by bench_cpu_peers.py
seconds: collections.Counter = collections.Counter()
calls: collections.Counter = collections.Counter()
flops: collections.Counter = collections.Counter()
step_kind = ["prompt"]  # the kind of the step running now (set when its forward pass starts)
untimed_product: Any = None  # the product before instrumentation, for the ceiling


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--num-prompts", type=int, default=32)
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    return p.parse_args()


def timed(category: str, function: Any) -> Any:
    """``function`` with its wall time added to ``category``."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[category] += time.perf_counter() - start
            calls[category] += 1
    return wrapper


def instrument() -> None:
    """Wrap the products, attention, native ops and the engine's phases (before any engine)."""
    global untimed_product
    from llmrt.bench import throughput
    from llmrt.engine import llm_engine, model_runner
    from llmrt.sched import scheduler
    from llmrt_cpu import attention, linear_packing, ops

    untimed_product = product = linear_packing.PackedWeight.__call__

    def timed_product(self: Any, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        start = time.perf_counter()
        out = product(self, x, bias)
        rows = x.numel() // x.shape[-1]
        n, k = self.weight.shape
        key = f"product {step_kind[0]} {n}x{k}"
        seconds[key] += time.perf_counter() - start
        calls[key] += 1
        flops[key] += 2 * rows * n * k
        return out

    def run_model(self: Any, ids: torch.Tensor, positions: torch.Tensor, metadata: Any, rows: Any = None) -> Any:
        step_kind[0] = "prompt" if metadata.num_tokens > metadata.num_seqs else "decode"
        return forward(self, ids, positions, metadata, rows)

    def run_to_completion(*args: Any, **kwargs: Any) -> Any:
        for counter in (seconds, calls, flops):  # forget the startup warm-up
            counter.clear()
        return workload(*args, **kwargs)

    workload, throughput.run_to_completion = throughput.run_to_completion, run_to_completion
    linear_packing.PackedWeight.__call__ = timed_product
    paged = attention.CpuPagedAttention
    paged.forward = timed("paged attention (with KV writes)", paged.forward)
    for name, op in list(ops.NATIVE_OPS.items()):  # read from this dict when plugins are collected
        ops.NATIVE_OPS[name] = timed(f"op {name}", op)
    runner = model_runner.ModelRunner
    forward = runner._run_model
    runner._run_model = timed("forward passes", run_model)
    runner._prepare = timed("host: step inputs", runner._prepare)
    runner._sample = timed("sampling", runner._sample)
    llm_engine.LLMEngine.step = timed("engine steps (all)", llm_engine.LLMEngine.step)
    llm_engine.LLMEngine._record = timed("host: record outputs", llm_engine.LLMEngine._record)
    scheduler.Scheduler.schedule = timed("host: schedule", scheduler.Scheduler.schedule)


def run_workload(args: argparse.Namespace) -> None:
    from llmrt.cli.main import main

    main(["--log-level", "WARNING", "bench", "throughput", "--dataset-name", "random",
          "--num-prompts", str(args.num_prompts), "--input-len", str(args.input_len),
          "--output-len", str(args.output_len), "--model", args.model, "--dtype", args.dtype,
          "--max-num-seqs", "256", "--max-num-batched-tokens", "4096", "--kv-cache-memory", "1"])


def best_of(function: Any, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def hot_product_gflops(dtype: torch.dtype) -> float:
    """A 32-row product on one cache-resident 3072x512 weight, repeated: the multiply-add rate."""
    from llmrt_cpu.linear_packing import PackedWeight, onednn_available

    weight, x = torch.randn(3072, 512).to(dtype), torch.randn(32, 512).to(dtype)
    if onednn_available():
        packed = PackedWeight(weight)
        product = lambda a: untimed_product(packed, a)  # noqa: E731
    else:
        product = lambda a: torch.nn.functional.linear(a, weight)  # noqa: E731
    for _ in range(20):
        product(x)
    return 2 * 32 * 3072 * 512 * 50 / best_of(lambda: [product(x) for _ in range(50)]) / 1e9


def stream_gbps() -> float:
    """A plain read of 512 MiB with every thread: the memory ceiling."""
    data = torch.ones(1 << 27)
    data.sum()
    return data.nbytes / best_of(data.sum) / 1e9


def report(args: argparse.Namespace) -> None:
    total = seconds["engine steps (all)"]
    measured = ("product", "paged", "op ", "sampling")
    kernels = sum(v for k, v in seconds.items() if k.startswith(measured))
    print(f"\n{'where':44s} {'s':>7s} {'share':>6s} {'calls':>6s} {'us/call':>8s} {'GFLOP/s':>8s}")
    for key in sorted(seconds, key=seconds.get, reverse=True):
        rate = f"{flops[key] / seconds[key] / 1e9:8.1f}" if flops[key] else ""
        print(f"{key:44s} {seconds[key]:7.3f} {seconds[key] / total:6.1%} {calls[key]:6d} "
              f"{seconds[key] / calls[key] * 1e6:8.1f} {rate}")
    rest = total - kernels
    print(f"{'host: Python (steps less products, attention, ops, sampling)':44s} {rest:7.3f} "
          f"{rest / total:6.1%}")
    hot = hot_product_gflops(getattr(torch, args.dtype))
    print(f"\nceilings: 32-row product on cache-resident weights {hot:.0f} GFLOP/s; "
          f"plain streaming read {stream_gbps():.1f} GB/s ({torch.get_num_threads()} threads)")


def main() -> None:
    args = parse_args()
    instrument()
    run_workload(args)
    report(args)


if __name__ == "__main__":
    main()
