"""PyTorch reference implementations of every op in :data:`llmrt.ops.OP_NAMES`.

Written for clarity and for matching Hugging Face transformers' numerics, not for speed;
they run on any device torch supports. Core registers them for every backend through
:func:`register_core_ops`; a backend's own registration wins over them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from llmrt.ops.interface import Ops, compose_qk_norm_rotary


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    weight_offset: float = 0.0,
    cast_before_weight: bool = True,
) -> torch.Tensor:
    """RMS norm in float32; see :class:`llmrt.ops.Ops` for the two cast orders."""
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    if cast_before_weight:
        scale = weight + weight_offset if weight_offset else weight
        return scale * normed.to(x.dtype)
    return (normed * (weight.float() + weight_offset)).to(x.dtype)


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    weight_offset: float = 0.0,
    cast_before_weight: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rms_norm(x + residual), x + residual)``; the sum is taken in ``x.dtype``."""
    new_residual = x + residual
    return rms_norm(new_residual, weight, eps, weight_offset, cast_before_weight), new_residual


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    cos_sin_cache: torch.Tensor,
    head_size: int,
    is_neox_style: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate the first ``rot_dim`` channels of each head of ``query`` and ``key``."""
    cos, sin = cos_sin_cache.index_select(0, positions).to(query.dtype).chunk(2, dim=-1)
    rotate = _rotate_neox if is_neox_style else _rotate_gptj
    return rotate(query, cos, sin, head_size), rotate(key, cos, sin, head_size)


def _rotate_neox(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, head_size: int
) -> torch.Tensor:
    """Neox style: channel ``i`` pairs with ``i + rot_dim/2`` (Hugging Face's ``rotate_half``)."""
    heads = x.view(x.shape[0], -1, head_size)
    half = cos.shape[-1]
    x1, x2, rest = heads[..., :half], heads[..., half : 2 * half], heads[..., 2 * half :]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    # Same products and sums as HF's ``q * cos + rotate_half(q) * sin``, so float32 matches bitwise.
    out = torch.cat((x1 * cos + (-x2) * sin, x2 * cos + x1 * sin, rest), dim=-1)
    return out.view_as(x)


def _rotate_gptj(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, head_size: int
) -> torch.Tensor:
    """GPT-J style: channel ``2i`` pairs with ``2i + 1``."""
    heads = x.view(x.shape[0], -1, head_size)
    rot_dim = 2 * cos.shape[-1]
    pairs, rest = heads[..., :rot_dim], heads[..., rot_dim:]
    even, odd = pairs[..., 0::2], pairs[..., 1::2]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    rotated = torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1).flatten(-2)
    return torch.cat((rotated, rest), dim=-1).view_as(x)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` where ``x = [gate, up]`` on the last dimension."""
    gate, up = x.chunk(2, dim=-1)
    return F.silu(gate) * up


def gelu_tanh_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``gelu_tanh(gate) * up`` where ``x = [gate, up]`` on the last dimension."""
    gate, up = x.chunk(2, dim=-1)
    return F.gelu(gate, approximate="tanh") * up


def sample_categorical(logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """One draw per row from ``softmax(logits / t)`` (argmax where ``t == 0``): an exponential race.

    ``argmax(p / E)`` with ``E ~ Exp(1)`` i.i.d. picks token ``i`` with probability ``p_i``.
    """
    greedy = temperature == 0
    probs = torch.softmax(logits / torch.where(greedy, 1.0, temperature).unsqueeze(1), dim=-1)
    noise = torch.empty_like(probs).exponential_()
    return torch.where(greedy, logits.argmax(dim=-1), (probs / noise).argmax(dim=-1))


REFERENCE_IMPLS: dict[str, Callable[..., Any]] = {
    "rms_norm": rms_norm,
    "fused_add_rms_norm": fused_add_rms_norm,
    "rotary_embedding": rotary_embedding,
    "silu_and_mul": silu_and_mul,
    "gelu_tanh_and_mul": gelu_tanh_and_mul,
    "qk_norm_rotary_embedding": compose_qk_norm_rotary(rms_norm, rotary_embedding),
    "sample_categorical": sample_categorical,
}
"""The reference implementation of each op, by name."""


def reference_ops() -> Ops:
    """An :class:`Ops` table of the PyTorch reference implementations (tests, fallbacks)."""
    return Ops.from_registry(REFERENCE_IMPLS)


def register_core_ops(register: Callable[..., None]) -> None:
    """Register every reference op for all backends (``backend=None``).

    Called from core's built-in plugin in ``llmrt_register_ops``.
    """
    for name, impl in REFERENCE_IMPLS.items():
        register(name, impl, backend=None)
