"""Decode attention and KV-cache writes of the CPU kernels, at the throughput benchmark's shape.

Calls ``llmrt_cpu._C`` the way ``llmrt_cpu/attention.py`` does: a batch of decode tokens (one per
sequence) over a paged cache of several layers, visited in turn as a model's layers are, so the
K/V a call reads come from memory rather than from the last-level cache. Reports the median time
per call and the K/V bytes read per second, next to a plain streaming read of a large tensor.

    python plugins/cpu/benchmarks/attention_bench.py --dtype bfloat16 --threads 1 2

``--writes`` times ``write_kv_cache`` on fresh (never touched) slots against the same slots again.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from llmrt_cpu import native
from llmrt_cpu.backend import DEFAULT_BLOCK_SIZE
from llmrt_cpu.model_runner import lazily_zeroed

_C = native.kernels()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dtype", choices=("float32", "bfloat16"), nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seqs", type=int, default=32)
    p.add_argument("--context", type=int, nargs=2, default=(129, 256), help="contexts spread over this range")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--head-size", type=int, default=64)
    p.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE, help="tokens per KV block (the backend's)")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--repeats", type=int, default=15, help="passes over all layers (median taken)")
    p.add_argument("--isa", default="auto")
    p.add_argument("--writes", action="store_true", help="also time write_kv_cache on fresh vs touched slots")
    return p.parse_args()


class Batch:
    """Block tables, lengths and caches of `seqs` decode sequences, blocks in shuffled order."""

    def __init__(self, args: argparse.Namespace, dtype: torch.dtype) -> None:
        gen = torch.Generator().manual_seed(0)
        lo, hi = args.context
        self.seq_lens = torch.linspace(lo, hi, args.seqs).round().to(torch.int32)
        max_blocks = (hi + args.block_size - 1) // args.block_size
        num_blocks = args.seqs * max_blocks
        self.block_tables = torch.randperm(num_blocks, generator=gen).to(torch.int32).view(args.seqs, max_blocks)
        self.query_start_loc = torch.arange(args.seqs + 1, dtype=torch.int32)
        shape = (2, num_blocks, args.block_size, args.kv_heads, args.head_size)
        self.caches = [lazily_zeroed(shape, dtype) for _ in range(args.layers)]
        for cache in self.caches:
            cache.copy_(torch.randn(shape, generator=gen).to(dtype))
        self.query = torch.randn(args.seqs, args.heads * args.head_size, generator=gen).to(dtype)
        self.kv_bytes = int(self.seq_lens.sum()) * 2 * args.kv_heads * args.head_size * self.query.element_size()


def time_attention(args: argparse.Namespace, batch: Batch) -> float:
    """Median seconds per paged_attention call."""
    items = _C.plan_attention(batch.query_start_loc, batch.seq_lens, args.heads, args.kv_heads)
    scale = args.head_size ** -0.5
    times = []
    for _ in range(args.repeats):
        for cache in batch.caches:
            start = time.perf_counter()
            _C.paged_attention(batch.query, cache, batch.block_tables, batch.query_start_loc, batch.seq_lens, items,
                               args.heads, args.head_size, scale, 0, 0.0)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def stream_gbps(nbytes: int = 1 << 29) -> float:
    """Read bandwidth of a plain sum over a large float32 tensor (median of 5)."""
    x = torch.ones(nbytes // 4)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        x.sum()
        times.append(time.perf_counter() - start)
    return nbytes / statistics.median(times) / 1e9


def time_writes(args: argparse.Namespace, dtype: torch.dtype) -> tuple[float, float]:
    """Seconds of 128 decode steps of write_kv_cache over all layers: on fresh slots, then again."""
    num_blocks = args.seqs * 16
    shape = (2, num_blocks, args.block_size, args.kv_heads, args.head_size)
    caches = [lazily_zeroed(shape, dtype) for _ in range(args.layers)]
    row = args.kv_heads * args.head_size
    key, value = torch.randn(args.seqs, row).to(dtype), torch.randn(args.seqs, row).to(dtype)
    per_seq = num_blocks // args.seqs

    def steps() -> float:
        total = 0.0
        for step in range(128):
            block, offset = step // args.block_size, step % args.block_size
            slots = torch.tensor([(s * per_seq + block) * args.block_size + offset for s in range(args.seqs)])
            for cache in caches:
                start = time.perf_counter()
                _C.write_kv_cache(key, value, cache, slots)
                total += time.perf_counter() - start
        return total

    return steps(), steps()


def main() -> None:
    args = parse_args()
    print(f"isa {_C.set_isa(args.isa)}; {args.seqs} seqs, contexts {args.context[0]}-{args.context[1]}, "
          f"heads {args.heads}/{args.kv_heads}, head_size {args.head_size}, block {args.block_size}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"threads {threads}: plain streaming read {stream_gbps():.1f} GB/s")
        for name in args.dtype:
            dtype = getattr(torch, name)
            batch = Batch(args, dtype)
            seconds = time_attention(args, batch)
            print(f"  {name:9s} paged_attention {seconds * 1e6:7.0f} us/call  {batch.kv_bytes / seconds / 1e9:5.1f} GB/s")
            if args.writes:
                fresh, touched = time_writes(args, dtype)
                print(f"  {name:9s} write_kv_cache, 128 steps x {args.layers} layers: fresh {fresh * 1e3:.0f} ms, "
                      f"touched {touched * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
