"""Norm, rotary and gated-activation kernels against core's PyTorch references."""

import pytest
import torch
from llmrt.ops import torch_ops

TOL = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 1.6e-2},
    torch.float16: {"rtol": 1e-3, "atol": 1e-3},
}
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@pytest.fixture(scope="module")
def kernels(device):
    from llmrt_triton import activation, norm, rotary

    return norm, rotary, activation


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset,cast_first", [(0.0, True), (1.0, False), (1.0, True)])
def test_rms_norm(kernels, device, dtype, offset, cast_first):
    norm = kernels[0]
    x = torch.randn(5, 96, dtype=dtype, device=device)
    w = torch.randn(96, dtype=dtype, device=device)
    expected = torch_ops.rms_norm(x, w, 1e-6, offset, cast_first)
    torch.testing.assert_close(
        norm.rms_norm(x, w, 1e-6, offset, cast_first), expected, **TOL[dtype]
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cast_first", [True, False])
def test_fused_add_rms_norm_leaves_inputs_alone(kernels, device, dtype, cast_first):
    norm = kernels[0]
    x = torch.randn(4, 64, dtype=dtype, device=device)
    res = torch.randn(4, 64, dtype=dtype, device=device)
    x0, res0 = x.clone(), res.clone()
    w = torch.randn(64, dtype=dtype, device=device)
    got = norm.fused_add_rms_norm(x, res, w, 1e-5, 0.0, cast_first)
    expected = torch_ops.fused_add_rms_norm(x0, res0, w, 1e-5, 0.0, cast_first)
    # Exact on the GPU; Triton's interpreter truncates float32 -> bf16 (no round to nearest).
    exact = device.type == "cuda" or dtype == torch.float32
    torch.testing.assert_close(
        got[1], expected[1], **({"rtol": 0, "atol": 0} if exact else TOL[dtype])
    )
    torch.testing.assert_close(got[0], expected[0], **TOL[dtype])
    assert torch.equal(x, x0) and torch.equal(res, res0)


def test_rms_norm_per_head_on_a_strided_view(kernels, device):
    """The q/k norm path: ``[T, heads, D]`` views into the fused QKV output, no copy needed."""
    norm = kernels[0]
    qkv = torch.randn(3, 4 * 16 + 2 * 16, device=device)
    q = qkv[:, : 4 * 16].reshape(3, 4, 16)
    w = torch.randn(16, device=device)
    torch.testing.assert_close(
        norm.rms_norm(q, w, 1e-6), torch_ops.rms_norm(q, w, 1e-6), **TOL[torch.float32]
    )


def _cos_sin(max_pos, rot_dim, dtype, device):
    inv = 1.0 / (10000 ** (torch.arange(0, rot_dim, 2, device=device).float() / rot_dim))
    freqs = torch.arange(max_pos, device=device).float()[:, None] * inv
    return torch.cat((freqs.cos(), freqs.sin()), dim=-1).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("neox", [True, False])
@pytest.mark.parametrize("rot_dim", [32, 16])
def test_rotary(kernels, device, dtype, neox, rot_dim):
    rotary = kernels[1]
    head, tokens = 32, 6
    qkv = torch.randn(tokens, (4 + 2 + 2) * head, dtype=dtype, device=device)
    q, k, _ = qkv.split([4 * head, 2 * head, 2 * head], dim=-1)
    positions = torch.tensor([0, 5, 1, 63, 7, 2], device=device)
    cache = _cos_sin(64, rot_dim, dtype, device)
    eq, ek = torch_ops.rotary_embedding(positions, q.clone(), k.clone(), cache, head, neox)
    gq, gk = rotary.rotary_embedding(positions, q, k, cache, head, neox)
    torch.testing.assert_close(gq, eq, **TOL[dtype])
    torch.testing.assert_close(gk, ek, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("neox", [True, False])
@pytest.mark.parametrize("rot_dim", [32, 16])
@pytest.mark.parametrize("offset,cast_first", [(0.0, True), (1.0, False)])
def test_qk_norm_rotary(kernels, device, dtype, neox, rot_dim, offset, cast_first):
    rotary = kernels[1]
    head, tokens = 32, 5
    qkv = torch.randn(tokens, (4 + 2 + 2) * head, dtype=dtype, device=device) * 3
    q, k, v = qkv.split([4 * head, 2 * head, 2 * head], dim=-1)
    v0 = v.clone()
    wq, wk = torch.randn(head, dtype=dtype, device=device), torch.randn(head, dtype=dtype, device=device)
    positions = torch.tensor([0, 5, 1, 63, 7], device=device)
    cache = _cos_sin(64, rot_dim, dtype, device)
    args = (wq, wk, 1e-6, offset, cast_first, cache, head, neox)
    eq, ek = torch_ops.REFERENCE_IMPLS["qk_norm_rotary_embedding"](positions, q.clone(), k.clone(), *args)
    gq, gk = rotary.qk_norm_rotary_embedding(positions, q, k, *args)
    # Four roundings to the dtype in a row: one ulp apart in a few places (the interpreter
    # truncates instead of rounding), so twice the single-op tolerance below float32.
    tol = TOL[dtype] if dtype == torch.float32 else {k: 2 * v for k, v in TOL[dtype].items()}
    torch.testing.assert_close(gq, eq, **tol)
    torch.testing.assert_close(gk, ek, **tol)
    assert torch.equal(v, v0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gated_activations(kernels, device, dtype):
    activation = kernels[2]
    x = torch.randn(3, 5, 2 * 48, dtype=dtype, device=device) * 3
    torch.testing.assert_close(activation.silu_and_mul(x), torch_ops.silu_and_mul(x), **TOL[dtype])
    torch.testing.assert_close(
        activation.gelu_tanh_and_mul(x), torch_ops.gelu_tanh_and_mul(x), **TOL[dtype]
    )
