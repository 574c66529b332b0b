"""Attention over the paged KV cache: the step's metadata, the implementation contract,
and core's PyTorch reference implementation.
"""

from llmrt.attention.interface import AttentionConfig, AttentionImpl
from llmrt.attention.metadata import AttentionMetadata

__all__ = ["AttentionConfig", "AttentionImpl", "AttentionMetadata"]
