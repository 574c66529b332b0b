"""Rotary position embedding applied in place to the query and key heads, one program per token.

Angles come from the model's ``cos_sin_cache [max_position, rot_dim]`` (row ``p`` is
``[cos(p f) s, sin(p f) s]``), so every rope type (default, linear, Llama 3.1, YaRN) is
supported without knowing which it is. Products are rounded to the model dtype before they
are summed, as in :func:`llmrt.ops.torch_ops.rotary_embedding` (and Hugging Face), so float32
and bf16 results match the reference. Channels past ``rot_dim`` are left untouched.

``qk_norm_rotary_embedding`` runs the per-head RMS norm of models with q/k norms (Qwen3, Gemma 3)
in the same program, on the halves it has loaded anyway: one launch instead of three per layer.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


ROTARY_WARPS = 8
"""Warps of each token's program: in an H100 decode graph (Qwen3-0.6B's 16 + 8 heads of 128,
``small_kernels_bench.py``) 2.20 us a call against 2.52 with 4 warps, 1.89 against 2.23 at 64 rows."""


@triton.jit
def _norm_heads(a1, a2, w_ptr, first, second, pairs_ok, eps, offset, dtype,
                HEAD_SIZE: tl.constexpr, CAST_BEFORE: tl.constexpr):
    """Per-head RMS norm of the two halves of every head (rot_dim == head_size), rounded where
    :func:`llmrt.ops.torch_ops.rms_norm` rounds; returns the halves in float32."""
    inv = tl.rsqrt((tl.sum(a1 * a1, axis=1) + tl.sum(a2 * a2, axis=1)) / HEAD_SIZE + eps)[:, None]
    w1 = tl.load(w_ptr + first, mask=pairs_ok, other=0.0).to(tl.float32)[None, :]
    w2 = tl.load(w_ptr + second, mask=pairs_ok, other=0.0).to(tl.float32)[None, :]
    if CAST_BEFORE:
        w1 = (w1 + offset).to(dtype).to(tl.float32)
        w2 = (w2 + offset).to(dtype).to(tl.float32)
        n1 = (w1 * (a1 * inv).to(dtype).to(tl.float32)).to(dtype)
        n2 = (w2 * (a2 * inv).to(dtype).to(tl.float32)).to(dtype)
    else:
        n1 = (a1 * inv * (w1 + offset)).to(dtype)
        n2 = (a2 * inv * (w2 + offset)).to(dtype)
    return n1.to(tl.float32), n2.to(tl.float32)


@triton.jit
def _rotate_heads(
    ptr,
    row_offset,
    num_heads,
    cos,
    sin,
    pairs,
    pairs_ok,
    w_ptr,
    eps,
    offset,
    HEAD_SIZE: tl.constexpr,
    HALF: tl.constexpr,
    HEADS_P: tl.constexpr,
    NEOX: tl.constexpr,
    NORM: tl.constexpr,
    CAST_BEFORE: tl.constexpr,
):
    """Rotate the first ``2 * HALF`` channels of every head of one token's row, in place (after a
    per-head RMS norm with weight ``w_ptr`` when ``NORM``)."""
    heads = tl.arange(0, HEADS_P)
    mask = (heads < num_heads)[:, None] & pairs_ok[None, :]
    if NEOX:
        first = pairs
        second = pairs + HALF
    else:
        first = 2 * pairs
        second = 2 * pairs + 1
    base = ptr + row_offset + heads[:, None] * HEAD_SIZE
    x1 = tl.load(base + first[None, :], mask=mask, other=0.0)
    x2 = tl.load(base + second[None, :], mask=mask, other=0.0)
    dtype = x1.dtype
    a1 = x1.to(tl.float32)
    a2 = x2.to(tl.float32)
    if NORM:
        a1, a2 = _norm_heads(a1, a2, w_ptr, first, second, pairs_ok, eps, offset, dtype, HEAD_SIZE, CAST_BEFORE)
    c = cos[None, :]
    s = sin[None, :]
    out1 = ((a1 * c).to(dtype).to(tl.float32) - (a2 * s).to(dtype).to(tl.float32)).to(dtype)
    out2 = ((a2 * c).to(dtype).to(tl.float32) + (a1 * s).to(dtype).to(tl.float32)).to(dtype)
    tl.store(base + first[None, :], out1, mask=mask)
    tl.store(base + second[None, :], out2, mask=mask)


@triton.jit
def _rotary_kernel(
    pos_ptr,
    q_ptr,
    k_ptr,
    cache_ptr,
    q_w_ptr,
    k_w_ptr,
    stride_q,
    stride_k,
    stride_cache,
    num_q_heads,
    num_k_heads,
    eps,
    offset,
    HEAD_SIZE: tl.constexpr,
    HALF: tl.constexpr,
    HALF_P: tl.constexpr,
    Q_HEADS_P: tl.constexpr,
    K_HEADS_P: tl.constexpr,
    NEOX: tl.constexpr,
    NORM: tl.constexpr,
    CAST_BEFORE: tl.constexpr,
):
    """Token ``pid``: load its cos/sin row once, rotate its query heads, then its key heads."""
    token = tl.program_id(0).to(tl.int64)
    pos = tl.load(pos_ptr + token).to(tl.int64)
    pairs = tl.arange(0, HALF_P)
    pairs_ok = pairs < HALF
    cs = cache_ptr + pos * stride_cache
    cos = tl.load(cs + pairs, mask=pairs_ok, other=0.0)
    sin = tl.load(cs + HALF + pairs, mask=pairs_ok, other=0.0)
    dtype = q_ptr.dtype.element_ty
    cos = cos.to(dtype).to(tl.float32)
    sin = sin.to(dtype).to(tl.float32)
    _rotate_heads(q_ptr, token * stride_q, num_q_heads, cos, sin, pairs, pairs_ok, q_w_ptr, eps, offset,
                  HEAD_SIZE, HALF, Q_HEADS_P, NEOX, NORM, CAST_BEFORE)
    _rotate_heads(k_ptr, token * stride_k, num_k_heads, cos, sin, pairs, pairs_ok, k_w_ptr, eps, offset,
                  HEAD_SIZE, HALF, K_HEADS_P, NEOX, NORM, CAST_BEFORE)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as ``[T, width]`` with unit stride inside a row (a copy only if it had none)."""
    x2 = x.view(x.shape[0], -1) if x.dim() > 2 and x.is_contiguous() else x
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


def _launch(positions, query, key, cos_sin_cache, head_size, is_neox_style, norm=None):
    """Rotate in place (after the per-head norm ``(q_weight, k_weight, eps, offset, cast_before)``)."""
    q, k = _rows(query), _rows(key)
    tokens = positions.numel()
    half = cos_sin_cache.shape[-1] // 2
    q_weight, k_weight, eps, offset, cast_before = norm or (q, k, 0.0, 0.0, True)
    if tokens:
        q_heads, k_heads = q.shape[-1] // head_size, k.shape[-1] // head_size
        _rotary_kernel[(tokens,)](
            positions, q, k, cos_sin_cache, q_weight, k_weight,
            q.stride(0), k.stride(0), cos_sin_cache.stride(0), q_heads, k_heads, eps, offset,
            HEAD_SIZE=head_size,
            HALF=half,
            HALF_P=triton.next_power_of_2(half),
            Q_HEADS_P=triton.next_power_of_2(q_heads),
            K_HEADS_P=triton.next_power_of_2(k_heads),
            NEOX=is_neox_style,
            NORM=norm is not None,
            CAST_BEFORE=cast_before,
            num_warps=ROTARY_WARPS,
        )
    return q.view(query.shape), k.view(key.shape)


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    cos_sin_cache: torch.Tensor,
    head_size: int,
    is_neox_style: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """See ``rotary_embedding`` in :class:`llmrt.ops.Ops`; rotates in place, returns the inputs."""
    return _launch(positions, query, key, cos_sin_cache, head_size, is_neox_style)


def qk_norm_rotary_embedding(positions, query, key, q_weight, k_weight, eps, weight_offset,
                             cast_before_weight, cos_sin_cache, head_size, is_neox_style):
    """See ``qk_norm_rotary_embedding`` in :class:`llmrt.ops.Ops`: one kernel, in place.

    With partial rotary (``rot_dim < head_size``) the norm covers channels the rotation does
    not load, so it runs as the two Triton ops in sequence instead.
    """
    if cos_sin_cache.shape[-1] != head_size:
        from llmrt.ops.interface import compose_qk_norm_rotary

        from llmrt_triton.norm import rms_norm

        return compose_qk_norm_rotary(rms_norm, rotary_embedding)(
            positions, query, key, q_weight, k_weight, eps, weight_offset, cast_before_weight,
            cos_sin_cache, head_size, is_neox_style)
    return _launch(positions, query, key, cos_sin_cache, head_size, is_neox_style,
                   (q_weight, k_weight, float(eps), float(weight_offset), bool(cast_before_weight)))
