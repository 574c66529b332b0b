"""TritonPagedAttention: core's :class:`~llmrt.attention.AttentionImpl` on the Triton kernels.

Each call writes the step's keys and values into the cache (:mod:`llmrt_triton.kv_cache_write`)
and then attends from the cache (:mod:`llmrt_triton.attention_kernel`):

- a batch of decode tokens only (``max_query_len == 1``) runs one tile per sequence, with
  split-KV when the batch is too small to fill the GPU; it launches without any host-side
  tensor, so it can be captured in a CUDA graph;
- any other batch (prompts, prompt chunks over a cached prefix, mixed with decodes) runs a
  tile table built once per step on the host and shared by all layers (``metadata.scratch``).

A backend may hand decode batches to its own kernel instead (``_runs_native_decode`` /
``_native_decode``, e.g. ``llmrt_cuda.attention``); that kernel also stores their keys and
values. The cache layout is core's default ``[2, num_blocks, block_size, kv_heads, head_size]``.
"""

from __future__ import annotations

import os

import torch
from llmrt.attention.interface import AttentionImpl
from llmrt.attention.metadata import AttentionMetadata
from llmrt.attention.torch_paged import TorchPagedAttention

from llmrt_triton import attention_plan as plan
from llmrt_triton.attention_kernel import _paged_attention_kernel, _reduce_splits_kernel
from llmrt_triton.kv_cache_write import write_kv_cache


class TritonPagedAttention(AttentionImpl):
    """Paged attention (GQA, sliding window, soft-capping) through Triton."""

    cuda_graph_safe = True
    """Decode batches launch without host-side tensors, so CUDA/HIP graphs can capture them."""
    accepts_padded_rows = True
    """Rows past ``num_tokens`` are stored nowhere and come back zero."""

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        metadata: AttentionMetadata,
    ) -> torch.Tensor:
        """See :meth:`AttentionImpl.forward`."""
        if kv_cache.numel() == 0:
            # Only a profiling pass runs without a cache; the reference attends from the inputs.
            return TorchPagedAttention(self.config).forward(query, key, value, kv_cache, metadata)
        cfg = self.config
        n = metadata.num_tokens
        q = query.view(query.shape[0], cfg.num_heads, cfg.head_size)[:n]
        k = key.view(key.shape[0], cfg.num_kv_heads, cfg.head_size)[:n]
        v = value.view(value.shape[0], cfg.num_kv_heads, cfg.head_size)[:n]
        decode = metadata.max_query_len == 1
        splits = 1
        if decode:
            splits = plan.decode_splits(
                metadata.num_seqs, cfg.num_kv_heads, metadata.max_seq_len, q.device
            )
        native = decode and n > 0 and self._runs_native_decode(q, k, v, kv_cache, splits)
        if not native:
            write_kv_cache(k, v, kv_cache, metadata.slot_mapping)
        rows = query.shape[0]  # more than n where the runner padded the step
        out = torch.empty((rows, cfg.num_heads, cfg.head_size), dtype=query.dtype, device=query.device)
        if n:
            self._attend(q, k, v, kv_cache, out[:n], metadata, splits, native)
        if rows > n:
            out[n:].zero_()
        return out.view(rows, cfg.num_heads * cfg.head_size)

    def _attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kv_cache: torch.Tensor,
        out: torch.Tensor,
        metadata: AttentionMetadata,
        splits: int,
        native: bool,
    ) -> None:
        cfg = self.config
        group = cfg.num_heads // cfg.num_kv_heads
        decode = metadata.max_query_len == 1
        if decode:
            launch = plan.decode_config(group, cfg.head_size)
            tiles, tile_seq, tile_start = metadata.num_seqs, metadata.seq_lens, metadata.seq_lens
        else:
            launch = plan.prompt_config(group, cfg.head_size)
            tile_seq, tile_start = self._tiles(metadata, launch.block_m // group, q.device)
            tiles, splits = tile_seq.numel(), 1
        head_p = max(16, _next_pow2(cfg.head_size))
        parts = stats = out
        if splits > 1:
            parts = torch.empty(
                (q.shape[0], cfg.num_heads, splits, head_p), dtype=torch.float32, device=q.device
            )
            stats = torch.empty(
                (q.shape[0], cfg.num_heads, splits, 2), dtype=torch.float32, device=q.device
            )
        cache_k, cache_v = kv_cache[0], kv_cache[1]
        if native:
            self._native_decode(q, k, v, cache_k, cache_v, out, parts, stats, metadata, splits)
        else:
            _paged_attention_kernel[(tiles, cfg.num_kv_heads, splits)](
                q,
                cache_k,
                cache_v,
                out,
                parts,
                stats,
                tile_seq,
                tile_start,
                metadata.query_start_loc,
                metadata.seq_lens,
                metadata.block_tables,
                q.stride(0),
                q.stride(1),
                out.stride(0),
                out.stride(1),
                cache_k.stride(0),
                cache_k.stride(1),
                cache_k.stride(2),
                metadata.block_tables.stride(0),
                cfg.num_heads,
                cfg.scale,
                cfg.logit_softcap or 0.0,
                cfg.sliding_window or 0,
                splits,
                GROUP=group,
                BLOCK_M=launch.block_m,
                BLOCK_N=launch.block_n,
                HEAD_SIZE=cfg.head_size,
                HEAD_P=head_p,
                KV_BLOCK=cache_k.shape[1],
                DECODE=decode,
                USE_SOFTCAP=cfg.logit_softcap is not None,
                SPLIT=splits > 1,
                PRECISION="ieee" if q.dtype == torch.float32 else None,
                UPCAST_DOT=q.dtype == torch.bfloat16 and _interpreted(),
                num_warps=launch.num_warps,
                num_stages=launch.num_stages,
            )
        if splits > 1:
            _reduce_splits_kernel[(q.shape[0], cfg.num_heads)](
                parts,
                stats,
                out,
                out.stride(0),
                out.stride(1),
                cfg.num_heads,
                splits,
                HEAD_SIZE=cfg.head_size,
                HEAD_P=head_p,
                SPLITS_P=_next_pow2(splits),
                num_warps=4,
            )

    def _runs_native_decode(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_cache: torch.Tensor, splits: int
    ) -> bool:
        """Hook for a backend's own decode kernel: whether it takes this decode batch (default:
        no, the Triton kernel runs). ``q``, ``k``, ``v`` are ``[S, heads, head_size]`` views of
        the step's projections. Must not depend on anything a CUDA graph would not replay."""
        return False

    def _native_decode(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        cache_k: torch.Tensor,
        cache_v: torch.Tensor,
        out: torch.Tensor,
        parts: torch.Tensor,
        stats: torch.Tensor,
        metadata: AttentionMetadata,
        splits: int,
    ) -> None:
        """The backend's decode kernel, for batches :meth:`_runs_native_decode` accepted.

        It first stores each sequence's new key and value (``k``, ``v``: ``[S, num_kv_heads,
        head_size]``) at ``metadata.slot_mapping`` (nothing for a negative slot), which the
        Triton path does in a separate kernel, then attends: ``q`` is ``[S, num_heads,
        head_size]``, the caches ``[num_blocks, block_size, num_kv_heads, head_size]``. With one
        split it writes the normalized output into ``out``; with more, each split's unnormalized
        output into ``parts`` ``[S, num_heads, splits, head_p]`` (float32) and its running max
        (base 2, of ``scale * log2(e) * q.k``) and sum into ``stats`` ``[S, num_heads, splits,
        2]``, which the Triton reduction then combines. It must be capturable in a CUDA graph.
        """
        raise NotImplementedError

    @staticmethod
    def _tiles(metadata: AttentionMetadata, tokens_per_tile: int, device: torch.device):
        """The step's prompt tile table, built once and shared by every layer."""
        key = ("triton_tiles", tokens_per_tile)
        tiles = metadata.scratch.get(key)
        if tiles is None:
            tiles = plan.prompt_tiles(metadata.query_start_loc_cpu, tokens_per_tile, device)
            metadata.scratch[key] = tiles
        return tiles


def _interpreted() -> bool:
    """True when Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _next_pow2(value: int) -> int:
    return 1 << max(0, (value - 1).bit_length())
