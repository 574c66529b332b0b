"""TritonPagedAttention against core's TorchPagedAttention on random paged caches.

Covers prompts, prompt chunks over a cached prefix, decodes (with and without split-KV), GQA,
head sizes 64/128/256, float32/bf16/fp16, sliding windows and soft-capping. Shapes are small
so that the suite stays fast under Triton's interpreter.
"""

import random

import pytest
import torch
from llmrt.attention.interface import AttentionConfig
from llmrt.attention.metadata import AttentionMetadata
from llmrt.attention.torch_paged import TorchPagedAttention

TOL = {torch.float32: 2e-5, torch.bfloat16: 2e-2, torch.float16: 2e-3}
BLOCK = 8


@pytest.fixture(scope="module")
def triton_attention(device):
    from llmrt_triton.paged_attention import TritonPagedAttention

    return TritonPagedAttention


def _batch(query_lens, context_lens, num_blocks, device, seed=0):
    """Metadata with each sequence's blocks drawn at random from the pool (no sharing)."""
    rng = random.Random(seed)
    free = list(range(num_blocks))
    rng.shuffle(free)
    tables = []
    for q, c in zip(query_lens, context_lens, strict=True):
        need = -(-(q + c) // BLOCK)
        tables.append([free.pop() for _ in range(need)])
    return AttentionMetadata.build(query_lens, context_lens, tables, BLOCK, device)


def _compare(
    impl_cls,
    device,
    dtype,
    query_lens,
    context_lens,
    heads=4,
    kv_heads=2,
    head_size=64,
    window=None,
    softcap=None,
    seed=0,
):
    config = AttentionConfig(
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_size=head_size,
        scale=head_size**-0.5,
        sliding_window=window,
        logit_softcap=softcap,
        dtype=dtype,
    )
    metadata = _batch(query_lens, context_lens, 40, device, seed)
    tokens = sum(query_lens)
    gen = torch.Generator().manual_seed(seed)
    cache = torch.randn(
        TorchPagedAttention.kv_cache_shape(40, BLOCK, kv_heads, head_size), generator=gen
    ).to(dtype)
    qkv = torch.randn(tokens, (heads + 2 * kv_heads) * head_size, generator=gen).to(dtype)
    q, k, v = (
        t.to(device)
        for t in qkv.split([heads * head_size, kv_heads * head_size, kv_heads * head_size], -1)
    )
    cache = cache.to(device)
    ref_cache, got_cache = cache.clone(), cache.clone()
    expected = TorchPagedAttention(config).forward(q, k, v, ref_cache, metadata)
    got = impl_cls(config).forward(q, k, v, got_cache, metadata)
    assert torch.equal(got_cache, ref_cache), "keys/values were written to the wrong slots"
    tol = TOL[dtype]
    torch.testing.assert_close(got.float(), expected.float(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_mixed_batch(triton_attention, device, dtype):
    """A fresh prompt, a chunk over a cached prefix, and two decodes in one step."""
    _compare(triton_attention, device, dtype, [13, 6, 1, 1], [0, 21, 30, 4])


@pytest.mark.parametrize("head_size", [64, 128, 256])
def test_head_sizes(triton_attention, device, head_size):
    _compare(triton_attention, device, torch.bfloat16, [5, 1], [9, 17], head_size=head_size, seed=1)


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (8, 2), (6, 2)])
def test_grouped_query_attention(triton_attention, device, heads, kv_heads):
    _compare(
        triton_attention,
        device,
        torch.float32,
        [7, 1],
        [3, 12],
        heads=heads,
        kv_heads=kv_heads,
        seed=2,
    )


@pytest.mark.parametrize("window", [1, 5, 16])
def test_sliding_window(triton_attention, device, window):
    _compare(triton_attention, device, torch.float32, [9, 1, 4], [0, 25, 20], window=window, seed=3)


def test_soft_capping(triton_attention, device):
    _compare(triton_attention, device, torch.float32, [6, 1], [10, 15], softcap=0.5, seed=4)
    _compare(
        triton_attention, device, torch.bfloat16, [6, 1], [10, 15], softcap=0.5, window=7, seed=5
    )


def test_decode_batch_with_split_kv(triton_attention, device, monkeypatch):
    """A decode-only batch on a small grid is split over its keys; the parts combine exactly."""
    from llmrt_triton import attention_plan

    monkeypatch.setattr(attention_plan, "MIN_KEYS_PER_SPLIT", 16)
    monkeypatch.setattr(attention_plan, "_multiprocessors", lambda device: 64)
    assert attention_plan.decode_splits(2, 2, 80, device) > 1
    _compare(triton_attention, device, torch.float32, [1, 1], [79, 40], seed=6)
    _compare(triton_attention, device, torch.bfloat16, [1, 1], [70, 33], window=20, seed=7)


def test_decode_batch_without_split(triton_attention, device):
    _compare(triton_attention, device, torch.float16, [1, 1, 1], [3, 8, 1], seed=8)


def test_prompt_tiles_cover_every_query():
    from llmrt_triton.attention_plan import prompt_tiles

    seq, start = prompt_tiles([0, 5, 6, 22], 4, torch.device("cpu"))
    assert seq.tolist() == [0, 0, 1, 2, 2, 2, 2]
    assert start.tolist() == [0, 4, 0, 0, 4, 8, 12]


def test_decode_padding_rows_write_nothing(triton_attention, device):
    """CUDA-graph padding rows (slot -1, no keys) leave the cache alone; real rows are stored."""
    config = AttentionConfig(4, 2, 64, 64**-0.5, dtype=torch.float32)
    real = _batch([1, 1], [5, 11], 40, device, seed=9)
    padded = _batch([1, 1, 1], [5, 11, 2], 40, device, seed=9)
    padded.slot_mapping[2] = -1
    padded.seq_lens[2] = 0
    cache = torch.randn(TorchPagedAttention.kv_cache_shape(40, BLOCK, 2, 64), device=device)
    qkv = torch.randn(3, (4 + 2 * 2) * 64, device=device)
    q, k, v = qkv.split([4 * 64, 2 * 64, 2 * 64], -1)
    ref_cache, got_cache = cache.clone(), cache.clone()
    expected = TorchPagedAttention(config).forward(q[:2], k[:2], v[:2], ref_cache, real)
    got = triton_attention(config).forward(q, k, v, got_cache, padded)
    assert torch.equal(got_cache, ref_cache)
    torch.testing.assert_close(got[:2], expected, rtol=TOL[torch.float32], atol=TOL[torch.float32])
