"""llmrt-rocm: the AMD GPU backend for llmrt."""

from llmrt_rocm.backend import RocmBackend

__all__ = ["RocmBackend"]
