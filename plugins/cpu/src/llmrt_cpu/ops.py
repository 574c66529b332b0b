"""The CPU backend's ops: native kernels for float32 and bfloat16, core's reference otherwise.

Each function has the signature and numerics documented on :class:`llmrt.ops.Ops`. It sends
CPU tensors of a supported dtype and layout to ``llmrt_cpu._C`` and anything else (float16,
unusual strides) to :mod:`llmrt.ops.torch_ops`. The kernels round where the reference rounds,
so float32 results agree to a few ulps and bfloat16 results nearly bitwise.

In-place use, as the contract allows: ``fused_add_rms_norm`` stores the new residual into
``residual`` (never into ``x``), and ``rotary_embedding`` rotates ``query`` and ``key`` in
place and returns them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from llmrt.ops import torch_ops
from llmrt.ops.interface import compose_qk_norm_rotary
from llmrt_cpu import native

NATIVE_DTYPES = (torch.float32, torch.bfloat16)
_C = native.kernels()  # None without the kernels: every op then takes the reference


def _native_ok(x: torch.Tensor, *others: torch.Tensor) -> bool:
    """Same supported dtype, on the CPU, last dimension contiguous.

    Called for every op of every layer of every step, so written for speed (no generators).
    """
    dtype = x.dtype
    if _C is None or dtype not in NATIVE_DTYPES or not x.is_cpu or x.dim() == 0 or x.stride(-1) != 1:
        return False
    for t in others:
        if t.dtype != dtype or not t.is_cpu or t.dim() == 0 or t.stride(-1) != 1:
            return False
    return True


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, weight_offset: float = 0.0,
             cast_before_weight: bool = True) -> torch.Tensor:
    """See :class:`llmrt.ops.Ops`."""
    if x.dim() <= 3 and weight.is_contiguous() and _native_ok(x, weight):
        return _C.rms_norm(x, weight, eps, weight_offset, cast_before_weight)
    return torch_ops.rms_norm(x, weight, eps, weight_offset, cast_before_weight)


def fused_add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float,
                       weight_offset: float = 0.0,
                       cast_before_weight: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """See :class:`llmrt.ops.Ops`; the new residual is written into ``residual``."""
    if (x.dim() <= 3 and residual.shape == x.shape and residual.is_contiguous() and weight.is_contiguous()
            and _native_ok(x, residual, weight)):
        normed = _C.fused_add_rms_norm(x, residual, weight, eps, weight_offset, cast_before_weight)
        return normed, residual
    return torch_ops.fused_add_rms_norm(x, residual, weight, eps, weight_offset, cast_before_weight)


def rotary_embedding(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                     cos_sin_cache: torch.Tensor, head_size: int,
                     is_neox_style: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """See :class:`llmrt.ops.Ops`; rotates ``query`` and ``key`` in place."""
    if (query.dim() == 2 and key.dim() == 2 and positions.dtype == torch.long and positions.is_contiguous()
            and cos_sin_cache.is_contiguous() and _native_ok(query, key, cos_sin_cache)):
        _C.rotary_embedding(positions, query, key, cos_sin_cache, head_size, is_neox_style)
        return query, key
    return torch_ops.rotary_embedding(positions, query, key, cos_sin_cache, head_size, is_neox_style)


_composed_qk_norm_rotary = compose_qk_norm_rotary(rms_norm, rotary_embedding)


def qk_norm_rotary_embedding(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                             q_weight: torch.Tensor, k_weight: torch.Tensor, eps: float, weight_offset: float,
                             cast_before_weight: bool, cos_sin_cache: torch.Tensor, head_size: int,
                             is_neox_style: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """See :class:`llmrt.ops.Ops`: one native call (norms, then rotation, token by token);
    ``rms_norm`` then ``rotary_embedding`` otherwise. Returns new query and key tensors."""
    if (query.dim() == 2 and key.dim() == 2 and query.shape[0] == key.shape[0] == positions.numel()
            and query.shape[1] % head_size == 0 and key.shape[1] % head_size == 0
            and positions.dtype == torch.long and positions.is_contiguous() and cos_sin_cache.is_contiguous()
            and q_weight.is_contiguous() and k_weight.is_contiguous()
            and _native_ok(query, key, q_weight, k_weight, cos_sin_cache)):
        return _C.qk_norm_rotary(positions, query, key, q_weight, k_weight, eps, weight_offset, cast_before_weight,
                                 cos_sin_cache, head_size, is_neox_style)
    return _composed_qk_norm_rotary(positions, query, key, q_weight, k_weight, eps, weight_offset,
                                    cast_before_weight, cos_sin_cache, head_size, is_neox_style)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """See :class:`llmrt.ops.Ops`."""
    if x.shape[-1] % 2 == 0 and _native_ok(x):
        return _C.silu_and_mul(x)
    return torch_ops.silu_and_mul(x)


NATIVE_OPS: dict[str, Callable[..., Any]] = {
    "rms_norm": rms_norm,
    "fused_add_rms_norm": fused_add_rms_norm,
    "rotary_embedding": rotary_embedding,
    "qk_norm_rotary_embedding": qk_norm_rotary_embedding,
    "silu_and_mul": silu_and_mul,
}
"""Ops with a native kernel; the others (``gelu_tanh_and_mul``) stay core's reference."""
