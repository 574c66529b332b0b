"""llmrt-cpu: the CPU backend for llmrt."""

from llmrt_cpu.backend import CpuBackend

__all__ = ["CpuBackend"]
