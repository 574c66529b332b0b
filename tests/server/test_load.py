"""200 concurrent streaming clients, a third leaving early: the rest complete, no 5xx, no leak."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from helpers import wait_idle

pytestmark = pytest.mark.xdist_group("llmrt-server")  # one shared server per worker

NUM_CLIENTS = 200
MAX_TOKENS = 12
DEADLINE_S = 150.0


async def _client(http: httpx.AsyncClient, url: str, index: int) -> tuple[str, int]:
    """One streaming client; every third leaves after two events. Returns (outcome, status)."""
    leaves_early = index % 3 == 0
    body = {"model": "tiny", "max_tokens": MAX_TOKENS, "stream": True, "ignore_eos": True}
    if index % 2:
        body["prompt"] = f"Request {index} reads a prompt and"
        path = "/v1/completions"
    else:
        body["messages"] = [{"role": "user", "content": f"Request {index}: say something."}]
        path = "/v1/chat/completions"
    async with http.stream("POST", url + path, json=body) as response:
        if response.status_code != 200:
            return "error", response.status_code
        events = 0
        finish = None
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                return ("done" if finish == "length" else f"bad finish {finish}"), 200
            events += 1
            if leaves_early and events == 2:
                return "left", 200
            chunk = json.loads(line[6:])
            if "error" in chunk:
                return f"stream error {chunk['error']}", 200
            finish = chunk["choices"][0].get("finish_reason") or finish
    return "no [DONE]", 200


async def _run(url: str) -> list[tuple[str, int]]:
    limits = httpx.Limits(
        max_connections=NUM_CLIENTS + 10, max_keepalive_connections=NUM_CLIENTS + 10
    )
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        return await asyncio.gather(*[_client(http, url, i) for i in range(NUM_CLIENTS)])


def test_200_streaming_clients_a_third_leaving(server):
    results = asyncio.run(asyncio.wait_for(_run(server.url), DEADLINE_S))
    statuses = [status for _, status in results]
    assert all(status < 500 for status in statuses), sorted(set(statuses))
    outcomes = [outcome for outcome, _ in results]
    assert outcomes.count("left") == len(range(0, NUM_CLIENTS, 3))
    assert outcomes.count("done") == NUM_CLIENTS - outcomes.count("left"), sorted(set(outcomes))
    wait_idle(server.url, timeout=60)
