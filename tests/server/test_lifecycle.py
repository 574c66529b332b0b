"""Startup time, --api-key, graceful SIGTERM, engine death and the missing-model message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from helpers import ServerProcess, metric

pytestmark = pytest.mark.xdist_group("llmrt-server")  # one shared server per worker

STARTUP_GOAL_S = 5.0
STARTUP_SLACK = 3.0
"""CI machines here have 2 cores shared with other jobs: the assertion allows 3x the goal."""


def test_time_to_healthy(server, record_property):
    record_property("startup_s", round(server.startup_s, 2))
    print(f"\nllmrt serve -> healthy /health in {server.startup_s:.2f} s (goal {STARTUP_GOAL_S} s)")
    assert server.startup_s < STARTUP_GOAL_S * STARTUP_SLACK


def test_api_key_and_graceful_sigterm(tiny_model, tmp_path):
    proc = ServerProcess(
        tiny_model, tmp_path / "serve.log", "--api-key", "s3cret", "--served-model-name", "tiny"
    )
    try:
        proc.wait_healthy()
        url = proc.url
        for path in ("/v1/models", "/version", "/openapi.json"):
            assert httpx.get(url + path).status_code == 401
            assert (
                httpx.get(url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            )
            assert (
                httpx.get(url + path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
            )
        body = httpx.post(url + "/v1/completions", json={"prompt": "x"}).json()
        assert body["error"]["code"] == "invalid_api_key"
        for path in ("/health", "/ping", "/metrics"):
            assert httpx.get(url + path).status_code == 200

        chunks: list[str] = []

        def stream() -> None:
            with httpx.stream(
                "POST",
                url + "/v1/completions",
                headers={"Authorization": "Bearer s3cret"},
                json={"prompt": "x", "max_tokens": 60, "stream": True, "ignore_eos": True},
                timeout=60,
            ) as response:
                chunks.extend(line for line in response.iter_lines() if line.startswith("data: "))

        reader = threading.Thread(target=stream)
        reader.start()
        deadline = time.monotonic() + 30
        while not chunks and time.monotonic() < deadline:
            time.sleep(0.01)
        status = proc.stop(signal.SIGTERM)
        reader.join(30)
        assert status == 0, proc.log()
        assert chunks[-1] == "data: [DONE]" and len(chunks) > 2  # the request in flight finished
    finally:
        proc.stop(signal.SIGKILL)


def test_engine_death_fails_requests_and_exits_nonzero(tiny_model, tmp_path):
    proc = ServerProcess(tiny_model, tmp_path / "serve.log")
    try:
        proc.wait_healthy()
        results: dict[str, object] = {}

        def generate() -> None:
            try:
                results["response"] = httpx.post(
                    proc.url + "/v1/completions",
                    timeout=60,
                    json={"prompt": "x", "max_tokens": 500, "n": 8, "ignore_eos": True},
                )
            except httpx.HTTPError as exc:
                results["response"] = exc

        worker = threading.Thread(target=generate)
        worker.start()
        # killed while the request runs (seen in the metrics): after a fixed delay it may be done
        deadline = time.monotonic() + 30
        while metric(proc.url, "llmrt:num_requests_running") == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        assert "response" not in results, "the request finished before it was seen running"
        os.kill(proc.engine_pid(), signal.SIGKILL)
        worker.join(60)
        response = results["response"]
        assert isinstance(response, httpx.Response), response
        assert response.status_code == 503 and response.json()["error"]["code"] == "engine_dead"
        assert proc.proc.wait(30) != 0
        assert "engine is dead" in proc.log()
    finally:
        proc.stop(signal.SIGKILL)


def test_serve_without_a_model_says_so():
    env = {**os.environ, "LLMRT_PLUGINS": "cpu"}  # no plugin offering a default model
    result = subprocess.run(
        [sys.executable, "-m", "llmrt.cli.main", "serve"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0
    assert "no default model" in result.stderr or "no model given" in result.stderr, result.stderr


@pytest.mark.parametrize("path", ["/health", "/ping"])
def test_health_of_the_shared_server(server, path):
    assert httpx.get(server.url + path).status_code == 200
