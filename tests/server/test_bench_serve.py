"""``llmrt bench serve`` against the shared server: a small random load, vLLM's report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.xdist_group("llmrt-server")  # one shared server per worker


def test_bench_serve_random_dataset(server, tmp_path):
    command = [
        sys.executable,
        "-m",
        "llmrt.cli.main",
        "bench",
        "serve",
        "--port",
        str(server.port),
        "--num-prompts",
        "12",
        "--random-input-len",
        "24",
        "--random-output-len",
        "6",
        "--request-rate",
        "50",
        "--max-concurrency",
        "4",
        "--ignore-eos",
        "--metric-percentiles",
        "50,99",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--save-result",
        "--result-dir",
        str(tmp_path),
        "--result-filename",
        "result.json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in (
        "Serving Benchmark Result",
        "Successful requests:",
        "Mean TTFT (ms):",
        "P99 TPOT (ms):",
        "Median ITL (ms):",
        "P50 E2EL (ms):",
        "Output token throughput",
    ):
        assert line in result.stdout, result.stdout
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["completed"] == 12 and saved["failed"] == 0
    assert saved["total_input_tokens"] == 12 * 24 and saved["total_output_tokens"] == 12 * 6
    assert 0 < saved["p50_ttft_ms"] <= saved["p99_ttft_ms"]
