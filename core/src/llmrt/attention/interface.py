"""The attention contract: :class:`AttentionConfig` and the :class:`AttentionImpl` ABC.

Backends register attention implementations through ``llmrt_register_attention_backends``;
the model's :class:`llmrt.model.layers.Attention` layers each own one instance, built by the
``attention_factory`` of their :class:`llmrt.model.LayerContext`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from llmrt.attention.metadata import AttentionMetadata


@dataclass(frozen=True)
class AttentionConfig:
    """The static shape and numerics of one attention layer (per tensor-parallel rank).

    ``scale`` multiplies ``q @ k^T`` (``head_size ** -0.5`` for most models).
    ``sliding_window``: when set to ``W``, a query at position ``p`` sees keys at positions
    ``p - W < j <= p`` (``W`` positions including itself; Hugging Face's definition).
    ``logit_softcap``: when set to ``c``, scores become ``c * tanh(scores / c)`` before the
    mask and softmax (Gemma 2). ``dtype`` is the dtype of queries, keys and the KV cache.
    """

    num_heads: int
    num_kv_heads: int
    head_size: int
    scale: float
    sliding_window: int | None = None
    logit_softcap: float | None = None
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a multiple of "
                f"num_kv_heads ({self.num_kv_heads})"
            )
        if self.sliding_window is not None and self.sliding_window < 1:
            raise ValueError(f"sliding_window must be >= 1, got {self.sliding_window}")


class AttentionImpl(ABC):
    """Causal attention over a paged KV cache, for one layer.

    Subclasses implement :meth:`forward`; a backend whose cache layout differs overrides
    :meth:`kv_cache_shape` (the runner allocates each layer's cache with it).
    """

    accepts_padded_rows = False
    """Whether :meth:`forward` takes query rows past ``metadata.num_tokens`` (storing nothing for
    them, returning zeros); runners pad steps only when every layer's implementation says so."""

    def __init__(self, config: AttentionConfig) -> None:
        self.config = config

    @abstractmethod
    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        metadata: AttentionMetadata,
    ) -> torch.Tensor:
        """Write this step's keys/values into the cache, then attend.

        :param query: ``[T, num_heads * head_size]``, rotary embedding already applied.
        :param key: ``[T, num_kv_heads * head_size]``, rotary embedding already applied.
        :param value: ``[T, num_kv_heads * head_size]``.
        :param kv_cache: this layer's cache, shaped by :meth:`kv_cache_shape`. Token ``t``'s
            key and value go to slot ``metadata.slot_mapping[t]``. An empty tensor (a
            profiling pass before the cache exists) is allowed when every
            ``context_len`` is 0: then nothing is written.
        :param metadata: the step's :class:`AttentionMetadata`.
        :return: ``[T, num_heads * head_size]``: for query token ``i`` of sequence ``s`` (at
            position ``p = context_len_s + i``), softmax attention over that sequence's keys at
            positions ``<= p`` (and ``> p - sliding_window`` when set).

        With :attr:`accepts_padded_rows`, a runner may pad a step: then ``T`` is larger than
        ``metadata.num_tokens`` and the rows past it belong to no sequence. Their keys and
        values are not stored and their output rows are zero (the CUDA runner pads eager steps
        to a few row counts whose matrix products it has warmed up).
        """

    @staticmethod
    def kv_cache_shape(
        num_blocks: int, block_size: int, num_kv_heads: int, head_size: int
    ) -> tuple[int, ...]:
        """Shape of one layer's cache: ``(2, num_blocks, block_size, num_kv_heads, head_size)``.

        Index 0 of the first dimension holds keys, index 1 values.
        """
        return (2, num_blocks, block_size, num_kv_heads, head_size)
