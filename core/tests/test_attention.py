"""TorchPagedAttention against a dense float64 reference, and AttentionMetadata.build.

Each case fills a paged cache (blocks handed out in a scrambled order) with the cached
context of several sequences, then runs one step whose batch mixes a fresh prompt, a prompt
chunk continuing a cached prefix, a one-token prompt and decodes of different lengths.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from llmrt.attention.interface import AttentionConfig, AttentionImpl
from llmrt.attention.metadata import AttentionMetadata
from llmrt.attention.torch_paged import TorchPagedAttention, register_core_attention

# (context_len, query_len) per sequence: fresh prompt, chunk over a cached prefix, one-token
# prompt, decodes of different lengths (none a multiple of the block sizes).
MIXED = [(0, 13), (10, 7), (0, 1), (22, 1), (3, 1), (17, 1)]
DECODES = [(6, 1), (29, 1), (1, 1), (14, 1)]


def _reference(q, keys, values, context_len, cfg: AttentionConfig) -> torch.Tensor:
    """Dense attention in float64 for one sequence: ``q [Lq, Hq, D]``, ``keys [L, Hk, D]``."""
    group = cfg.num_heads // cfg.num_kv_heads
    k = keys.double().repeat_interleave(group, dim=1)
    v = values.double().repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q.double(), k) * cfg.scale
    if cfg.logit_softcap is not None:
        scores = torch.tanh(scores / cfg.logit_softcap) * cfg.logit_softcap
    qpos = torch.arange(context_len, context_len + q.shape[0])[:, None]
    kpos = torch.arange(keys.shape[0])[None, :]
    visible = kpos <= qpos
    if cfg.sliding_window is not None:
        visible &= kpos > qpos - cfg.sliding_window
    scores = scores.masked_fill(~visible, -math.inf)
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


def _run_case(cfg: AttentionConfig, block_size: int, seqs, dtype=torch.float32, seed: int = 0):
    """Run one step of ``seqs`` through TorchPagedAttention; return output, reference, cache..."""
    gen = torch.Generator().manual_seed(seed)
    hk, d = cfg.num_kv_heads, cfg.head_size
    num_blocks = sum(-(-(c + q) // block_size) for c, q in seqs) + 3
    order = torch.randperm(num_blocks, generator=gen).tolist()
    cache = torch.zeros(
        TorchPagedAttention.kv_cache_shape(num_blocks, block_size, hk, d), dtype=dtype
    )
    tables, all_k, all_v, queries = [], [], [], []
    for ctx_len, q_len in seqs:
        total = ctx_len + q_len
        table = [order.pop() for _ in range(-(-total // block_size))]
        keys = torch.randn(total, hk, d, generator=gen).to(dtype)
        values = torch.randn(total, hk, d, generator=gen).to(dtype)
        for pos in range(ctx_len):  # the cached prefix, written as an earlier step would have
            block, offset = table[pos // block_size], pos % block_size
            cache[0, block, offset], cache[1, block, offset] = keys[pos], values[pos]
        tables.append(table)
        all_k.append(keys)
        all_v.append(values)
        queries.append(torch.randn(q_len, cfg.num_heads, d, generator=gen).to(dtype))
    meta = AttentionMetadata.build(
        [q for _, q in seqs], [c for c, _ in seqs], tables, block_size, "cpu"
    )
    new_k = torch.cat([k[c:] for k, (c, _) in zip(all_k, seqs, strict=True)]).flatten(1)
    new_v = torch.cat([v[c:] for v, (c, _) in zip(all_v, seqs, strict=True)]).flatten(1)
    out = TorchPagedAttention(cfg).forward(torch.cat(queries).flatten(1), new_k, new_v, cache, meta)
    ref = torch.cat(
        [
            _reference(q, k, v, c, cfg)
            for q, k, v, (c, _) in zip(queries, all_k, all_v, seqs, strict=True)
        ]
    )
    return out, ref.flatten(1), cache, tables, all_k


CASES = list(itertools.product([4, 16], [1, 2, 4], [16, 64], [None, 5], [None, 3.0]))


@pytest.mark.parametrize(("block_size", "gqa", "head_size", "window", "softcap"), CASES)
def test_mixed_batch_matches_dense_reference(block_size, gqa, head_size, window, softcap):
    cfg = AttentionConfig(
        num_heads=4,
        num_kv_heads=4 // gqa,
        head_size=head_size,
        scale=head_size**-0.5,
        sliding_window=window,
        logit_softcap=softcap,
    )
    out, ref, *_ = _run_case(cfg, block_size, MIXED)
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("window", [None, 7])
@pytest.mark.parametrize("softcap", [None, 2.0])
def test_decode_only_batch(window, softcap):
    cfg = AttentionConfig(8, 2, 16, 0.3, sliding_window=window, logit_softcap=softcap)
    out, ref, *_ = _run_case(cfg, 4, DECODES, seed=3)
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=1e-5)


def test_new_keys_and_values_are_written_at_their_slots():
    cfg = AttentionConfig(4, 2, 16, 0.25)
    _, _, cache, tables, all_k = _run_case(cfg, 4, MIXED)
    for table, keys, (ctx_len, q_len) in zip(tables, all_k, MIXED, strict=True):
        for pos in range(ctx_len + q_len):
            torch.testing.assert_close(cache[0, table[pos // 4], pos % 4], keys[pos])


def test_bfloat16_close_to_reference():
    cfg = AttentionConfig(4, 2, 64, 0.125, sliding_window=9, dtype=torch.bfloat16)
    out, ref, *_ = _run_case(cfg, 16, MIXED, dtype=torch.bfloat16)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref, atol=3e-2, rtol=3e-2)


def test_profiling_pass_without_cache_for_fresh_prompts():
    cfg = AttentionConfig(4, 2, 16, 0.25)
    meta = AttentionMetadata.build([5, 3], [0, 0], [[0, 1], [2]], 4, "cpu")
    q, k, v = torch.randn(8, 64), torch.randn(8, 32), torch.randn(8, 32)
    out = TorchPagedAttention(cfg).forward(q, k, v, torch.empty(0), meta)
    ref = _reference(q[:5].view(5, 4, 16), k[:5].view(5, 2, 16), v[:5].view(5, 2, 16), 0, cfg)
    torch.testing.assert_close(out[:5].double(), ref.flatten(1), atol=2e-5, rtol=1e-5)


def test_empty_cache_with_cached_context_is_a_clear_error():
    cfg = AttentionConfig(4, 2, 16, 0.25)
    meta = AttentionMetadata.build([1], [4], [[0, 1]], 4, "cpu")
    with pytest.raises(RuntimeError, match="kv_cache is empty"):
        TorchPagedAttention(cfg).forward(
            torch.randn(1, 64), torch.randn(1, 32), torch.randn(1, 32), torch.empty(0), meta
        )


def test_metadata_build_fields():
    meta = AttentionMetadata.build([3, 1, 2], [0, 5, 4], [[7], [2, 9], [4, 1]], 4, "cpu")
    assert meta.num_tokens == 6 and meta.num_seqs == 3
    assert meta.query_start_loc.tolist() == [0, 3, 4, 6] == meta.query_start_loc_cpu
    assert meta.seq_lens.tolist() == [3, 6, 6] == meta.seq_lens_cpu
    assert meta.context_lens.tolist() == [0, 5, 4] == meta.context_lens_cpu
    assert meta.query_lens_cpu == [3, 1, 2]
    # seq 0: positions 0..2 in block 7; seq 1: position 5 -> block 9 offset 1;
    # seq 2: positions 4, 5 -> block 1
    assert meta.slot_mapping.tolist() == [28, 29, 30, 37, 4, 5]
    assert meta.slot_mapping.dtype == torch.int64
    assert meta.block_tables.tolist() == [[7, 0], [2, 9], [4, 1]]
    assert meta.block_tables.dtype == torch.int32
    assert (meta.max_query_len, meta.max_seq_len, meta.block_size) == (3, 6, 4)


def test_metadata_build_rejects_short_block_table():
    with pytest.raises(ValueError, match="sequence 1 needs 2 blocks"):
        AttentionMetadata.build([2, 1], [0, 4], [[0], [1]], 4, "cpu")
    with pytest.raises(ValueError, match="one entry per sequence"):
        AttentionMetadata.build([2], [0, 0], [[0]], 4, "cpu")


def test_config_validation_and_default_cache_shape():
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        AttentionConfig(6, 4, 16, 0.25)
    assert AttentionImpl.kv_cache_shape(10, 16, 2, 64) == (2, 10, 16, 2, 64)


def test_register_core_attention():
    calls = []
    register_core_attention(lambda *args, **kwargs: calls.append((args, kwargs)))
    assert calls == [(("torch", TorchPagedAttention), {"backends": None, "priority": 0})]
