"""RMS norm and fused residual-add + RMS norm, one program per row.

Numerics follow :func:`llmrt.ops.torch_ops.rms_norm`: the mean of squares in float32, then
either ``(w + offset) * n.to(dtype)`` (``cast_before_weight``, Llama/Qwen) or
``(n * (w + offset)).to(dtype)`` (Gemma). The residual sum is rounded to the input dtype before
it is normalized, as the reference does. Inputs may be 2-D row-strided views or 3-D views
(per-head q/k norms over a slice of the fused QKV output) without a copy.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from llmrt_triton.triton_math import num_warps_for


@triton.jit
def _rms_norm_kernel(
    x_ptr,
    res_ptr,
    w_ptr,
    out_ptr,
    res_out_ptr,
    inner,
    sx0,
    sx1,
    sr0,
    sr1,
    width,
    eps,
    offset,
    BLOCK: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    CAST_BEFORE_WEIGHT: tl.constexpr,
):
    """Row ``r`` sits at ``(r // inner) * s0 + (r % inner) * s1``; outputs are contiguous."""
    row = tl.program_id(0)
    r0 = (row // inner).to(tl.int64)
    r1 = (row % inner).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < width
    x = tl.load(x_ptr + r0 * sx0 + r1 * sx1 + cols, mask=mask, other=0.0)
    out_row = row.to(tl.int64) * width
    if HAS_RESIDUAL:
        res = tl.load(res_ptr + r0 * sr0 + r1 * sr1 + cols, mask=mask, other=0.0)
        x = (x.to(tl.float32) + res.to(tl.float32)).to(x.dtype)
        tl.store(res_out_ptr + out_row + cols, x, mask=mask)
    xf = x.to(tl.float32)
    inv = 1.0 / tl.sqrt(tl.sum(xf * xf, axis=0) / width + eps)
    normed = xf * inv
    w = tl.load(w_ptr + cols, mask=mask, other=0.0)
    if CAST_BEFORE_WEIGHT:
        scale = (w.to(tl.float32) + offset).to(w.dtype).to(tl.float32)
        y = scale * normed.to(x.dtype).to(tl.float32)
    else:
        y = normed * (w.to(tl.float32) + offset)
    tl.store(out_ptr + out_row + cols, y.to(x.dtype), mask=mask)


def _rows(x: torch.Tensor) -> tuple[torch.Tensor, int, int, int]:
    """``(x, inner, stride0, stride1)`` describing the rows of ``x`` (copies only when needed)."""
    if x.stride(-1) != 1:
        x = x.contiguous()
    if x.dim() == 1:
        return x, 1, x.shape[0], 0
    if x.dim() == 2:
        return x, 1, x.stride(0), 0
    lead = x.reshape(-1, *x.shape[-2:]) if x.dim() > 3 else x
    if lead.dim() == 3 and lead.stride(-1) == 1:
        return lead, lead.shape[1], lead.stride(0), lead.stride(1)
    flat = x.reshape(-1, x.shape[-1])
    return flat, 1, flat.stride(0), 0


def _launch(x, residual, weight, eps, weight_offset, cast_before_weight):
    width = x.shape[-1]
    rows = x.numel() // width
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    res_out = torch.empty(x.shape, dtype=x.dtype, device=x.device) if residual is not None else out
    xv, inner, sx0, sx1 = _rows(x)
    rv, _, sr0, sr1 = _rows(residual) if residual is not None else (xv, inner, sx0, sx1)
    if rows:
        block = triton.next_power_of_2(width)
        _rms_norm_kernel[(rows,)](
            xv,
            rv,
            weight,
            out,
            res_out,
            inner,
            sx0,
            sx1,
            sr0,
            sr1,
            width,
            eps,
            float(weight_offset),
            BLOCK=block,
            HAS_RESIDUAL=residual is not None,
            CAST_BEFORE_WEIGHT=cast_before_weight,
            num_warps=num_warps_for(block),
        )
    return out, res_out


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    weight_offset: float = 0.0,
    cast_before_weight: bool = True,
) -> torch.Tensor:
    """See ``rms_norm`` in :class:`llmrt.ops.Ops`."""
    return _launch(x, None, weight, eps, weight_offset, cast_before_weight)[0]


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    weight_offset: float = 0.0,
    cast_before_weight: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """See ``fused_add_rms_norm`` in :class:`llmrt.ops.Ops`; returns new tensors."""
    if residual.shape != x.shape:
        raise ValueError(f"residual shape {tuple(residual.shape)} differs from x {tuple(x.shape)}")
    return _launch(x, residual, weight, eps, weight_offset, cast_before_weight)
