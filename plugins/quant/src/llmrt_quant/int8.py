"""INT8 weight-only quantization: per-output-channel symmetric scales, activations unchanged.

Applied online to an unquantized checkpoint (``--quantization int8``): each linear weight is
loaded as usual, then replaced by ``int8`` values and one scale per output row. Weights take a
quarter of their float32 size (half of bfloat16). The matrix product uses PyTorch's fused
``_weight_int8pack_mm`` kernel where it exists for the activation dtype, else dequantizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmrt.model.layers.linear import UnquantizedLinearMethod

INT8_MAX = 127.0
FUSED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight [out, in]`` -> (``int8 [out, in]``, ``float32 scale [out]``) with w ~ q * scale."""
    w = weight.float()
    scale = (w.abs().amax(dim=1) / INT8_MAX).clamp(min=1e-12)
    q = torch.round(w / scale.unsqueeze(1)).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


class Int8WeightOnlyMethod(UnquantizedLinearMethod):
    """Loads like an unquantized layer, then stores int8 weights and per-row scales."""

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        """Quantize ``layer.weight`` in place of the float tensor."""
        q, scale = quantize_per_channel(layer.weight.data)
        layer.weight = nn.Parameter(q, requires_grad=False)
        layer.weight_scale = nn.Parameter(scale.to(layer.ctx.dtype), requires_grad=False)
        self._fused = _fused_kernel_works(q.device, layer.ctx.dtype)

    def apply(self, layer: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``x @ (q * scale)^T + bias``."""
        shape = x.shape
        x2d = x.reshape(-1, shape[-1])
        if getattr(self, "_fused", False):
            out = torch._weight_int8pack_mm(x2d.contiguous(), layer.weight, layer.weight_scale)
        else:
            out = F.linear(x2d, layer.weight.to(x.dtype)) * layer.weight_scale.to(x.dtype)
        if bias is not None:
            out = out + bias
        return out.reshape(*shape[:-1], out.shape[-1])


def _fused_kernel_works(device: torch.device, dtype: torch.dtype) -> bool:
    """Probe once whether PyTorch has the fused int8 kernel for this device and dtype."""
    if dtype not in FUSED_DTYPES or not hasattr(torch, "_weight_int8pack_mm"):
        return False
    try:
        a = torch.ones(1, 8, dtype=dtype, device=device)
        w = torch.ones(8, 8, dtype=torch.int8, device=device)
        torch._weight_int8pack_mm(a, w, torch.ones(8, dtype=dtype, device=device))
    except (RuntimeError, NotImplementedError):
        return False
    return True
