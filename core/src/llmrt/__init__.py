"""llmrt: a hardware-agnostic LLM inference and serving runtime whose backends are plugins.

The public offline API mirrors vLLM's: ``from llmrt import LLM, SamplingParams``. Heavy modules
load on first use so that ``llmrt --version`` and ``llmrt plugins`` start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrt.version import __version__

if TYPE_CHECKING:
    from llmrt.entrypoints.llm import LLM
    from llmrt.outputs import CompletionOutput, RequestOutput
    from llmrt.sampling_params import SamplingParams

_LAZY = {
    "LLM": "llmrt.entrypoints.llm",
    "SamplingParams": "llmrt.sampling_params",
    "RequestOutput": "llmrt.outputs",
    "CompletionOutput": "llmrt.outputs",
}

__all__ = ["LLM", "CompletionOutput", "RequestOutput", "SamplingParams", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmrt' has no attribute {name!r}")
