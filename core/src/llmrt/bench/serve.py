"""``llmrt bench serve``: send a dataset to a server at a request rate; report latencies."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from llmrt.bench.datasets import SampleRequest, custom_requests, random_requests
from llmrt.bench.report import compute_metrics, format_report
from llmrt.bench.request_funcs import RequestResult, build_payload, send_request

ENDPOINTS = {
    "openai": "/v1/completions",
    "vllm": "/v1/completions",
    "llmrt": "/v1/completions",
    "openai-chat": "/v1/chat/completions",
}


async def arrivals(
    samples: list[SampleRequest], rate: float, burstiness: float, seed: int
) -> AsyncIterator[SampleRequest]:
    """Yield samples at Poisson (gamma if ``burstiness != 1``) intervals; at once for ``inf``."""
    rng = random.Random(seed)
    for sample in samples:
        yield sample
        if rate != float("inf"):
            await asyncio.sleep(rng.gammavariate(burstiness, 1.0 / (rate * burstiness)))


async def run_load(
    url: str,
    samples: list[SampleRequest],
    args: argparse.Namespace,
    model: str,
    headers: dict[str, str],
) -> tuple[list[RequestResult], float]:
    """Send every sample; returns the results (in sample order) and the wall time."""
    chat = args.backend == "openai-chat"
    limit = asyncio.Semaphore(args.max_concurrency or len(samples))
    timeout = httpx.Timeout(args.request_timeout)
    pool = httpx.Limits(
        max_connections=args.max_concurrency or len(samples), max_keepalive_connections=None
    )

    async def one(client: httpx.AsyncClient, sample: SampleRequest) -> RequestResult:
        async with limit:
            payload = build_payload(sample, model, chat, args.temperature, args.ignore_eos)
            return await send_request(client, url, payload, sample.prompt_len)

    async with httpx.AsyncClient(timeout=timeout, limits=pool, headers=headers) as client:
        start = time.perf_counter()
        tasks = [
            asyncio.create_task(one(client, sample))
            async for sample in arrivals(samples, args.request_rate, args.burstiness, args.seed)
        ]
        results = await asyncio.gather(*tasks)
        return list(results), time.perf_counter() - start


def _server_model(base_url: str, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/v1/models", headers=headers, timeout=30.0)
    response.raise_for_status()
    return response.json()["data"][0]  # type: ignore[no-any-return]


def _samples(args: argparse.Namespace, tokenizer: Any) -> list[SampleRequest]:
    if args.dataset_name == "custom":
        if not args.dataset_path:
            raise ValueError("--dataset-name custom needs --dataset-path")
        return custom_requests(
            args.dataset_path, tokenizer, args.num_prompts, args.custom_output_len
        )
    return random_requests(
        tokenizer,
        args.num_prompts,
        args.random_input_len,
        args.random_output_len,
        args.random_range_ratio,
        args.random_prefix_len,
        args.seed,
        as_text=args.backend == "openai-chat",
    )


def main(args: argparse.Namespace) -> int:
    """Run the benchmark, print the report, optionally save it; returns the exit status."""
    from transformers import AutoTokenizer

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the report
    base_url = (args.base_url or f"http://{args.host}:{args.port}").rstrip("/")
    key = args.api_key or os.environ.get("OPENAI_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    card = _server_model(base_url, headers)
    model = args.model or args.served_model_name or card["id"]
    tokenizer = AutoTokenizer.from_pretrained(
        args.tokenizer or card.get("root") or model, trust_remote_code=False
    )
    samples = _samples(args, tokenizer)
    url = base_url + (args.endpoint or ENDPOINTS[args.backend])
    print(
        f"Traffic request rate: {args.request_rate}, burstiness: {args.burstiness}, "
        f"max concurrency: {args.max_concurrency}, {len(samples)} requests to {url}"
    )
    results, duration = asyncio.run(run_load(url, samples, args, model, headers))
    metrics = [m.strip() for m in args.percentile_metrics.split(",") if m.strip()]
    percentiles = [float(p) for p in args.metric_percentiles.split(",") if p.strip()]
    result = compute_metrics(results, duration, metrics, percentiles)
    print(format_report(result, metrics, percentiles))
    if args.save_result:
        _save(args, result, model)
    return 0 if result["completed"] else 1


def _save(args: argparse.Namespace, result: dict[str, Any], model: str) -> None:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = (
        args.result_filename
        or f"{args.backend}-{args.request_rate}qps-{Path(model).name}-{stamp}.json"
    )
    path = Path(args.result_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "date": stamp,
        "backend": args.backend,
        "model_id": model,
        "num_prompts": args.num_prompts,
        "request_rate": args.request_rate,
        "burstiness": args.burstiness,
        "max_concurrency": args.max_concurrency,
        **result,
    }
    path.write_text(json.dumps(payload, indent=2))
    print(f"result saved to {path}")
