"""llmrt's demo model: a small Qwen3-style code model that ships inside the install.

It is the model ``llmrt serve`` and ``llmrt generate`` use when given none (through the
plugin in :mod:`llmrt_demo_model.plugin`), and a fixture for quality tests: a real trained
model, in the Hugging Face layout, that needs no network.

- :data:`MODEL_DIR`: the model folder (config.json, model.safetensors, tokenizer.json,
  tokenizer_config.json with a ChatML chat template, generation_config.json, and
  train_settings.json recording how it was trained).
- :data:`HELDOUT_PATH`: held-out text (CPython standard-library files the model never saw in
  training) for perplexity checks; README.md gives the model's perplexity on it and how it is
  computed.
"""

from pathlib import Path

__all__ = ["HELDOUT_PATH", "MODEL_DIR"]

_PACKAGE_DIR = Path(__file__).resolve().parent

MODEL_DIR: Path = _PACKAGE_DIR / "model"
"""The model folder in the Hugging Face layout."""

HELDOUT_PATH: Path = _PACKAGE_DIR / "heldout.txt"
"""Held-out validation text (PSF-licensed CPython source, about 170 KB)."""
