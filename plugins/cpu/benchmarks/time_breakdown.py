"""Where one CPU throughput run spends its time, next to what the machine can do.

Runs ``llmrt bench throughput`` in this process with wall-clock timers around each kind of work:
the matrix products (by phase and weight shape, with their GFLOP/s), paged attention, the small
native ops, sampling, the forward passes, and the engine's host work between them. Then it
measures two ceilings on the same machine: the products' rate on cache-resident weights (the
cores' multiply-add rate) and a plain streaming read (the memory's). The gap between a row and
its ceiling is what a faster kernel could still win; the host rows are Python.

    .venv/bin/python plugins/cpu/benchmarks/time_breakdown.py          # the side-by-side model
    .venv/bin/python plugins/cpu/benchmarks/time_breakdown.py --dtype bfloat16 --output-len 256

The timers add about 1 us a call (4,000-odd calls a run): throughput is a few percent below a
plain ``llmrt bench throughput`` run. Prompt and decode are told apart by rows: a product of more
than 64 rows is counted as prompt work.
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
PROMPT_ROWS = 64

seconds: collections.Counter = collections.Counter()
calls: collections.Counter = collections.Counter()
flops: collections.Counter = collections.Counter()


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
    from llmrt.engine import llm_engine, model_runner
    from llmrt.sched import scheduler
    from llmrt_cpu import attention, linear_packing, ops

    product = linear_packing.PackedWeight.__call__

    def timed_product(self: Any, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        start = time.perf_counter()
        out = product(self, x, bias)
        rows = x.numel() // x.shape[-1]
        n, k = self.weight.shape
        key = f"product {'prompt' if rows > PROMPT_ROWS else 'decode'} {n}x{k}"
        seconds[key] += time.perf_counter() - start
        calls[key] += 1
        flops[key] += 2 * rows * n * k
        return out

    linear_packing.PackedWeight.__call__ = timed_product
    paged = attention.CpuPagedAttention
    paged.forward = timed("paged attention (with KV writes)", paged.forward)
    for name, op in list(ops.NATIVE_OPS.items()):  # the ops table is read when the model is built
        ops.NATIVE_OPS[name] = timed(f"op {name}", op)
    runner = model_runner.ModelRunner
    runner._run_model = timed("forward passes", runner._run_model)
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
        product = PackedWeight(weight)
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
    print(f"{'host: Python (steps less the rows above)':44s} {rest:7.3f} {rest / total:6.1%}")
    product = hot_product_gflops(getattr(torch, args.dtype))
    print(f"\nceilings: 32-row product on cache-resident weights {product:.0f} GFLOP/s; "
          f"plain streaming read {stream_gbps():.1f} GB/s ({torch.get_num_threads()} threads)")


def main() -> None:
    args = parse_args()
    instrument()
    run_workload(args)
    report(args)


if __name__ == "__main__":
    main()
