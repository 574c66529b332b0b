"""The attention layer: owns its AttentionImpl and the KV cache tensor the runner binds."""

from __future__ import annotations

import torch
from torch import nn

from llmrt.attention.interface import AttentionConfig
from llmrt.attention.metadata import AttentionMetadata
from llmrt.model.context import LayerContext


class Attention(nn.Module):
    """Paged causal attention for one decoder layer (heads of this tensor-parallel rank).

    ``kv_cache`` starts as ``None``; the model runner allocates a tensor of
    :meth:`kv_cache_shape` per layer and assigns it (``layer.kv_cache = tensor``). It is a
    plain attribute, not a buffer, so it never enters ``state_dict``. While unbound, the impl
    receives an empty tensor (a profiling pass of fresh prompts works; anything reading cached
    context raises).
    """

    def __init__(
        self,
        num_heads: int,
        num_kv_heads: int,
        head_size: int,
        scale: float,
        ctx: LayerContext,
        layer_index: int,
        sliding_window: int | None = None,
        logit_softcap: float | None = None,
    ) -> None:
        super().__init__()
        self.layer_index = layer_index
        self.config = AttentionConfig(
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            head_size=head_size,
            scale=scale,
            sliding_window=sliding_window,
            logit_softcap=logit_softcap,
            dtype=ctx.dtype,
        )
        self.impl = ctx.attention_factory(self.config)
        self._unbound = torch.empty(0, dtype=ctx.dtype, device=ctx.device)
        self.kv_cache: torch.Tensor | None = None

    def kv_cache_shape(self, num_blocks: int, block_size: int) -> tuple[int, ...]:
        """Shape of this layer's cache for ``num_blocks`` blocks, as its impl lays it out."""
        cfg = self.config
        return self.impl.kv_cache_shape(num_blocks, block_size, cfg.num_kv_heads, cfg.head_size)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        metadata: AttentionMetadata,
    ) -> torch.Tensor:
        """``[T, Hq*D]`` attention output; writes this step's keys/values into ``kv_cache``."""
        cache = self.kv_cache if self.kv_cache is not None else self._unbound
        return self.impl.forward(query, key, value, cache, metadata)

    def extra_repr(self) -> str:
        cfg = self.config
        return (
            f"layer={self.layer_index}, heads={cfg.num_heads}, kv_heads={cfg.num_kv_heads}, "
            f"head_size={cfg.head_size}, window={cfg.sliding_window}, softcap={cfg.logit_softcap}"
        )
