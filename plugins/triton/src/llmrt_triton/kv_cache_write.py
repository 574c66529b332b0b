"""Writing one step's keys and values into the paged KV cache, one program per token.

The cache is core's default layout ``[2, num_blocks, block_size, kv_heads, head_size]``; token
``t`` goes to slot ``slot_mapping[t]`` (``block * block_size + offset``). A negative slot (the
padding rows of a CUDA-graph batch) writes nothing.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _write_kv_kernel(
    k_ptr, v_ptr, cache_ptr, slots_ptr, stride_k, stride_v, value_offset, width, BLOCK: tl.constexpr
):
    """Copy the ``width = kv_heads * head_size`` channels of token ``pid`` to its slot."""
    token = tl.program_id(0).to(tl.int64)
    slot = tl.load(slots_ptr + token).to(tl.int64)
    if slot >= 0:
        for start in range(0, width, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < width
            k = tl.load(k_ptr + token * stride_k + cols, mask=mask)
            v = tl.load(v_ptr + token * stride_v + cols, mask=mask)
            dst = cache_ptr + slot * width + cols
            tl.store(dst, k.to(cache_ptr.dtype.element_ty), mask=mask)
            tl.store(dst + value_offset, v.to(cache_ptr.dtype.element_ty), mask=mask)


def write_kv_cache(
    key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor, slot_mapping: torch.Tensor
) -> None:
    """Store ``key``/``value`` (``[T, kv_heads, head_size]``, rows may be strided) in the cache."""
    if not kv_cache.is_contiguous():
        raise ValueError("the KV cache must be contiguous")
    tokens = slot_mapping.numel()
    width = key.shape[1] * key.shape[2]
    if key.stride(2) != 1 or key.stride(1) != key.shape[2]:
        key = key.contiguous()
    if value.stride(2) != 1 or value.stride(1) != value.shape[2]:
        value = value.contiguous()
    if tokens:
        block = min(triton.next_power_of_2(width), 2048)
        _write_kv_kernel[(tokens,)](
            key,
            value,
            kv_cache,
            slot_mapping,
            key.stride(0),
            value.stride(0),
            kv_cache[0].numel(),
            width,
            BLOCK=block,
            num_warps=4,
        )
