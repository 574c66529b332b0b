"""``llmrt bench latency``: latency of one batch, with the flags and output of ``vllm bench latency``.

    llmrt bench latency --model DIR --batch-size 1 --input-len 128 --output-len 128

Runs ``--num-iters-warmup`` untimed and ``--num-iters`` timed batches of ``--batch-size`` random
prompts of ``--input-len`` tokens, each generating exactly ``--output-len`` tokens (EOS ignored,
greedy), and prints the average and percentile latencies of a whole batch, plus the time per
output token (latency / output length).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from llmrt.bench.datasets import random_requests
from llmrt.bench.throughput import build_engine, run_to_completion
from llmrt.cli.engine_args import add_engine_arguments

PERCENTILES = (10, 25, 50, 75, 90, 99)


def add_parser(subparsers: Any) -> tuple[str, Any]:
    """Register ``latency`` on the ``bench`` sub-parsers; returns its name and runner."""
    parser = subparsers.add_parser("latency", help="latency of one batch, end to end")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--num-iters-warmup", type=int, default=10)
    parser.add_argument("--num-iters", type=int, default=30)
    parser.add_argument("--output-json", help="also write the results to this JSON file")
    add_engine_arguments(parser)
    return "latency", run


def run(args: argparse.Namespace) -> int:
    """Warm up, time the batches, print the statistics."""
    engine, startup = build_engine(args)
    batch = random_requests(engine.tokenizer, args.batch_size, args.input_len, args.output_len, seed=args.seed)
    print(f"Workload: batch of {args.batch_size} x {args.input_len} prompt tokens -> {args.output_len} output tokens "
          f"({args.batch_size * args.input_len} prompt / {args.batch_size * args.output_len} output tokens)")
    for _ in range(args.num_iters_warmup):
        run_to_completion(engine, batch, temperature=0.0)
    latencies = np.array([run_to_completion(engine, batch, temperature=0.0)[0] for _ in range(args.num_iters)])
    engine.shutdown()
    percentiles = dict(zip(PERCENTILES, np.percentile(latencies, PERCENTILES).tolist(), strict=True))
    print(f"Avg latency: {latencies.mean():.4f} seconds")
    for p, value in percentiles.items():
        print(f"{p}% percentile latency: {value:.4f} seconds")
    per_token_ms = 1000 * float(np.median(latencies)) / args.output_len
    print(f"Time per output token (median latency / output length): {per_token_ms:.2f} ms")
    print(f"Startup (engine ready): {startup:.2f} s")
    if args.output_json:
        result = {"avg_latency": float(latencies.mean()), "latencies": latencies.tolist(),
                  "percentiles": {str(p): v for p, v in percentiles.items()},
                  "ms_per_output_token": per_token_ms, "startup_seconds": startup}
        with open(args.output_json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    return 0
