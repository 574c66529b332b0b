"""The paged attention kernel: one program per (query tile, kv head, KV split).

A *query tile* holds up to ``BLOCK_Q`` consecutive query tokens of one sequence together with
all ``GROUP`` query heads that share a kv head (grouped-query attention), flattened into
``BLOCK_M = BLOCK_Q * GROUP`` rows: row ``m`` is token ``m // GROUP``, head ``m % GROUP``. The
keys and values of that kv head are read once per tile straight from the paged cache through
the sequence's block table, ``BLOCK_N`` positions at a time, with an online softmax (the
flash-attention recurrence). New keys are written to the cache before this kernel runs, so a
prompt chunk over a cached prefix, a whole prompt and a decode token are the same case.

Decode tiles (``DECODE``) are one sequence each (tile index = sequence index), which needs no
host-side tile table and so can be captured in a CUDA graph. With ``num_splits > 1`` the key
range of a tile is cut into that many contiguous parts (split-KV: parallelism for long contexts
and small batches); each part writes an unnormalized partial result plus its running max and
sum, and :func:`_reduce_splits_kernel` combines them.

Masking: a query at position ``p`` sees keys ``j <= p`` and, with a sliding window ``W``,
``j > p - W``. Soft-capping computes ``c * tanh(s / c)`` on the scaled scores. Scores and the
softmax are in float32; ``p @ v`` takes ``p`` in the value dtype.
"""

import triton
import triton.language as tl

from llmrt_triton.triton_math import tanh

LOG2E = tl.constexpr(1.4426950408889634)
NEG_BIG = tl.constexpr(-1.0e30)


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """``a @ b`` in float32; ``UPCAST`` computes bf16 operands in float32 (Triton's interpreter
    multiplies bf16 operands as raw integers, so interpreted bf16 runs need it)."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    return tl.dot(a, b, input_precision=PRECISION)


@triton.jit(do_not_specialize=["stride_bt", "num_splits"])  # vary step to step: one compile
def _paged_attention_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    out_ptr,
    part_out_ptr,
    part_stats_ptr,
    tile_seq_ptr,
    tile_start_ptr,
    query_start_ptr,
    seq_lens_ptr,
    block_tables_ptr,
    stride_qt,
    stride_qh,
    stride_ot,
    stride_oh,
    stride_cb,
    stride_cs,
    stride_ch,
    stride_bt,
    num_heads,
    scale,
    softcap,
    window,
    num_splits,
    GROUP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_SIZE: tl.constexpr,
    HEAD_P: tl.constexpr,
    KV_BLOCK: tl.constexpr,
    DECODE: tl.constexpr,
    USE_SOFTCAP: tl.constexpr,
    SPLIT: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST_DOT: tl.constexpr,
):
    tile = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    if DECODE:
        seq = tile
        first_q = 0
    else:
        seq = tl.load(tile_seq_ptr + tile)
        first_q = tl.load(tile_start_ptr + tile)
    q_start = tl.load(query_start_ptr + seq)
    q_len = tl.load(query_start_ptr + seq + 1) - q_start
    seq_len = tl.load(seq_lens_ptr + seq)
    context_len = seq_len - q_len

    BLOCK_Q: tl.constexpr = BLOCK_M // GROUP
    rows = tl.arange(0, BLOCK_M)
    token = first_q + rows // GROUP
    head = kv_head * GROUP + rows % GROUP
    row_ok = (rows < BLOCK_Q * GROUP) & (token < q_len)
    q_pos = context_len + token
    dims = tl.arange(0, HEAD_P)
    dims_ok = dims < HEAD_SIZE

    q_rows = (q_start + token).to(tl.int64)
    q = tl.load(
        q_ptr + q_rows[:, None] * stride_qt + head[:, None] * stride_qh + dims[None, :],
        mask=row_ok[:, None] & dims_ok[None, :],
        other=0.0,
    )

    # Key positions this tile needs: [lo, hi), cut into num_splits parts when splitting.
    last_q = tl.minimum(first_q + BLOCK_Q, q_len) - 1
    hi = context_len + last_q + 1
    lo = tl.where(window > 0, tl.maximum(context_len + first_q - window + 1, 0), 0)
    if SPLIT:
        per_split = ((hi - lo + num_splits - 1) // num_splits + BLOCK_N - 1) // BLOCK_N * BLOCK_N
        lo = lo + split * per_split
        hi = tl.minimum(hi, lo + per_split)
    window_floor = tl.where(window > 0, q_pos - window, -1)

    m_i = tl.full([BLOCK_M], NEG_BIG, tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_P], tl.float32)
    table = block_tables_ptr + seq.to(tl.int64) * stride_bt
    for start in range(lo, hi, BLOCK_N):
        pos = start + tl.arange(0, BLOCK_N)
        pos_ok = pos < hi
        block = tl.load(table + pos // KV_BLOCK, mask=pos_ok, other=0).to(tl.int64)
        slot = block * stride_cb + (pos % KV_BLOCK) * stride_cs + kv_head * stride_ch
        kv_mask = pos_ok[:, None] & dims_ok[None, :]
        k = tl.load(k_cache_ptr + slot[:, None] + dims[None, :], mask=kv_mask, other=0.0)
        s = _dot(q, tl.trans(k), PRECISION, UPCAST_DOT) * scale
        if USE_SOFTCAP:
            s = softcap * tanh(s / softcap)
        visible = (
            pos_ok[None, :]
            & (pos[None, :] <= q_pos[:, None])
            & (pos[None, :] > window_floor[:, None])
        )
        s = tl.where(visible, s * LOG2E, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_cache_ptr + slot[:, None] + dims[None, :], mask=kv_mask, other=0.0)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, PRECISION, UPCAST_DOT)
        m_i = m_new

    if SPLIT:
        part = (q_rows * num_heads + head) * num_splits + split
        tl.store(part_out_ptr + part[:, None] * HEAD_P + dims[None, :], acc, mask=row_ok[:, None])
        tl.store(part_stats_ptr + part * 2, m_i, mask=row_ok)
        tl.store(part_stats_ptr + part * 2 + 1, l_i, mask=row_ok)
    else:
        out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
        tl.store(
            out_ptr + q_rows[:, None] * stride_ot + head[:, None] * stride_oh + dims[None, :],
            out.to(out_ptr.dtype.element_ty),
            mask=row_ok[:, None] & dims_ok[None, :],
        )


@triton.jit(do_not_specialize=["num_splits"])
def _reduce_splits_kernel(
    part_out_ptr,
    part_stats_ptr,
    out_ptr,
    stride_ot,
    stride_oh,
    num_heads,
    num_splits,
    HEAD_SIZE: tl.constexpr,
    HEAD_P: tl.constexpr,
    SPLITS_P: tl.constexpr,
):
    """Combine the partial results of token ``pid0``, head ``pid1`` over its KV splits."""
    token = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    splits = tl.arange(0, SPLITS_P)
    ok = splits < num_splits
    part = (token * num_heads + head) * num_splits + splits
    m = tl.load(part_stats_ptr + part * 2, mask=ok, other=NEG_BIG)
    sums = tl.load(part_stats_ptr + part * 2 + 1, mask=ok, other=0.0)
    weight = tl.where(ok, tl.exp2(m - tl.max(m, axis=0)), 0.0)
    total = tl.sum(weight * sums, axis=0)
    dims = tl.arange(0, HEAD_P)
    acc = tl.load(
        part_out_ptr + part[:, None] * HEAD_P + dims[None, :], mask=ok[:, None], other=0.0
    )
    out = tl.sum(acc * weight[:, None], axis=0) / tl.where(total > 0, total, 1.0)
    tl.store(
        out_ptr + token * stride_ot + head * stride_oh + dims,
        out.to(out_ptr.dtype.element_ty),
        mask=dims < HEAD_SIZE,
    )
