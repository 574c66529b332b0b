"""llmrt-quant: quantization methods for llmrt's linear layers."""

from llmrt_quant.int8 import Int8WeightOnlyMethod

__all__ = ["Int8WeightOnlyMethod"]
