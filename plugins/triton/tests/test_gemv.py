"""The single-row product kernel and the linear method that routes batch-1 products to it."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

TOL = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 2e-2},
    torch.float16: {"rtol": 1e-3, "atol": 2e-3},
}


@pytest.fixture(scope="module")
def gemv_module(device):
    from llmrt_triton import gemv

    return gemv


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("n,k", [(64, 2048), (37, 100), (130, 1030)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_gemv_matches_linear(gemv_module, device, dtype, n, k, with_bias):
    """Even and ragged shapes (masked tails in both dimensions), with and without a bias."""
    x = torch.randn(1, k, device=device, dtype=dtype)
    w = (torch.randn(n, k, device=device) / k**0.5).to(dtype)
    bias = torch.randn(n, device=device, dtype=dtype) if with_bias else None
    expected = F.linear(x.float(), w.float(), None if bias is None else bias.float())
    got = gemv_module.gemv(x, w, bias)
    assert got.shape == (1, n) and got.dtype == dtype
    torch.testing.assert_close(got.float(), expected, **TOL[dtype])


def test_gemv_small_blocks_and_a_strided_row(gemv_module, device):
    """Another launch configuration, and a row that is a view into a wider tensor."""
    wide = torch.randn(1, 300, device=device)
    x = wide[:, 10:138]
    w = torch.randn(50, 128, device=device)
    config = gemv_module.GemvConfig(block_n=8, block_k=32, num_warps=2, num_stages=2)
    got = gemv_module.gemv(x, w, config=config)
    torch.testing.assert_close(got, F.linear(x, w), **TOL[torch.float32])


def test_gemv_rejects_several_rows(gemv_module, device):
    with pytest.raises(ValueError, match="one row"):
        gemv_module.gemv(torch.randn(2, 16, device=device), torch.randn(4, 16, device=device))


class _Layer(nn.Module):
    def __init__(self, n, k, dtype, device):
        super().__init__()
        weight = torch.randn(n, k, device=device, dtype=dtype)
        self.weight = nn.Parameter(weight, requires_grad=False)


@pytest.mark.parametrize("rows,dtype,uses_gemv", [
    (1, torch.bfloat16, True),
    (1, torch.float16, True),
    (3, torch.bfloat16, False),
    (1, torch.float32, False),
])
def test_linear_method_routes_single_rows(device, monkeypatch, rows, dtype, uses_gemv):
    from llmrt_triton import linear

    calls = []
    monkeypatch.setattr(linear, "gemv", lambda *args: calls.append(args) or F.linear(*args))
    layer = _Layer(24, 32, dtype, device)
    x = torch.randn(rows, 32, device=device, dtype=dtype)
    out = linear.GemvLinearMethod("model.layers.0.mlp.down_proj").apply(layer, x, None)
    assert out.shape == (rows, 24)
    assert bool(calls) == uses_gemv



@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_gemv_writes_float32(gemv_module, device, dtype):
    """``out_dtype=float32`` keeps the float32 accumulation instead of rounding to the input's."""
    x = torch.randn(1, 300, device=device, dtype=dtype)
    w = (torch.randn(70, 300, device=device) / 300**0.5).to(dtype)
    got = gemv_module.gemv(x, w, out_dtype=torch.float32)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, F.linear(x.float(), w.float()), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rows", [1, 5])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_linear_method_float32_logits(device, rows, dtype):
    """The LM head's float32 logits: the products' own float32 output where there is one, else
    the model-dtype product converted; the same values either way (up to the 16-bit rounding)."""
    from llmrt_triton import linear

    layer = _Layer(40, 64, dtype, device)
    x = torch.randn(rows, 64, device=device, dtype=dtype)
    got = linear.GemvLinearMethod().apply_float32(layer, x)
    assert got.dtype == torch.float32 and got.shape == (rows, 40)
    expected = F.linear(x.float(), layer.weight.float())
    torch.testing.assert_close(got, expected, **TOL[dtype])
