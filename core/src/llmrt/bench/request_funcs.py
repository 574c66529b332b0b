"""Sending one streaming request and timing it as ``vllm bench serve`` does.

TTFT is the time from sending to the first chunk with text; ITL are the times between later
chunks with text; latency (E2EL) ends at the last event. The output length is the server's
``usage.completion_tokens`` (requested with ``stream_options.include_usage``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmrt.bench.datasets import SampleRequest


@dataclass
class RequestResult:
    """What one request measured."""

    success: bool = False
    prompt_len: int = 0
    output_tokens: int = 0
    ttft: float = 0.0
    itl: list[float] = field(default_factory=list)
    latency: float = 0.0
    error: str = ""


def build_payload(
    sample: SampleRequest, model: str, chat: bool, temperature: float, ignore_eos: bool
) -> dict[str, Any]:
    """The JSON body for one sample."""
    payload: dict[str, Any] = {
        "model": model,
        "max_tokens": sample.expected_output_len,
        "stream": True,
        "temperature": temperature,
        "ignore_eos": ignore_eos,
        "stream_options": {"include_usage": True},
    }
    if chat:
        text = sample.prompt if isinstance(sample.prompt, str) else ""
        payload["messages"] = [{"role": "user", "content": text}]
    else:
        payload["prompt"] = sample.prompt
    return payload


def _chunk_text(event: dict[str, Any]) -> str:
    choices = event.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    if "delta" in choice:
        return choice["delta"].get("content") or ""
    return choice.get("text") or ""


async def send_request(
    client: httpx.AsyncClient, url: str, payload: dict[str, Any], prompt_len: int
) -> RequestResult:
    """Send one streaming request and time its chunks."""
    result = RequestResult(prompt_len=prompt_len)
    start = last = time.perf_counter()
    try:
        async with client.stream("POST", url, json=payload) as response:
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return result
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    result.error = str(event["error"])
                    return result
                now = time.perf_counter()
                if _chunk_text(event):
                    if result.ttft == 0.0:
                        result.ttft = now - start
                    else:
                        result.itl.append(now - last)
                    last = now
                if event.get("usage"):
                    result.output_tokens = event["usage"].get("completion_tokens", 0)
        result.latency = time.perf_counter() - start
        result.success = True
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result
