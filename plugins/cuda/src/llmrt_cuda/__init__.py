"""llmrt-cuda: the NVIDIA GPU backend for llmrt."""

from llmrt_cuda.backend import CudaBackend

__all__ = ["CudaBackend"]
