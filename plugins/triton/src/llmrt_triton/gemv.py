"""One row times a large weight, ``x [1, K] @ W[N, K]^T``: the product of batch-1 decoding.

Decoding a single sequence multiplies one row by every weight of the model, a stream over the
weights bound by memory bandwidth. cuBLAS's kernels for it (tiles sized for many rows, split-K
with a separate reduction launch for the narrower projections) read a Llama-3-8B layer's weights
at 2.1-2.8 TB/s on an H100; this kernel reads them at 2.5-3.2 TB/s (the measurements are in
``plugins/cuda/benchmarks/NOTES.md``). Each program owns ``BLOCK_N`` output features, reads
their weight rows once, ``BLOCK_K`` columns at a time, into a float32 ``[BLOCK_N, BLOCK_K]``
accumulator of multiply-adds summed at the end; the result is rounded to ``x``'s dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl


class GemvConfig(NamedTuple):
    """One launch configuration: features per program, the K slice, warps and pipeline stages."""

    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


DEFAULT_CONFIG = GemvConfig(block_n=4, block_k=1024, num_warps=4, num_stages=3)
"""Within 3% of the best of 48 configurations on every Llama-3-8B and Qwen3-0.6B weight (H100)."""


@triton.jit
def _gemv_kernel(
    x_ptr, w_ptr, bias_ptr, out_ptr, N, K, stride_w,
    HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN: tl.constexpr,
):
    """Program ``pid`` computes outputs ``pid * BLOCK_N ...`` of the single row ``x``."""
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    rows = w_ptr + offs_n.to(tl.int64)[:, None] * stride_w
    acc = tl.zeros((BLOCK_N, BLOCK_K), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        cols = k0 + offs_k
        if EVEN:
            w = tl.load(rows + cols[None, :])
            x = tl.load(x_ptr + cols)
        else:
            w = tl.load(rows + cols[None, :], mask=(offs_n[:, None] < N) & (cols[None, :] < K),
                        other=0.0)
            x = tl.load(x_ptr + cols, mask=cols < K, other=0.0)
        acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
    y = tl.sum(acc, axis=1)
    if HAS_BIAS:
        y += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)
    tl.store(out_ptr + offs_n, y.to(out_ptr.dtype.element_ty), mask=offs_n < N)


def gemv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
    config: GemvConfig = DEFAULT_CONFIG, out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``x [1, K] @ weight[N, K]^T (+ bias) -> [1, N]``, accumulated in float32 and written in
    ``out_dtype`` (default: ``x``'s).

    ``weight`` must be contiguous along ``K``.
    """
    if x.dim() != 2 or x.shape[0] != 1:
        raise ValueError(f"gemv takes one row [1, K], got {tuple(x.shape)}")
    k = x.shape[1]
    n = weight.shape[0]
    x = x.contiguous()
    out = torch.empty((1, n), dtype=out_dtype or x.dtype, device=x.device)
    if n == 0:
        return out
    has_bias = bias is not None
    _gemv_kernel[(triton.cdiv(n, config.block_n),)](
        x, weight, bias if has_bias else out, out, n, k, weight.stride(0),
        HAS_BIAS=has_bias, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
        EVEN=k % config.block_k == 0 and n % config.block_n == 0,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return out
