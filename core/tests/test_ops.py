"""Reference ops against straightforward formulas and against Hugging Face's modules.

Also the Ops table contract and the rope tables (default, linear, llama3, yarn) against
transformers' own rope initialization.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from llmrt.model.context import LayerContext
from llmrt.model.layers.rotary import RotaryEmbedding, inverse_frequencies
from llmrt.ops import OP_NAMES, Ops
from llmrt.ops.torch_ops import (
    fused_add_rms_norm,
    gelu_tanh_and_mul,
    reference_ops,
    register_core_ops,
    rms_norm,
    rotary_embedding,
    silu_and_mul,
)
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.gemma2.modeling_gemma2 import Gemma2RMSNorm
from transformers.models.llama.modeling_llama import LlamaRMSNorm, apply_rotary_pos_emb


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- norms -----------------------------------------------------------------------------------------


def test_rms_norm_formula_float32():
    x, w = torch.randn(5, 3, 32, generator=_gen()), torch.randn(32, generator=_gen(1))
    expected = x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w
    torch.testing.assert_close(rms_norm(x, w, 1e-5), expected)
    torch.testing.assert_close(
        rms_norm(x, w, 1e-5, weight_offset=1.0, cast_before_weight=False), expected / w * (1 + w)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_rms_norm_llama_order_matches_hf_exactly(dtype):
    x = torch.randn(7, 64, generator=_gen()).to(dtype)
    hf = LlamaRMSNorm(64, eps=1e-6).to(dtype)
    with torch.no_grad():
        hf.weight.copy_(torch.randn(64, generator=_gen(2)))
    assert torch.equal(rms_norm(x, hf.weight.detach(), 1e-6), hf(x).detach())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_rms_norm_gemma_order_matches_hf_exactly(dtype):
    x = torch.randn(7, 64, generator=_gen()).to(dtype)
    hf = Gemma2RMSNorm(64, eps=1e-6).to(dtype)
    with torch.no_grad():
        hf.weight.copy_(torch.randn(64, generator=_gen(2)))
    got = rms_norm(x, hf.weight.detach(), 1e-6, weight_offset=1.0, cast_before_weight=False)
    assert torch.equal(got, hf(x).detach())


def test_fused_add_rms_norm_returns_norm_of_sum_and_sum():
    x, r, w = (torch.randn(4, 16, generator=_gen(i)) for i in range(3))
    x_copy, r_copy = x.clone(), r.clone()
    normed, residual = fused_add_rms_norm(x, r, w, 1e-6, 1.0, False)
    torch.testing.assert_close(residual, x_copy + r_copy)
    torch.testing.assert_close(normed, rms_norm(x_copy + r_copy, w, 1e-6, 1.0, False))


# -- rotary ----------------------------------------------------------------------------------------


def _cache(rot_dim: int, max_pos: int = 64, theta: float = 10000.0) -> torch.Tensor:
    inv = 1.0 / theta ** (torch.arange(0, rot_dim, 2).float() / rot_dim)
    freqs = torch.arange(max_pos).float()[:, None] * inv
    return torch.cat((freqs.cos(), freqs.sin()), dim=-1)


def test_rotary_neox_matches_hf_apply_rotary_pos_emb():
    heads, kv_heads, d = 4, 2, 16
    positions = torch.tensor([0, 5, 9, 33, 2])
    q = torch.randn(5, heads * d, generator=_gen())
    k = torch.randn(5, kv_heads * d, generator=_gen(1))
    cache = _cache(d)
    cos, sin = cache[positions].chunk(2, -1)
    cos, sin = torch.cat((cos, cos), -1)[None], torch.cat((sin, sin), -1)[None]
    hf_q, hf_k = apply_rotary_pos_emb(
        q.view(1, 5, heads, d).transpose(1, 2), k.view(1, 5, kv_heads, d).transpose(1, 2), cos, sin
    )
    got_q, got_k = rotary_embedding(positions, q, k, cache, d, True)
    assert torch.equal(got_q, hf_q.transpose(1, 2).reshape(5, -1))
    assert torch.equal(got_k, hf_k.transpose(1, 2).reshape(5, -1))


def test_rotary_gptj_is_complex_multiplication():
    d = 8
    positions = torch.tensor([3, 17])
    q, k = torch.randn(2, 2 * d, generator=_gen()), torch.randn(2, d, generator=_gen(1))
    cache = _cache(d)
    got_q, _ = rotary_embedding(positions, q, k, cache, d, False)
    cos, sin = cache[positions].chunk(2, -1)
    rotation = torch.complex(cos, sin)[:, None, :]
    pairs = torch.view_as_complex(q.view(2, 2, d // 2, 2).contiguous())
    expected = torch.view_as_real(pairs * rotation).flatten(-2).reshape(2, -1)
    torch.testing.assert_close(got_q, expected)


@pytest.mark.parametrize("neox", [True, False])
def test_rotary_partial_dim_leaves_the_rest_untouched(neox):
    d, rot = 16, 8
    q, k = torch.randn(3, 2 * d, generator=_gen()), torch.randn(3, d, generator=_gen(1))
    got_q, got_k = rotary_embedding(torch.tensor([1, 2, 3]), q, k, _cache(rot), d, neox)
    assert torch.equal(got_q.view(3, 2, d)[..., rot:], q.view(3, 2, d)[..., rot:])
    assert torch.equal(got_k[:, rot:], k[:, rot:])
    assert not torch.allclose(got_q.view(3, 2, d)[..., :rot], q.view(3, 2, d)[..., :rot])
    # a rotation keeps each pair's norm
    torch.testing.assert_close(got_q.norm(dim=-1), q.norm(dim=-1))


def test_rotary_position_zero_is_identity():
    q, k = torch.randn(1, 32, generator=_gen()), torch.randn(1, 16, generator=_gen(1))
    got_q, got_k = rotary_embedding(torch.tensor([0]), q, k, _cache(16), 16, True)
    assert torch.equal(got_q, q) and torch.equal(got_k, k)


# -- activations -----------------------------------------------------------------------------------


def test_silu_and_mul():
    x = torch.randn(3, 5, 20, generator=_gen())
    gate, up = x[..., :10], x[..., 10:]
    torch.testing.assert_close(silu_and_mul(x), gate / (1 + torch.exp(-gate)) * up)


def test_gelu_tanh_and_mul():
    x = torch.randn(4, 12, generator=_gen())
    g, up = x[..., :6], x[..., 6:]
    gelu = 0.5 * g * (1 + torch.tanh(math.sqrt(2 / math.pi) * (g + 0.044715 * g**3)))
    torch.testing.assert_close(gelu_tanh_and_mul(x), gelu * up)
    assert torch.equal(gelu_tanh_and_mul(x), F.gelu(g, approximate="tanh") * up)


# -- the Ops table ---------------------------------------------------------------------------------


def test_ops_table_requires_every_op_and_nothing_else():
    impls = {name: (lambda *a: None) for name in OP_NAMES}
    assert isinstance(Ops.from_registry(impls), Ops)
    with pytest.raises(ValueError, match="missing \\['rms_norm'\\]"):
        Ops.from_registry({k: v for k, v in impls.items() if k != "rms_norm"})
    with pytest.raises(ValueError, match="unknown \\['flash'\\]"):
        Ops.from_registry({**impls, "flash": lambda: None})


def test_register_core_ops_registers_every_op_for_all_backends():
    calls = []
    register_core_ops(lambda name, impl, backend="missing": calls.append((name, impl, backend)))
    assert [c[0] for c in calls] == list(OP_NAMES)
    assert all(backend is None for _, _, backend in calls)
    table = reference_ops()
    assert table.replace(silu_and_mul=gelu_tanh_and_mul).silu_and_mul is gelu_tanh_and_mul


# -- rope tables vs transformers -------------------------------------------------------------------


ROPE_CASES = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    "llama3": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    },
    "yarn": {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 128,
    },
}


@pytest.mark.parametrize("rope_type", sorted(ROPE_CASES))
def test_rope_frequencies_match_transformers(rope_type):
    params = dict(ROPE_CASES[rope_type])
    config = LlamaConfig(
        hidden_size=256,
        num_attention_heads=4,
        head_dim=64,
        max_position_embeddings=512,
        rope_parameters=dict(params),
    )
    if rope_type == "default":
        expected, factor = 1.0 / (10000.0 ** (torch.arange(0, 64, 2).float() / 64)), 1.0
    else:
        expected, factor = ROPE_INIT_FUNCTIONS[rope_type](config, "cpu")
    got, got_factor = inverse_frequencies(
        64, {**params, "max_position_embeddings": 512}, torch.device("cpu")
    )
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    assert got_factor == pytest.approx(factor)


def test_rotary_embedding_cache_and_unsupported_types():
    ctx = LayerContext(reference_ops(), lambda cfg: None, None, torch.bfloat16, torch.device("cpu"))
    rope = RotaryEmbedding(32, 100, ROPE_CASES["yarn"], ctx)
    assert rope.cos_sin_cache.shape == (100, 32) and rope.cos_sin_cache.dtype == torch.bfloat16
    assert "cos_sin_cache" not in rope.state_dict()
    with pytest.raises(ValueError, match="unsupported rope type 'dynamic'"):
        RotaryEmbedding(32, 100, {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}, ctx)
    with pytest.raises(ValueError, match="unsupported rope type 'longrope'"):
        RotaryEmbedding(32, 100, {"rope_type": "longrope", "rope_theta": 1e4}, ctx)


def test_composed_op_uses_the_backends_own_primitives():
    """A backend that fuses nothing gets qk_norm_rotary_embedding from its rms_norm and rotary."""
    from llmrt.ops import COMPOSED_OPS
    from llmrt.ops import torch_ops

    calls = []

    def norm(*args):
        calls.append("rms_norm")
        return torch_ops.rms_norm(*args)

    def rotary(*args):
        calls.append("rotary_embedding")
        return torch_ops.rotary_embedding(*args)

    composed = COMPOSED_OPS["qk_norm_rotary_embedding"]({"rms_norm": norm, "rotary_embedding": rotary})
    head, positions = 8, torch.tensor([0, 3])
    q, k = torch.randn(2, 4 * head, generator=_gen()), torch.randn(2, 2 * head, generator=_gen())
    weights = torch.randn(head, generator=_gen()), torch.randn(head, generator=_gen())
    cache = torch.randn(16, head, generator=_gen())
    got = composed(positions, q, k, *weights, 1e-6, 0.0, True, cache, head, True)
    assert calls == ["rms_norm", "rms_norm", "rotary_embedding"]
    qn = torch_ops.rms_norm(q.view(2, 4, head), weights[0], 1e-6).view(2, -1)
    kn = torch_ops.rms_norm(k.view(2, 2, head), weights[1], 1e-6).view(2, -1)
    expected = torch_ops.rotary_embedding(positions, qn, kn, cache, head, True)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=0)
