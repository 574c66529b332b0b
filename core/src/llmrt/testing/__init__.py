"""Test support shipped with llmrt: tiny models, plugin fixtures and backend conformance suites.

Backend plugins subclass the classes in :mod:`llmrt.testing.conformance` in their own tests.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "build_tiny_model": "llmrt.testing.tiny_models",
    "random_prompts": "llmrt.testing.tiny_models",
    "TINY_ARCHITECTURES": "llmrt.testing.tiny_models",
    "train_tiny_tokenizer": "llmrt.testing.tiny_tokenizer",
    "make_plugin_host": "llmrt.testing.plugin_host",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmrt.testing' has no attribute {name!r}")
