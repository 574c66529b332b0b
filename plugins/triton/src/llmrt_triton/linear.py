"""Triton backends' unquantized linear method: single rows through :func:`~llmrt_triton.gemv.gemv`.

Registered per backend through ``llmrt_register_linear_methods`` (see
:func:`llmrt_triton.registration.register_triton_linear_method`): every unquantized layer and the
LM head keep plain ``[out, in]`` weights, and a product of one 16-bit row (batch-1 decoding) runs
the bandwidth-bound GEMV kernel; everything else runs ``F.linear`` as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from llmrt.model.layers.linear import UnquantizedLinearMethod
from torch import nn

from llmrt_triton.gemv import gemv

GEMV_DTYPES = (torch.bfloat16, torch.float16)


class GemvLinearMethod(UnquantizedLinearMethod):
    """Plain weights; ``[1, in]`` bf16/fp16 inputs through the GEMV kernel, others ``F.linear``."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__()

    def apply(self, layer: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``x @ W^T + b``."""
        weight = layer.weight
        if (x.dim() == 2 and x.shape[0] == 1 and x.dtype in GEMV_DTYPES
                and weight.dtype == x.dtype and weight.stride(-1) == 1):
            return gemv(x, weight, bias)
        return F.linear(x, weight, bias)
