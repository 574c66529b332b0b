"""Matrix products on weights packed once: PyTorch's brgemm micro-kernel or oneDNN's linear ops.

``F.linear`` runs float32 products on MKL. On the CPUs measured here (AMD EPYC) that is slower
than oneDNN's kernels on a weight reordered once into their blocked layout: 1.3-1.7x for 2-128
rows and 2-4x for the vocabulary-sized output projection; bfloat16 gains 5-30%. So:

- float32 on x86-64 CPUs with AVX2 (where the native kernels are built): the weight is packed into
  column panels and multiplied by ``llmrt_cpu._C.panel_linear``, which drives PyTorch's
  ``at::native::cpublas::brgemm``, i.e. oneDNN's brgemm micro-kernel, the one oneDNN's inner
  product runs (bitwise the same results here), without the ~20 us of host time a call that the
  primitive API costs (a 32-row product on a 192x64 weight takes 20 us through it). On the
  side-by-side model that is 5% of a decode step's products, 18% of its smallest one; batch-1
  latency fell 6% and throughput rose 4% (``PANEL_ENV`` turns the panels off);
- everything else (bfloat16, or without the native kernels): ``torch.ops.mkldnn._linear_pointwise``
  on the weight reordered once by ``_reorder_linear_weight``.

The plugin registers :class:`PackedLinearMethod` as the ``cpu`` backend's method for unquantized
products (``llmrt_register_linear_methods``): every unquantized linear layer and the language-model
head run through it, and it packs its layer's weight once the checkpoint is loaded. Quantized
layers keep their own method. ``$LLMRT_CPU_ONEDNN_LINEAR=0`` turns all of this off.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

from llmrt.model.layers.linear import UnquantizedLinearMethod
from llmrt_cpu import cpu_info, native

ONEDNN_ENV = "LLMRT_CPU_ONEDNN_LINEAR"
PANEL_ENV = "LLMRT_CPU_PANEL_LINEAR"
"""Set to ``0`` to run float32 products on oneDNN's linear op instead of the brgemm panels."""
PACK_ROWS_HINT = 32
"""Batch size oneDNN tunes the packed layout for (any batch works)."""
FLOAT32_MIN_ROWS_AVX512 = 6
"""On oneDNN's linear op (float32 without the panels), inputs of fewer rows run padded to this many
on AVX-512 CPUs. There oneDNN multiplies
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


def panels_available() -> bool:
    """Float32 products can run on the brgemm panels: native kernels built, an x86-64 CPU with
    AVX2 (where PyTorch's brgemm is oneDNN's micro-kernel), and not turned off by ``PANEL_ENV``."""
    return (os.environ.get(PANEL_ENV, "1") != "0" and hasattr(native.kernels(), "panel_linear")
            and "avx2" in cpu_info.instruction_sets())


class PackedWeight:
    """A weight ``[out, in]`` with its packed copy (brgemm panels or oneDNN's layout, see the
    module docstring); ``__call__`` is ``F.linear``."""

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight
        self.dtype = weight.dtype
        self.out_features = weight.shape[0]
        self.panels: torch.Tensor | None = None
        self.packed: torch.Tensor | None = None
        if self.dtype == torch.float32 and panels_available():
            self.panels = native.kernels().pack_panels(weight.detach())
            self._panel_linear = native.kernels().panel_linear
        else:
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), PACK_ROWS_HINT)
        # The resolved overload: calling the op's packet picks an overload on every call.
        self._linear = torch.ops.mkldnn._linear_pointwise.default
        self.min_rows = FLOAT32_MIN_ROWS_AVX512 if self.dtype == torch.float32 and _has_avx512() else 1
        self._padded: torch.Tensor | None = None  # [min_rows, in]: a short input, then leftovers

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ weight^T + bias`` for 2-D inputs of the weight's dtype: on the panels, or on
        oneDNN (where fewer than ``min_rows`` rows run padded and the padding rows' results are
        dropped); ``F.linear`` otherwise."""
        if self.panels is not None:
            if (x.dim() == 2 and x.dtype == self.dtype and x.stride(-1) == 1 and not x.requires_grad
                    and (bias is None or (bias.dtype == self.dtype and bias.is_contiguous()))):
                return self._panel_linear(x, self.panels, self.out_features, bias)
            return F.linear(x, self.weight, bias)
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
