"""Gated activations of the MLP (``act(gate) * up``), computed by ops."""

from __future__ import annotations

import torch
from torch import nn

from llmrt.model.context import LayerContext

_GATED_OPS = {
    "silu": "silu_and_mul",
    "swish": "silu_and_mul",
    "gelu_pytorch_tanh": "gelu_tanh_and_mul",
    "gelu_tanh": "gelu_tanh_and_mul",
}
"""Hugging Face ``hidden_act`` names -> the op computing ``act(gate) * up``."""


class GatedActivation(nn.Module):
    """``x [..., 2d] -> act(x[..., :d]) * x[..., d:]`` for a Hugging Face activation name."""

    def __init__(self, hidden_act: str, ctx: LayerContext) -> None:
        super().__init__()
        op_name = _GATED_OPS.get(hidden_act)
        if op_name is None:
            raise ValueError(
                f"unsupported MLP activation {hidden_act!r}; supported: {sorted(_GATED_OPS)}"
            )
        self.hidden_act = hidden_act
        self.op = getattr(ctx.ops, op_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the gated activation."""
        return self.op(x)

    def extra_repr(self) -> str:
        return self.hidden_act
