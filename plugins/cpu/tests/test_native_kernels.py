"""The native kernels against core's PyTorch reference, on random inputs, for every instruction-set
build this CPU runs: float32 within 1e-5 relative, bfloat16 within 1e-2.

Attention covers head sizes (including ones that are not a multiple of the vector width), GQA
ratios, block sizes, fresh prompts, prompt chunks over a cached prefix, decode tokens,
sequence lengths that are not multiples of the block size, sliding windows and soft-capping.
"""

from __future__ import annotations

import random

import pytest
import torch

from llmrt.attention.interface import AttentionConfig
from llmrt.attention.metadata import AttentionMetadata
from llmrt.attention.torch_paged import TorchPagedAttention
from llmrt.ops import torch_ops
from llmrt.ops.interface import compose_qk_norm_rotary
from llmrt_cpu import native

_C = native.kernels()
pytestmark = pytest.mark.skipif(_C is None, reason=native.status())

ISAS = _C.supported_isas() if _C is not None else []
DTYPES = (torch.float32, torch.bfloat16)
FLOAT32_TOL = {"rtol": 1e-5, "atol": 1e-5}
BF16_TOL = {"rtol": 1e-2, "atol": 1e-2}


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test with one instruction-set build, then restore the best one."""
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa("auto")


def _close(got: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    torch.testing.assert_close(got.float(), expected.float(), **(FLOAT32_TOL if dtype == torch.float32 else BF16_TOL))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("offset", "cast_before"), [(0.0, True), (1.0, False), (1.0, True)])
def test_rms_norm_and_fused_add(isa, dtype, offset, cast_before):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 300, generator=gen).to(dtype)
    weight = torch.randn(300, generator=gen).to(dtype)
    residual = torch.randn(7, 300, generator=gen).to(dtype)
    _close(_C.rms_norm(x, weight, 1e-6, offset, cast_before), torch_ops.rms_norm(x, weight, 1e-6, offset, cast_before),
           dtype)
    new_residual = residual.clone()
    normed = _C.fused_add_rms_norm(x, new_residual, weight, 1e-6, offset, cast_before)
    expected_normed, expected_residual = torch_ops.fused_add_rms_norm(x, residual, weight, 1e-6, offset, cast_before)
    _close(normed, expected_normed, dtype)
    _close(new_residual, expected_residual, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_over_heads_of_a_strided_view(isa, dtype):
    """Qwen3's per-head q/k norm: a [T, heads, D] view of the fused qkv output."""
    qkv = torch.randn(5, 3 * 4 * 32).to(dtype)
    q = qkv[:, : 4 * 32].reshape(5, 4, 32)
    weight = torch.randn(32).to(dtype)
    _close(_C.rms_norm(q, weight, 1e-6, 0.0, True), torch_ops.rms_norm(q, weight, 1e-6), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("neox", [True, False])
@pytest.mark.parametrize(("head_size", "rot_dim"), [(64, 64), (80, 40), (128, 128)])
def test_rotary_embedding(isa, dtype, neox, head_size, rot_dim):
    gen = torch.Generator().manual_seed(1)
    positions = torch.randint(0, 100, (9,), generator=gen)
    qkv = torch.randn(9, 7 * head_size, generator=gen).to(dtype)
    query, key = qkv[:, : 4 * head_size], qkv[:, 4 * head_size : 6 * head_size]  # strided views
    inv_freq = 1.0 / (10000 ** (torch.arange(0, rot_dim, 2).float() / rot_dim))
    angles = torch.arange(128).float()[:, None] * inv_freq
    cos_sin = torch.cat((angles.cos(), angles.sin()), dim=-1).to(dtype)
    expected_q, expected_k = torch_ops.rotary_embedding(positions, query, key, cos_sin, head_size, neox)
    _C.rotary_embedding(positions, query, key, cos_sin, head_size, neox)
    _close(query, expected_q, dtype)
    _close(key, expected_k, dtype)


@pytest.mark.parametrize("position", [-1, 128, 4096])
def test_rotary_rejects_positions_outside_the_table(position):
    """A position past the table's rows (the model's maximum length) is an error, not a read
    past the allocation; nothing is rotated."""
    cos_sin = torch.randn(128, 64)
    positions = torch.tensor([0, 5, position])
    query, key = torch.randn(3, 2 * 64), torch.randn(3, 64)
    before = query.clone(), key.clone()
    with pytest.raises(RuntimeError, match=f"position {position} is outside the rotary table's 128 rows"):
        _C.rotary_embedding(positions, query, key, cos_sin, 64, True)
    with pytest.raises(RuntimeError, match="outside the rotary table"):
        _C.qk_norm_rotary(positions, query, key, torch.ones(64), torch.ones(64), 1e-6, 0.0, True, cos_sin, 64, True)
    assert torch.equal(query, before[0]) and torch.equal(key, before[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("neox", "offset", "cast_before"), [(True, 0.0, True), (False, 1.0, False)])
@pytest.mark.parametrize(("head_size", "rot_dim"), [(64, 64), (80, 40)])
def test_qk_norm_rotary_matches_norms_then_rotary(isa, dtype, neox, offset, cast_before, head_size, rot_dim):
    """Qwen3's attention inputs: per-head norms of strided q/k views of the fused QKV output,
    then the rotation; the same numbers as the two ops in sequence."""
    gen = torch.Generator().manual_seed(3)
    positions = torch.randint(0, 100, (9,), generator=gen)
    qkv = torch.randn(9, 8 * head_size, generator=gen).to(dtype)
    query, key = qkv[:, : 6 * head_size], qkv[:, 6 * head_size : 7 * head_size]  # 6 query heads, 1 KV head
    q_weight, k_weight = torch.randn(head_size, generator=gen).to(dtype), torch.randn(head_size, generator=gen).to(dtype)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, rot_dim, 2).float() / rot_dim))
    angles = torch.arange(128).float()[:, None] * inv_freq
    cos_sin = torch.cat((angles.cos(), angles.sin()), dim=-1).to(dtype)
    args = (q_weight, k_weight, 1e-6, offset, cast_before, cos_sin, head_size, neox)
    expected = compose_qk_norm_rotary(torch_ops.rms_norm, torch_ops.rotary_embedding)(positions, query.clone(),
                                                                                      key.clone(), *args)
    before = qkv.clone()
    got = _C.qk_norm_rotary(positions, query, key, *args)
    for ours, theirs in zip(got, expected):
        assert ours.is_contiguous()
        _close(ours, theirs, dtype)
    assert torch.equal(qkv, before), "the inputs were written"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [128, 333, 3072])
def test_silu_and_mul(isa, dtype, width):
    x = (torch.randn(5, 2 * width) * 4).to(dtype)
    _close(_C.silu_and_mul(x), torch_ops.silu_and_mul(x), dtype)


def _batch(query_lens, context_lens, block_size, seed):
    """Metadata with shuffled block ids, so sequences' blocks are scattered in the cache."""
    rng = random.Random(seed)
    num_blocks = sum(-(-(q + c) // block_size) for q, c in zip(query_lens, context_lens)) + 2
    ids = list(range(num_blocks))
    rng.shuffle(ids)
    tables, used = [], 0
    for q, c in zip(query_lens, context_lens):
        count = -(-(q + c) // block_size)
        tables.append(ids[used : used + count])
        used += count
    return AttentionMetadata.build(query_lens, context_lens, tables, block_size, "cpu"), num_blocks


def _attention_case(dtype, heads, kv_heads, head_size, block_size, query_lens, context_lens, window=None,
                    softcap=None):
    config = AttentionConfig(num_heads=heads, num_kv_heads=kv_heads, head_size=head_size, scale=head_size**-0.5,
                             sliding_window=window, logit_softcap=softcap, dtype=dtype)
    metadata, num_blocks = _batch(query_lens, context_lens, block_size, seed=heads + head_size)
    gen = torch.Generator().manual_seed(2)
    cache = torch.randn(TorchPagedAttention.kv_cache_shape(num_blocks, block_size, kv_heads, head_size),
                        generator=gen).to(dtype)
    tokens = sum(query_lens)
    qkv = torch.randn(tokens, (heads + 2 * kv_heads) * head_size, generator=gen).to(dtype)
    q, k, v = qkv.split([heads * head_size, kv_heads * head_size, kv_heads * head_size], dim=-1)
    # Truth: the reference in float32 on the same (dtype-rounded) values.
    reference_cache = cache.float()
    expected = TorchPagedAttention(AttentionConfig(**{**config.__dict__, "dtype": torch.float32})).forward(
        q.float(), k.float(), v.float(), reference_cache, metadata)
    _C.write_kv_cache(k, v, cache, metadata.slot_mapping)
    torch.testing.assert_close(cache.float(), reference_cache, rtol=0, atol=0)
    items = _C.plan_attention(metadata.query_start_loc, metadata.seq_lens, heads, kv_heads)
    got = _C.paged_attention(q, cache, metadata.block_tables, metadata.query_start_loc, metadata.seq_lens, items,
                             heads, head_size, config.scale, window or 0, softcap or 0.0)
    _close(got, expected, dtype)


# Fresh prompts, chunks over cached prefixes, decode tokens; lengths off the block size.
QUERY_LENS = [7, 1, 1, 20, 1, 40, 3]
CONTEXT_LENS = [0, 13, 5, 17, 0, 70, 29]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("heads", "kv_heads", "head_size", "block_size"),
                         [(8, 4, 64, 16), (4, 4, 32, 8), (12, 2, 80, 16), (16, 2, 128, 32), (8, 1, 64, 5),
                          (6, 1, 96, 16)])
def test_paged_attention(isa, dtype, heads, kv_heads, head_size, block_size):
    _attention_case(dtype, heads, kv_heads, head_size, block_size, QUERY_LENS, CONTEXT_LENS)


@pytest.mark.parametrize("dtype", DTYPES)
def test_paged_attention_sliding_window_and_softcap(isa, dtype):
    _attention_case(dtype, 8, 4, 64, 16, QUERY_LENS, CONTEXT_LENS, window=16)
    _attention_case(dtype, 8, 4, 64, 16, QUERY_LENS, CONTEXT_LENS, softcap=5.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("heads", "kv_heads", "head_size", "block_size"),
                         [(8, 2, 64, 16), (8, 4, 64, 128), (8, 8, 64, 64), (14, 2, 80, 16), (16, 2, 128, 32),
                          (8, 1, 64, 5), (6, 1, 96, 128), (12, 4, 40, 16), (9, 3, 36, 128)])
def test_paged_attention_many_decode_sequences_and_long_context(isa, dtype, heads, kv_heads, head_size, block_size):
    """Enough decode sequences for whole-sequence items (every head of a sequence at once, in
    blocks of four cache rows and tails); contexts past one softmax chunk; GQA groups 1 to 8;
    head sizes not a multiple of the vector width; blocks of 5 to 128 tokens."""
    query_lens = [1] * 12 + [300]
    context_lens = [300, 1, 17, 64, 3, 200, 99, 5, 6, 7, 8, 515, 200]
    _attention_case(dtype, heads, kv_heads, head_size, block_size, query_lens, context_lens)


@pytest.mark.parametrize("dtype", DTYPES)
def test_paged_attention_whole_sequences_with_window_and_softcap(isa, dtype):
    query_lens, context_lens = [1] * 12, [300, 1, 17, 64, 3, 200, 99, 5, 6, 7, 8, 515]
    _attention_case(dtype, 8, 2, 64, 16, query_lens, context_lens, window=100)
    _attention_case(dtype, 8, 2, 64, 16, query_lens, context_lens, softcap=5.0)


def _exact_inverse_cdf(logits: torch.Tensor, temperature: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """The token each uniform number selects, from float64 cumulative sums (argmax at t == 0)."""
    greedy = temperature == 0
    probs = torch.softmax(logits.double() / torch.where(greedy, 1.0, temperature).double().unsqueeze(1), dim=-1)
    cdf = probs.cumsum(dim=-1)
    drawn = torch.searchsorted(cdf, uniform.double().unsqueeze(1) * cdf[:, -1:], right=True).view(-1)
    return torch.where(greedy, logits.argmax(dim=-1), drawn.clamp_(max=logits.shape[1] - 1))


@pytest.mark.parametrize("vocab", [7, 17, 1000, 1024, 16_384, 50_001])
def test_sample_categorical_inverts_the_distribution(isa, vocab):
    """Each row's uniform number selects the token float64 arithmetic selects, bar float32
    rounding right at a boundary; -inf entries are never drawn; t == 0 takes the argmax."""
    gen = torch.Generator().manual_seed(vocab)
    rows = 96
    logits = torch.randn(rows, vocab, generator=gen) * 3
    logits[:, 1::3] = float("-inf")
    temperature = torch.rand(rows, generator=gen) * 1.5 + 0.05
    temperature[::6], temperature[1::6] = 0.0, 1.0
    uniform = torch.rand(rows, generator=gen)
    uniform[2] = 0.0
    tokens = _C.sample_categorical(logits, temperature, uniform)
    exact = _exact_inverse_cdf(logits, temperature, uniform)
    assert tokens.dtype == torch.long and tokens.shape == (rows,)
    assert not torch.isinf(logits.gather(1, tokens.view(-1, 1))).any(), "an entry at -inf was drawn"
    assert torch.equal(tokens[::6], logits[::6].argmax(dim=-1))
    assert (tokens != exact).sum() <= 1 and (tokens - exact).abs().max() <= 3


def test_sample_categorical_edge_rows(isa):
    """Ties go to the first maximum; a row with no finite entry gives its first maximum too;
    a strided view of the logits is read through its row stride."""
    logits = torch.full((3, 40), float("-inf"))
    logits[0, [5, 9]] = 2.0
    logits[1, 33] = 0.0  # one token holds all the mass
    wide = torch.zeros(3, 80)
    wide[:, :40] = logits
    temperature, uniform = torch.tensor([0.0, 0.7, 1.0]), torch.tensor([0.5, 0.999, 0.3])
    assert _C.sample_categorical(wide[:, :40], temperature, uniform).tolist() == [5, 33, 0]
