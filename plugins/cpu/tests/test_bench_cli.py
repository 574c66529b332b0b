"""``llmrt bench throughput|latency`` on the CPU backend, and the nano workload's totals."""

from __future__ import annotations

import gc
import json

import pytest

from llmrt.bench.datasets import NANO_TOTALS, nano_requests
from llmrt.cli.main import main
from llmrt.testing import build_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny Qwen3 whose vocabulary covers the nano workload's ids (0..10000)."""
    return str(build_tiny_model("qwen3", tmp_path_factory.mktemp("qwen3"), vocab_size=10240))


@pytest.fixture(autouse=True)
def _restore_gc():
    """``llmrt bench`` freezes the heap and raises gc thresholds for its process: undo that here."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_bench_freezes_the_startup_heap(model_dir, tmp_path):
    gc.unfreeze()
    code = main(["--log-level", "WARNING", "bench", "latency", "--model", model_dir, "--backend", "cpu",
                 "--input-len", "4", "--output-len", "2", "--num-iters-warmup", "0", "--num-iters", "1",
                 "--output-json", str(tmp_path / "latency.json")])
    assert code == 0 and gc.get_freeze_count() > 0 and gc.get_threshold()[2] >= 1000


def test_nano_workload_has_the_published_totals():
    requests = nano_requests()
    assert (sum(r.prompt_len for r in requests), sum(r.expected_output_len for r in requests)) == NANO_TOTALS


def test_bench_throughput_prints_vllm_style_metrics(model_dir, tmp_path, capsys):
    out = tmp_path / "result.json"
    code = main(["--log-level", "WARNING", "bench", "throughput", "--model", model_dir, "--backend", "cpu",
                 "--dtype", "float32", "--dataset-name", "nano", "--num-prompts", "4", "--nano-len-range", "3", "9",
                 "--output-json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "requests/s" in printed and "total tokens/s" in printed and "output tokens/s" in printed
    result = json.loads(out.read_text())
    expected = nano_requests(4, (3, 9))
    assert result["total_output_tokens"] == sum(r.expected_output_len for r in expected)
    assert f"Workload: 4 requests, {sum(r.prompt_len for r in expected)} prompt tokens" in printed


def test_bench_latency_prints_percentiles(model_dir, capsys):
    code = main(["--log-level", "WARNING", "bench", "latency", "--model", model_dir, "--backend", "cpu",
                 "--batch-size", "2", "--input-len", "8", "--output-len", "4", "--num-iters-warmup", "1",
                 "--num-iters", "2"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "Avg latency:" in printed and "90% percentile latency:" in printed


def test_bench_process_exits_without_leak_warnings(model_dir, tmp_path):
    """The frozen startup heap is handed back to the collector at exit; objects left frozen were
    never finalized and Triton's nanobind bindings printed pages of "leaked" warnings."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "llmrt", "--log-level", "WARNING", "bench", "latency", "--model", model_dir,
         "--backend", "cpu", "--input-len", "4", "--output-len", "2", "--num-iters-warmup", "0", "--num-iters", "1",
         "--output-json", str(tmp_path / "latency.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "leaked" not in proc.stderr
