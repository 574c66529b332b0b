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
        if _one_row(x, layer.weight):
            return gemv(x, layer.weight, bias)
        return F.linear(x, layer.weight, bias)

    def apply_float32(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The LM head's logits written in float32 by the product itself: one row through the GEMV
        kernel, more through cuBLAS's 16-bit product with a float32 output (``torch.mm``'s
        ``out_dtype``, CUDA only). On an H100, 256 x 151,936 logits: 175 us instead of 269 for
        the 16-bit product and a conversion."""
        weight = layer.weight
        if _one_row(x, weight):
            return gemv(x, weight, out_dtype=torch.float32)
        if x.is_cuda and x.dim() == 2 and x.dtype in GEMV_DTYPES and weight.dtype == x.dtype:
            return torch.mm(x, weight.t(), out_dtype=torch.float32)
        return super().apply_float32(layer, x)


def _one_row(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (x.dim() == 2 and x.shape[0] == 1 and x.dtype in GEMV_DTYPES
            and weight.dtype == x.dtype and weight.stride(-1) == 1)
