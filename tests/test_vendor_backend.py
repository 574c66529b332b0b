"""An out-of-tree backend package: pip-installed, discovered, listed, selected, used, removed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmrt.testing import build_tiny_model

PACKAGE = Path(__file__).parent / "vendor_backend"
# It installs into and removes from the shared environment, so it runs alone, after the
# parallel part of the suite (see the Makefile's test target).
pytestmark = [pytest.mark.slow, pytest.mark.serial]


def _pip(*args):
    subprocess.run([sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check", *args],
                   check=True, capture_output=True)


def _llmrt(*args, **env):
    return subprocess.run([sys.executable, "-m", "llmrt", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def _plugins(**env):
    result = _llmrt("plugins", "--json", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def toy_installed():
    _pip("install", "--no-build-isolation", "--no-deps", str(PACKAGE))
    yield
    _pip("uninstall", "-y", "llmrt-toy-backend")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return str(build_tiny_model("llama", tmp_path_factory.mktemp("toy") / "llama"))


def test_installed_backend_is_discovered_listed_selected_and_used(toy_installed, tiny_model, tmp_path):
    report = _plugins()
    plugin = next(p for p in report["plugins"] if p["name"] == "toy")
    assert plugin["distribution"] == "llmrt-toy-backend" and plugin["version"] == "1.2.3"
    assert plugin["hooks"] == ["llmrt_register_backends", "llmrt_register_ops"]
    backend = next(b for b in report["backends"] if b["name"] == "toy")
    assert backend["usable"] and "emulated" in backend["reason"]

    trace = tmp_path / "trace.txt"
    result = _llmrt("generate", "--backend", "toy", "--model", tiny_model, "--prompt", "hello",
                    "--max-tokens", "4", LLMRT_TOY_TRACE=str(trace))
    assert result.returncode == 0, result.stderr
    assert "backend 'toy' selected: requested with --backend" in result.stderr
    assert trace.read_text().count("silu_and_mul") >= 4  # the vendor's op override ran


def test_installed_backend_without_its_hardware_is_refused_loudly(toy_installed, tiny_model):
    report = _plugins(LLMRT_TOY_ABSENT="1")
    backend = next(b for b in report["backends"] if b["name"] == "toy")
    assert not backend["usable"] and backend["reason"] == "no toy accelerator found on the bus"
    result = _llmrt("generate", "--backend", "toy", "--model", tiny_model, "--prompt", "hi",
                    LLMRT_TOY_ABSENT="1")
    assert result.returncode == 1
    assert "backend 'toy' cannot run here: no toy accelerator found on the bus" in result.stderr
    assert "cpu      usable" in result.stderr  # lists what is installed instead


def test_uninstalled_backend_is_gone(toy_installed, tiny_model):
    _pip("uninstall", "-y", "llmrt-toy-backend")
    try:
        report = _plugins()
        assert "toy" not in {p["name"] for p in report["plugins"]}
        result = _llmrt("generate", "--backend", "toy", "--model", tiny_model, "--prompt", "hi")
        assert result.returncode == 1 and "backend 'toy' is not installed" in result.stderr
    finally:
        _pip("install", "--no-build-isolation", "--no-deps", str(PACKAGE))  # the fixture uninstalls
