"""Benchmark metrics from per-request results, computed and printed as ``vllm bench serve`` does.

TPOT of a request is ``(latency - ttft) / (output_tokens - 1)`` (requests with more than one
output token); ITL gathers every inter-chunk gap of every request. Throughputs divide by the
wall time of the whole run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrt.bench.request_funcs import RequestResult

METRIC_TITLES = {
    "ttft": ("TTFT", "Time to First Token"),
    "tpot": ("TPOT", "Time per Output Token (excl. 1st token)"),
    "itl": ("ITL", "Inter-token Latency"),
    "e2el": ("E2EL", "End-to-end Latency"),
}


def _samples(results: list[RequestResult]) -> dict[str, list[float]]:
    ok = [r for r in results if r.success]
    return {
        "ttft": [r.ttft for r in ok],
        "tpot": [(r.latency - r.ttft) / (r.output_tokens - 1) for r in ok if r.output_tokens > 1],
        "itl": [gap for r in ok for gap in r.itl],
        "e2el": [r.latency for r in ok],
    }


def compute_metrics(
    results: list[RequestResult], duration: float, metrics: list[str], percentiles: list[float]
) -> dict[str, Any]:
    """Counts, throughputs and, per metric, mean/median/std/percentiles in milliseconds."""
    ok = [r for r in results if r.success]
    total_input = sum(r.prompt_len for r in ok)
    total_output = sum(r.output_tokens for r in ok)
    out: dict[str, Any] = {
        "duration": duration,
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": len(ok) / duration,
        "output_throughput": total_output / duration,
        "total_token_throughput": (total_input + total_output) / duration,
        "errors": [r.error for r in results if not r.success][:10],
    }
    samples = _samples(results)
    for name in metrics:
        values = np.asarray(samples[name] or [0.0]) * 1000.0
        out[f"mean_{name}_ms"] = float(values.mean())
        out[f"median_{name}_ms"] = float(np.median(values))
        out[f"std_{name}_ms"] = float(values.std())
        for p in percentiles:
            out[f"p{p:g}_{name}_ms"] = float(np.percentile(values, p))
    return out


def format_report(result: dict[str, Any], metrics: list[str], percentiles: list[float]) -> str:
    """The report, laid out like vLLM's."""
    lines = ["{s:{c}^50}".format(s=" Serving Benchmark Result ", c="=")]
    rows = [
        ("Successful requests:", result["completed"]),
        ("Failed requests:", result["failed"]),
        ("Benchmark duration (s):", f"{result['duration']:.2f}"),
        ("Total input tokens:", result["total_input_tokens"]),
        ("Total generated tokens:", result["total_output_tokens"]),
        ("Request throughput (req/s):", f"{result['request_throughput']:.2f}"),
        ("Output token throughput (tok/s):", f"{result['output_throughput']:.2f}"),
        ("Total Token throughput (tok/s):", f"{result['total_token_throughput']:.2f}"),
    ]
    lines += [f"{label:<40}{value:<10}" for label, value in rows]
    for name in metrics:
        short, title = METRIC_TITLES[name]
        lines.append("{s:{c}^50}".format(s=title, c="-"))
        lines.append(f"{'Mean ' + short + ' (ms):':<40}{result[f'mean_{name}_ms']:<10.2f}")
        lines.append(f"{'Median ' + short + ' (ms):':<40}{result[f'median_{name}_ms']:<10.2f}")
        for p in percentiles:
            lines.append(f"{f'P{p:g} {short} (ms):':<40}{result[f'p{p:g}_{name}_ms']:<10.2f}")
    lines.append("=" * 50)
    return "\n".join(lines)
