"""Flags of ``llmrt bench serve``, named and defaulting like ``vllm bench serve``'s."""

from __future__ import annotations

import argparse


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the target, dataset, load and report options to ``parser``."""
    target = parser.add_argument_group("target")
    target.add_argument(
        "--backend",
        default="openai",
        choices=["openai", "openai-chat", "vllm", "llmrt"],
        help="openai/vllm/llmrt: /v1/completions; openai-chat: /v1/chat/completions",
    )
    target.add_argument("--base-url", help="server URL (default: http://HOST:PORT)")
    target.add_argument("--host", default="127.0.0.1")
    target.add_argument("--port", type=int, default=8000)
    target.add_argument("--endpoint", help="path (default: from --backend)")
    target.add_argument("--model", help="model name to send (default: the server's first model)")
    target.add_argument("--served-model-name", help="alias of --model")
    target.add_argument(
        "--tokenizer",
        help="tokenizer folder (default: the model's folder as the server reports it)",
    )
    target.add_argument("--api-key", help="bearer key (default: $OPENAI_API_KEY)")
    data = parser.add_argument_group("dataset")
    data.add_argument("--dataset-name", default="random", choices=["random", "custom"])
    data.add_argument("--dataset-path", help='JSONL file of {"prompt": ...} lines (custom dataset)')
    data.add_argument("--num-prompts", type=int, default=1000)
    data.add_argument("--random-input-len", type=int, default=1024)
    data.add_argument("--random-output-len", type=int, default=128)
    data.add_argument(
        "--random-range-ratio",
        type=float,
        default=0.0,
        help="lengths drawn uniformly in [len*(1-r), len*(1+r)]",
    )
    data.add_argument(
        "--random-prefix-len", type=int, default=0, help="tokens shared by every prompt"
    )
    data.add_argument("--custom-output-len", type=int, default=256)
    load = parser.add_argument_group("load")
    load.add_argument(
        "--request-rate",
        type=float,
        default=float("inf"),
        help="requests per second (Poisson arrivals); inf sends all at once",
    )
    load.add_argument(
        "--burstiness",
        type=float,
        default=1.0,
        help="gamma shape of inter-arrival times (1 = Poisson)",
    )
    load.add_argument("--max-concurrency", type=int, help="requests in flight at most")
    load.add_argument("--seed", type=int, default=0)
    load.add_argument(
        "--ignore-eos", action="store_true", help="generate exactly the output length"
    )
    load.add_argument("--temperature", type=float, default=0.0)
    load.add_argument(
        "--request-timeout", type=float, default=6 * 3600.0, help="seconds per request at most"
    )
    report = parser.add_argument_group("report")
    report.add_argument(
        "--percentile-metrics",
        default="ttft,tpot,itl",
        help="comma-separated subset of ttft,tpot,itl,e2el",
    )
    report.add_argument(
        "--metric-percentiles", default="99", help="comma-separated percentiles, e.g. 50,90,99"
    )
    report.add_argument("--save-result", action="store_true", help="write the result as JSON")
    report.add_argument("--result-dir", default=".")
    report.add_argument("--result-filename")
    report.add_argument("--disable-tqdm", action="store_true")
