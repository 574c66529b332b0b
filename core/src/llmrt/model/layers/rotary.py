"""Rotary position embedding: the cos/sin table for a rope type, applied by the rotary op.

Rope parameters arrive as a Hugging Face-style dict (``rope_type``, ``rope_theta`` and the
type's own keys; see :func:`llmrt.model.hf_config.rope_parameters`). Supported types:

- ``"default"``: ``f_i = theta ** (-2i / rot_dim)``.
- ``"linear"``: default frequencies divided by ``factor`` (position interpolation).
- ``"llama3"``: Llama 3.1's smooth per-wavelength scaling (``factor``, ``low_freq_factor``,
  ``high_freq_factor``, ``original_max_position_embeddings``).
- ``"yarn"``: YaRN frequency blend plus its attention factor on cos/sin.

``"dynamic"`` (dynamic NTK) is refused: Hugging Face recomputes its frequencies from the
longest position in the *batch*, which a batched server cannot reproduce per sequence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from llmrt.model.context import LayerContext

InvFreq = tuple[torch.Tensor, float]


class RotaryEmbedding(nn.Module):
    """Holds ``cos_sin_cache [max_position, rot_dim]``; applies it via ``ops.rotary_embedding``."""

    def __init__(
        self,
        head_size: int,
        max_position: int,
        parameters: Mapping[str, Any],
        ctx: LayerContext,
        is_neox_style: bool = True,
    ) -> None:
        super().__init__()
        self.ops = ctx.ops
        self.head_size = head_size
        self.rotary_dim = int(head_size * parameters.get("partial_rotary_factor", 1.0))
        self.is_neox_style = is_neox_style
        self.rope_type = parameters.get("rope_type", "default")
        inv_freq, attention_factor = inverse_frequencies(self.rotary_dim, parameters, ctx.device)
        cache = _cos_sin_table(inv_freq, max_position, attention_factor)
        self.register_buffer("cos_sin_cache", cache.to(ctx.dtype), persistent=False)

    def forward(
        self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotated ``(query [T, Hq*D], key [T, Hk*D])`` for the tokens at ``positions [T]``."""
        return self.ops.rotary_embedding(
            positions, query, key, self.cos_sin_cache, self.head_size, self.is_neox_style
        )

    def with_qk_norm(
        self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor, q_norm: Any, k_norm: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-head ``q_norm`` / ``k_norm`` (:class:`RMSNorm` layers), then the rotation, in one op."""
        return self.ops.qk_norm_rotary_embedding(
            positions, query, key, q_norm.weight, k_norm.weight, q_norm.eps, q_norm.weight_offset,
            q_norm.cast_before_weight, self.cos_sin_cache, self.head_size, self.is_neox_style,
        )

    def extra_repr(self) -> str:
        max_pos = self.cos_sin_cache.shape[0]
        return f"type={self.rope_type}, rot_dim={self.rotary_dim}, max_pos={max_pos}"


def inverse_frequencies(dim: int, parameters: Mapping[str, Any], device: torch.device) -> InvFreq:
    """``(inv_freq [dim/2] float32, attention_factor)`` for the rope type in ``parameters``."""
    rope_type = parameters.get("rope_type", "default")
    compute = _ROPE_TYPES.get(rope_type)
    if compute is None:
        raise ValueError(
            f"unsupported rope type {rope_type!r}; supported: {sorted(_ROPE_TYPES)}"
            + (
                " (dynamic NTK depends on the batch's longest sequence)"
                if rope_type == "dynamic"
                else ""
            )
        )
    return compute(dim, parameters, device)


def _base_frequencies(dim: int, theta: float, device: torch.device) -> torch.Tensor:
    """``theta ** (-2i / dim)`` in float32, computed as Hugging Face does."""
    exponents = torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim
    return 1.0 / (theta**exponents)


def _default(dim: int, p: Mapping[str, Any], device: torch.device) -> InvFreq:
    return _base_frequencies(dim, p["rope_theta"], device), 1.0


def _linear(dim: int, p: Mapping[str, Any], device: torch.device) -> InvFreq:
    return _base_frequencies(dim, p["rope_theta"], device) / p["factor"], 1.0


def _llama3(dim: int, p: Mapping[str, Any], device: torch.device) -> InvFreq:
    """Llama 3.1: long wavelengths scaled by ``1/factor``, short kept, a smooth blend between."""
    inv_freq = _base_frequencies(dim, p["rope_theta"], device)
    factor, low, high = p["factor"], p["low_freq_factor"], p["high_freq_factor"]
    old_len = p["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return torch.where(is_medium, blended, scaled), 1.0


def _yarn(dim: int, p: Mapping[str, Any], device: torch.device) -> InvFreq:
    """YaRN: interpolate low frequencies, keep high ones, ramp between; scale cos/sin."""
    theta, old_len = p["rope_theta"], p["original_max_position_embeddings"]
    factor = p.get("factor") or p["max_position_embeddings"] / old_len
    attention_factor = p.get("attention_factor") or _yarn_attention_factor(factor, p)
    fast, slow = p.get("beta_fast") or 32, p.get("beta_slow") or 1
    low, high = _yarn_correction_range(fast, slow, dim, theta, old_len, p.get("truncate", True))
    wavelengths = theta ** (torch.arange(0, dim, 2, device=device).float() / dim)
    extrapolation, interpolation = 1.0 / wavelengths, 1.0 / (factor * wavelengths)
    ramp = torch.arange(dim // 2, dtype=torch.float32, device=device)
    ramp = ((ramp - low) / (high - low if high != low else 0.001)).clamp(0, 1)
    keep = 1 - ramp  # share of the unscaled (extrapolated) frequency
    return interpolation * (1 - keep) + extrapolation * keep, attention_factor


def _yarn_attention_factor(factor: float, p: Mapping[str, Any]) -> float:
    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if p.get("mscale") and p.get("mscale_all_dim"):
        return mscale(factor, p["mscale"]) / mscale(factor, p["mscale_all_dim"])
    return mscale(factor)


def _yarn_correction_range(
    fast: float, slow: float, dim: int, theta: float, old_len: int, truncate: bool
) -> tuple[float, float]:
    def dim_for(rotations: float) -> float:
        return dim * math.log(old_len / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = dim_for(fast), dim_for(slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, dim - 1)


_ROPE_TYPES: dict[str, Callable[[int, Mapping[str, Any], torch.device], InvFreq]] = {
    "default": _default,
    "linear": _linear,
    "llama3": _llama3,
    "yarn": _yarn,
}


def _cos_sin_table(
    inv_freq: torch.Tensor, max_position: int, attention_factor: float
) -> torch.Tensor:
    """``[max_position, rot_dim]``: ``cos(p f) * s`` then ``sin(p f) * s``, in float32."""
    positions = torch.arange(max_position, dtype=torch.float32, device=inv_freq.device)
    freqs = positions[:, None] * inv_freq[None, :]
    return torch.cat((freqs.cos() * attention_factor, freqs.sin() * attention_factor), dim=-1)
