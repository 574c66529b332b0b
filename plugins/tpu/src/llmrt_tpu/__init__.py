"""llmrt-tpu: the Google TPU backend for llmrt, through torch_xla."""

from llmrt_tpu.backend import TpuBackend

__all__ = ["TpuBackend"]
