"""Gated activations ``act(gate) * up`` of ``x = [gate, up]``: SiLU (Llama, Qwen) or GELU-tanh.

As in the reference, ``act(gate)`` is rounded to the input dtype before the product, which is
then rounded again: bf16 results equal :func:`llmrt.ops.torch_ops.silu_and_mul`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from llmrt_triton.triton_math import tanh

BLOCK = 1024
"""Outputs per program."""
GATED_WARPS = 8
"""Warps per program: 1.94 us a call against 2.02 with 4 in an H100 decode graph (256 rows of
2 x 3072, ``small_kernels_bench.py``); the same at 64 rows."""


@triton.jit
def _gated_kernel(x_ptr, out_ptr, half, stride_x, BLOCK: tl.constexpr, GELU: tl.constexpr):
    """Program ``(row, chunk)`` computes ``BLOCK`` outputs of one row."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < half
    gate = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0)
    up = tl.load(x_ptr + row * stride_x + half + cols, mask=mask, other=0.0)
    g = gate.to(tl.float32)
    if GELU:
        act = 0.5 * g * (1.0 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g)))
    else:
        act = g / (1.0 + tl.exp(-g))
    y = act.to(gate.dtype).to(tl.float32) * up.to(tl.float32)
    tl.store(out_ptr + row * half + cols, y.to(gate.dtype), mask=mask)


def _gated(x: torch.Tensor, gelu: bool) -> torch.Tensor:
    half = x.shape[-1] // 2
    rows2d = x.reshape(-1, x.shape[-1])
    if rows2d.stride(-1) != 1:
        rows2d = rows2d.contiguous()
    out = torch.empty((*x.shape[:-1], half), dtype=x.dtype, device=x.device)
    if rows2d.shape[0] and half:
        grid = (rows2d.shape[0], triton.cdiv(half, BLOCK))
        _gated_kernel[grid](
            rows2d, out, half, rows2d.stride(0), BLOCK=BLOCK, GELU=gelu, num_warps=GATED_WARPS
        )
    return out


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """See ``silu_and_mul`` in :class:`llmrt.ops.Ops`."""
    return _gated(x, gelu=False)


def gelu_tanh_and_mul(x: torch.Tensor) -> torch.Tensor:
    """See ``gelu_tanh_and_mul`` in :class:`llmrt.ops.Ops`."""
    return _gated(x, gelu=True)
