"""Fixtures for server tests: a tiny model and one shared ``llmrt serve`` subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from llmrt.testing import build_tiny_model

sys.path.insert(
    0, str(Path(__file__).parent)
)  # tests import helpers.py (pytest runs in importlib mode)

from helpers import ServerProcess  # noqa: E402

MAX_MODEL_LEN = 256


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny random llama with a ChatML template (built once per session)."""
    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def server(tiny_model, tmp_path_factory):
    """A server shared by a session's tests; ``server.startup_s`` is its time to healthy."""
    proc = ServerProcess(
        tiny_model,
        tmp_path_factory.mktemp("server") / "serve.log",
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--served-model-name",
        "tiny",
        "tiny-alias",
    )
    try:
        proc.startup_s = proc.wait_healthy()
        yield proc
    finally:
        proc.stop()
