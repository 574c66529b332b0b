"""Shared fixtures for cross-package tests."""

import pytest

from llmrt.plugins import reset_plugin_host


@pytest.fixture
def fresh_plugins(monkeypatch):
    """Forget loaded plugins before and after the test (environment changes take effect)."""
    reset_plugin_host()
    yield
    reset_plugin_host()
