"""Rotary position embedding applied in place to the query and key heads, one program per token.

Angles come from the model's ``cos_sin_cache [max_position, rot_dim]`` (row ``p`` is
``[cos(p f) s, sin(p f) s]``), so every rope type (default, linear, Llama 3.1, YaRN) is
supported without knowing which it is. Products are rounded to the model dtype before they
are summed, as in :func:`llmrt.ops.torch_ops.rotary_embedding` (and Hugging Face), so float32
and bf16 results match the reference. Channels past ``rot_dim`` are left untouched.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rotate_heads(
    ptr,
    row_offset,
    num_heads,
    cos,
    sin,
    pairs,
    pairs_ok,
    HEAD_SIZE: tl.constexpr,
    HALF: tl.constexpr,
    HEADS_P: tl.constexpr,
    NEOX: tl.constexpr,
):
    """Rotate the first ``2 * HALF`` channels of every head of one token's row, in place."""
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
    stride_q,
    stride_k,
    stride_cache,
    num_q_heads,
    num_k_heads,
    HEAD_SIZE: tl.constexpr,
    HALF: tl.constexpr,
    HALF_P: tl.constexpr,
    Q_HEADS_P: tl.constexpr,
    K_HEADS_P: tl.constexpr,
    NEOX: tl.constexpr,
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
    _rotate_heads(
        q_ptr,
        token * stride_q,
        num_q_heads,
        cos,
        sin,
        pairs,
        pairs_ok,
        HEAD_SIZE,
        HALF,
        Q_HEADS_P,
        NEOX,
    )
    _rotate_heads(
        k_ptr,
        token * stride_k,
        num_k_heads,
        cos,
        sin,
        pairs,
        pairs_ok,
        HEAD_SIZE,
        HALF,
        K_HEADS_P,
        NEOX,
    )


def _rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as ``[T, width]`` with unit stride inside a row (a copy only if it had none)."""
    x2 = x.view(x.shape[0], -1) if x.dim() > 2 and x.is_contiguous() else x
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    cos_sin_cache: torch.Tensor,
    head_size: int,
    is_neox_style: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """See ``rotary_embedding`` in :class:`llmrt.ops.Ops`; rotates in place, returns the inputs."""
    q, k = _rows(query), _rows(key)
    tokens = positions.numel()
    half = cos_sin_cache.shape[-1] // 2
    if tokens:
        q_heads, k_heads = q.shape[-1] // head_size, k.shape[-1] // head_size
        _rotary_kernel[(tokens,)](
            positions,
            q,
            k,
            cos_sin_cache,
            q.stride(0),
            k.stride(0),
            cos_sin_cache.stride(0),
            q_heads,
            k_heads,
            HEAD_SIZE=head_size,
            HALF=half,
            HALF_P=triton.next_power_of_2(half),
            Q_HEADS_P=triton.next_power_of_2(q_heads),
            K_HEADS_P=triton.next_power_of_2(k_heads),
            NEOX=is_neox_style,
            num_warps=4,
        )
    return q.view(query.shape), k.view(key.shape)
