"""Matrix products on oneDNN with prepacked weights (PyTorch's ``mkldnn`` linear ops).

``F.linear`` runs float32 products on MKL. On the CPUs measured here (AMD EPYC), oneDNN on a
weight reordered once into its blocked layout is 1.3-1.7x faster for 2-128 rows and 2-4x for
the vocabulary-sized output projection; bfloat16 gains 5-30%.

The plugin registers :class:`PackedLinearMethod` as the ``cpu`` backend's method for unquantized
products (``llmrt_register_linear_methods``): every unquantized linear layer and the language-model
head run through it, and it packs its layer's weight once the checkpoint is loaded. Quantized
layers keep their own method. ``$LLMRT_CPU_ONEDNN_LINEAR=0`` turns this off.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

from llmrt.model.layers.linear import UnquantizedLinearMethod
from llmrt_cpu import cpu_info

ONEDNN_ENV = "LLMRT_CPU_ONEDNN_LINEAR"
PACK_ROWS_HINT = 32
"""Batch size oneDNN tunes the packed layout for (any batch works)."""
FLOAT32_MIN_ROWS_AVX512 = 6
"""Float32 inputs of fewer rows run padded to this many on AVX-512 CPUs. There oneDNN multiplies
1-5 rows more slowly than 6 (likely its register block) when the weights come from memory: the
benchmark model's products of one decode step took 5.1 ms at 1 row, 5.3 at 2 and 4.3 at 6, and
rose steadily beyond (`plugins/cpu/benchmarks/small_batch_products.py`; measured on one AMD Zen 4
machine, applied to every AVX-512 CPU). bfloat16 gains nothing and other instruction sets are
unmeasured: no padding there."""
_NO_SCALARS = ()  # the linear op's post-op scalars: none


def onednn_available() -> bool:
    """PyTorch has oneDNN and its packed linear ops, and they are not turned off."""
    return (os.environ.get(ONEDNN_ENV, "1") != "0" and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


class PackedWeight:
    """A weight ``[out, in]`` with its oneDNN-packed copy; ``__call__`` is ``F.linear``."""

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight
        self.dtype = weight.dtype
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), PACK_ROWS_HINT)
        # The resolved overload: calling the op's packet picks an overload on every call.
        self._linear = torch.ops.mkldnn._linear_pointwise.default
        self.min_rows = FLOAT32_MIN_ROWS_AVX512 if self.dtype == torch.float32 and _has_avx512() else 1
        self._padded: torch.Tensor | None = None  # [min_rows, in]: a short input, then leftovers

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ weight^T + bias``: oneDNN for 2-D inputs of the weight's dtype (fewer than
        ``min_rows`` rows run padded; the padding rows' results are dropped)."""
        if x.dim() == 2 and x.dtype == self.dtype:
            rows = x.shape[0]
            if rows >= self.min_rows or rows == 0 or x.requires_grad:
                return self._linear(x, self.packed, bias, "none", _NO_SCALARS, "")
            if self._padded is None:
                with torch.inference_mode(False):  # a plain tensor: writable in and out of inference mode
                    self._padded = torch.zeros(self.min_rows, x.shape[1], dtype=x.dtype)
            self._padded[:rows].copy_(x)
            return self._linear(self._padded, self.packed, bias, "none", _NO_SCALARS, "")[:rows]
        return F.linear(x, self.weight, bias)


@functools.cache
def _has_avx512() -> bool:
    return "avx512f" in cpu_info.instruction_sets()


class PackedLinearMethod(UnquantizedLinearMethod):
    """Unquantized weights, multiplied through :class:`PackedWeight` once loaded."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self.kernel: PackedWeight | None = None

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        """Pack the loaded weight (a tied LM head packs the embedding's)."""
        self.kernel = PackedWeight(layer.weight)

    def apply(self, layer: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``x @ W^T + b``."""
        if self.kernel is None:
            return F.linear(x, layer.weight, bias)
        return self.kernel(x, bias)
