"""Model layers; each computes through its LayerContext (ops, attention, quant method)."""

from llmrt.model.layers.activation import GatedActivation
from llmrt.model.layers.attention import Attention
from llmrt.model.layers.embedding import ParallelLMHead, VocabParallelEmbedding
from llmrt.model.layers.linear import (
    ColumnParallelLinear,
    LinearBase,
    MergedColumnParallelLinear,
    QKVParallelLinear,
    QuantMethod,
    RowParallelLinear,
    UnquantizedLinearMethod,
)
from llmrt.model.layers.norm import RMSNorm
from llmrt.model.layers.rotary import RotaryEmbedding

__all__ = [
    "Attention",
    "ColumnParallelLinear",
    "GatedActivation",
    "LinearBase",
    "MergedColumnParallelLinear",
    "ParallelLMHead",
    "QKVParallelLinear",
    "QuantMethod",
    "RMSNorm",
    "RotaryEmbedding",
    "RowParallelLinear",
    "UnquantizedLinearMethod",
    "VocabParallelEmbedding",
]
