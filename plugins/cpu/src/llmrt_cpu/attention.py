"""Paged attention through the native kernels, over core's default KV cache layout.

Each step, this step's keys and values are written into the cache, then every query row attends
over its sequence's cached keys (fresh prompts, prompt chunks over a cached prefix and decode
tokens alike; see ``csrc/attention.h``). The work items are planned once per step and shared
by all layers through ``metadata.scratch``.

Cases the kernels do not take go to core's :class:`TorchPagedAttention`: float16, and the
profiling pass that runs before the cache exists.
"""

from __future__ import annotations

import torch

from llmrt.attention.interface import AttentionConfig, AttentionImpl
from llmrt.attention.metadata import AttentionMetadata
from llmrt.attention.torch_paged import TorchPagedAttention
from llmrt_cpu import native
from llmrt_cpu.ops import NATIVE_DTYPES

_C = native.kernels()  # None without the kernels: forward then takes the reference


class CpuPagedAttention(AttentionImpl):
    """:class:`AttentionImpl` on the native kernels (cache ``(2, blocks, block_size, Hk, D)``)."""

    accepts_padded_rows = True
    """Rows past ``num_tokens`` are stored nowhere and come back zero."""

    def __init__(self, config: AttentionConfig) -> None:
        super().__init__(config)
        self._reference = TorchPagedAttention(config)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor,
                metadata: AttentionMetadata) -> torch.Tensor:
        """See :meth:`AttentionImpl.forward`."""
        if not self._native_ok(query, kv_cache):
            return self._reference.forward(query, key, value, kv_cache, metadata)
        cfg = self.config
        _C.write_kv_cache(key, value, kv_cache, metadata.slot_mapping)
        out = _C.paged_attention(
            query, kv_cache, metadata.block_tables, metadata.query_start_loc, metadata.seq_lens,
            self._work_items(metadata), cfg.num_heads, cfg.head_size, cfg.scale,
            cfg.sliding_window or 0, cfg.logit_softcap or 0.0)
        if out.shape[0] > metadata.num_tokens:  # padding rows a runner added past num_tokens
            out[metadata.num_tokens:].zero_()
        return out

    def _native_ok(self, query: torch.Tensor, kv_cache: torch.Tensor) -> bool:
        return (_C is not None and kv_cache.numel() > 0 and query.dtype in NATIVE_DTYPES and kv_cache.dtype == query.dtype
                and query.is_cpu and kv_cache.is_contiguous())

    def _work_items(self, metadata: AttentionMetadata) -> torch.Tensor:
        """The step's work items (planned once per step and head layout)."""
        cfg = self.config
        memo_key = ("cpu_native_items", cfg.num_heads, cfg.num_kv_heads)
        items = metadata.scratch.get(memo_key)
        if items is None:
            items = _C.plan_attention(metadata.query_start_loc, metadata.seq_lens,
                                                    cfg.num_heads, cfg.num_kv_heads)
            metadata.scratch[memo_key] = items
        return items
