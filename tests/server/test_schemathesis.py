"""Schemathesis against the served OpenAPI schema: a bounded run, no 5xx, no schema mismatch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.xdist_group("llmrt-server")  # one shared server per worker

CHECKS = ",".join(
    [
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
    ]
)
MAX_EXAMPLES = 20
TIMEOUT_S = 240


def _st() -> str:
    found = Path(sys.executable).with_name("st")
    if found.exists():
        return str(found)
    return shutil.which("st") or pytest.skip(
        "schemathesis is not installed (pip install schemathesis)"
    )


def test_schemathesis_finds_no_server_errors(server, tmp_path):
    command = [
        _st(),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--seed",
        "1",
        "--no-color",
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=tmp_path,  # st writes state files
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200  # still serving
