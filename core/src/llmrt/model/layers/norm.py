"""RMSNorm: the normalization layer of every supported family, computed by the ``rms_norm`` ops."""

from __future__ import annotations

import torch
from torch import nn

from llmrt.model.context import LayerContext
from llmrt.model.loader import set_weight_attrs


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dimension, with an optional fused residual add.

    ``weight_offset`` and ``cast_before_weight`` select the family's numerics (see
    :class:`llmrt.ops.Ops`): Llama-style ``(0.0, True)``, Gemma-style ``(1.0, False)``.
    """

    def __init__(
        self,
        hidden_size: int,
        eps: float,
        ctx: LayerContext,
        weight_offset: float = 0.0,
        cast_before_weight: bool = True,
    ) -> None:
        super().__init__()
        self.ops = ctx.ops
        self.eps = eps
        self.weight_offset = weight_offset
        self.cast_before_weight = cast_before_weight
        self.weight = nn.Parameter(
            torch.empty(hidden_size, dtype=ctx.dtype, device=ctx.device), requires_grad=False
        )
        set_weight_attrs(self.weight, {"output_dim": None})

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``norm(x)``; with ``residual``, ``(norm(x + residual), x + residual)``."""
        if residual is None:
            return self.ops.rms_norm(
                x, self.weight, self.eps, self.weight_offset, self.cast_before_weight
            )
        return self.ops.fused_add_rms_norm(
            x, residual, self.weight, self.eps, self.weight_offset, self.cast_before_weight
        )

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, offset={self.weight_offset}"
