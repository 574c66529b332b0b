"""Reference paged attention in plain PyTorch: correct on every device, reasonably fast on CPU.

Each step splits the batch on the host (no device synchronization) into:

- *prompt sequences* (prompts and prompt chunks, ``query_len > 1``): attended one at a time.
  A chunk that starts a sequence uses this step's keys directly; a chunk continuing a cached
  prefix gathers the prefix from the cache through its block table (only the blocks its
  sliding window can see).
- *decode sequences* (``query_len == 1``): attended together in one padded batch, with a
  mask hiding each row's padding and out-of-window keys.

Without soft-capping the product goes through ``F.scaled_dot_product_attention``;
with it, through an explicit ``matmul -> softcap -> mask -> softmax -> matmul`` that follows
Hugging Face's eager attention operation for operation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from llmrt.attention.interface import AttentionImpl
from llmrt.attention.metadata import AttentionMetadata


@dataclass
class _PromptSeq:
    """A sequence with ``query_len > 1`` (host-side numbers)."""

    index: int
    start: int
    end: int
    context_len: int


@dataclass
class _DecodeBatch:
    """Device tensors describing every ``query_len == 1`` sequence of the step."""

    rows: torch.Tensor  # LongTensor[N]: token row of each decode sequence
    block_ids: torch.Tensor  # LongTensor[N, nb]: blocks to gather, window-aware
    mask: torch.Tensor  # BoolTensor[N, 1, 1, nb * block_size]: which gathered keys are visible


@dataclass
class _Plan:
    """How one step's batch is attended; shared by every layer with the same window."""

    prompts: list[_PromptSeq]
    decode: _DecodeBatch | None


class TorchPagedAttention(AttentionImpl):
    """:class:`AttentionImpl` over the default cache layout ``(2, blocks, block_size, Hk, D)``."""

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
        cfg = self.config
        n = metadata.num_tokens
        q = query.view(-1, cfg.num_heads, cfg.head_size)
        k = key.view(-1, cfg.num_kv_heads, cfg.head_size)[:n]
        v = value.view(-1, cfg.num_kv_heads, cfg.head_size)[:n]
        has_cache = kv_cache.numel() > 0
        if has_cache:
            _write_cache(kv_cache, k, v, metadata.slot_mapping)
        plan = self._plan(metadata, has_cache)
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        for seq in plan.prompts:
            out[seq.start : seq.end] = self._attend_prompt(q, k, v, kv_cache, metadata, seq)
        if plan.decode is not None:
            out.index_copy_(0, plan.decode.rows, self._attend_decode(q, kv_cache, plan.decode))
        if q.shape[0] > n:  # padding rows a runner added past num_tokens
            out[n:].zero_()
        return out.view(query.shape)

    # -- planning (host side, once per step and window) ---------------------------------

    def _plan(self, metadata: AttentionMetadata, has_cache: bool) -> _Plan:
        """Split the batch into prompt sequences and one decode batch; memoized per step."""
        memo_key = ("torch_paged", self.config.sliding_window)
        plan = metadata.scratch.get(memo_key)
        if plan is None:
            plan = _make_plan(metadata, self.config.sliding_window, has_cache)
            metadata.scratch[memo_key] = plan
        return plan

    # -- prompt sequences ---------------------------------------------------------------------

    def _attend_prompt(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kv_cache: torch.Tensor,
        metadata: AttentionMetadata,
        seq: _PromptSeq,
    ) -> torch.Tensor:
        """Attention output ``[query_len, Hq, D]`` for one prompt (chunk)."""
        window = self.config.sliding_window
        if seq.context_len == 0:
            keys, values, kv_start = k[seq.start : seq.end], v[seq.start : seq.end], 0
        else:
            kv_start = 0 if window is None else max(0, seq.context_len - window + 1)
            keys, values = _gather_range(kv_cache, metadata, seq, kv_start)
        query_pos = torch.arange(
            seq.context_len, seq.context_len + seq.end - seq.start, device=q.device
        )
        is_causal = seq.context_len == 0 and window is None
        mask = None if is_causal else _visible(query_pos[:, None], kv_start, keys.shape[0], window)
        out = self._attend(
            q[seq.start : seq.end].transpose(0, 1).unsqueeze(0),
            keys.transpose(0, 1).unsqueeze(0),
            values.transpose(0, 1).unsqueeze(0),
            mask,
            is_causal,
        )
        return out[0].transpose(0, 1)

    # -- decode batch --------------------------------------------------------------------------

    def _attend_decode(
        self, q: torch.Tensor, kv_cache: torch.Tensor, batch: _DecodeBatch
    ) -> torch.Tensor:
        """Attention output ``[N, Hq, D]`` for every decode sequence at once."""
        cfg = self.config
        num = batch.block_ids.shape[0]
        keys = kv_cache[0][batch.block_ids].view(num, -1, cfg.num_kv_heads, cfg.head_size)
        values = kv_cache[1][batch.block_ids].view(num, -1, cfg.num_kv_heads, cfg.head_size)
        queries = q.index_select(0, batch.rows).unsqueeze(2)  # [N, Hq, 1, D]
        out = self._attend(queries, keys.transpose(1, 2), values.transpose(1, 2), batch.mask, False)
        return out[:, :, 0]

    # -- the product itself ----------------------------------------------------------------------

    def _attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
    ) -> torch.Tensor:
        """``softmax(q k^T * scale [+ softcap] [+ mask]) v``.

        Shapes: ``q [B,Hq,Lq,D]``, ``k/v [B,Hk,Lk,D]``.

        GQA: query head ``h`` uses kv head ``h // (Hq / Hk)``.
        """
        cfg = self.config
        if cfg.logit_softcap is None:
            return F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                is_causal=is_causal,
                scale=cfg.scale,
                enable_gqa=cfg.num_heads != cfg.num_kv_heads,
            )
        return _softcapped_attention(q, k, v, mask, is_causal, cfg.scale, cfg.logit_softcap)


def _write_cache(
    kv_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slots: torch.Tensor
) -> None:
    """Store this step's keys and values at their slots."""
    heads, size = k.shape[1], k.shape[2]
    kv_cache[0].view(-1, heads, size).index_copy_(0, slots, k.to(kv_cache.dtype))
    kv_cache[1].view(-1, heads, size).index_copy_(0, slots, v.to(kv_cache.dtype))


def _gather_range(
    kv_cache: torch.Tensor, metadata: AttentionMetadata, seq: _PromptSeq, kv_start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values ``[kv_len, Hk, D]`` of positions ``kv_start .. seq_len - 1``."""
    bs = metadata.block_size
    seq_len = metadata.seq_lens_cpu[seq.index]
    first, last = kv_start // bs, -(-seq_len // bs)
    ids = metadata.block_tables[seq.index, first:last].long()
    lo, hi = kv_start - first * bs, seq_len - first * bs
    keys = kv_cache[0][ids].flatten(0, 1)[lo:hi]
    values = kv_cache[1][ids].flatten(0, 1)[lo:hi]
    return keys, values


def _visible(
    query_pos: torch.Tensor, kv_start: int, kv_len: int, window: int | None
) -> torch.Tensor:
    """Bool mask ``[Lq, Lk]``: key ``j`` (absolute ``kv_start + j``) visible to each query."""
    key_pos = torch.arange(kv_start, kv_start + kv_len, device=query_pos.device)
    mask = key_pos <= query_pos
    if window is not None:
        mask &= key_pos > query_pos - window
    return mask


def _softcapped_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    scale: float,
    softcap: float,
) -> torch.Tensor:
    """Eager attention with ``tanh`` soft-capping; GQA by grouping query heads per kv head."""
    batch, heads, q_len, size = q.shape
    kv_heads, k_len = k.shape[1], k.shape[2]
    group = heads // kv_heads
    grouped = q.reshape(batch, kv_heads, group * q_len, size)
    scores = torch.matmul(grouped, k.transpose(-1, -2)) * scale
    scores = torch.tanh(scores / softcap) * softcap
    scores = scores.view(batch, kv_heads, group, q_len, k_len)
    if is_causal:
        mask = torch.ones(q_len, k_len, dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        mask = mask.view(mask.shape[0] if mask.dim() == 4 else 1, 1, 1, q_len, k_len)
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.matmul(probs.view(batch, kv_heads, group * q_len, k_len), v)
    return out.view(batch, heads, q_len, size)


def _make_plan(metadata: AttentionMetadata, window: int | None, has_cache: bool) -> _Plan:
    """Host-side split of the batch (see the module docstring)."""
    starts = metadata.query_start_loc_cpu
    prompts, decode_seqs = [], []
    for s in range(metadata.num_seqs):
        context_len = metadata.seq_lens_cpu[s] - (starts[s + 1] - starts[s])
        if starts[s + 1] - starts[s] == 1 and context_len > 0:
            decode_seqs.append(s)
        else:
            prompts.append(_PromptSeq(s, starts[s], starts[s + 1], context_len))
    needs_cache = decode_seqs or any(p.context_len > 0 for p in prompts)
    if needs_cache and not has_cache:
        raise RuntimeError(
            "attention needs the KV cache (the batch continues cached sequences) but this "
            "layer's kv_cache is empty: bind the allocated cache before running such a step"
        )
    decode = _decode_batch(metadata, decode_seqs, window) if decode_seqs else None
    return _Plan(prompts, decode)


def _decode_batch(metadata: AttentionMetadata, seqs: list[int], window: int | None) -> _DecodeBatch:
    """Gather indices and visibility mask for the decode sequences (one tensor copy each)."""
    bs = metadata.block_size
    seq_lens = np.asarray([metadata.seq_lens_cpu[s] for s in seqs], dtype=np.int64)
    first_pos = np.zeros_like(seq_lens) if window is None else np.maximum(seq_lens - window, 0)
    first_block, end_block = first_pos // bs, -(-seq_lens // bs)
    width = int((end_block - first_block).max())
    cols = first_block[:, None] + np.arange(width)
    key_pos = (cols[:, :, None] * bs + np.arange(bs)).reshape(len(seqs), -1)
    cols = np.minimum(cols, end_block[:, None] - 1)  # padding columns re-read a real block, masked
    visible = (key_pos < seq_lens[:, None]) & (key_pos >= first_pos[:, None])
    device = metadata.block_tables.device
    rows = torch.from_numpy(np.asarray([metadata.query_start_loc_cpu[s] for s in seqs])).to(device)
    seq_index = torch.from_numpy(np.asarray(seqs)).to(device)
    tables = metadata.block_tables.index_select(0, seq_index)
    block_ids = tables.gather(1, torch.from_numpy(cols).to(device)).long()
    mask = torch.from_numpy(visible).to(device).view(len(seqs), 1, 1, -1)
    return _DecodeBatch(rows=rows, block_ids=block_ids, mask=mask)


def register_core_attention(register: Callable[..., None]) -> None:
    """Register :class:`TorchPagedAttention` as ``"torch"`` for every backend, lowest priority.

    Called from core's built-in plugin in ``llmrt_register_attention_backends``.
    """
    register("torch", TorchPagedAttention, backends=None, priority=0)
