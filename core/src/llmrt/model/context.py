"""LayerContext: what every model layer is built with (ops, attention, quantization, placement)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from llmrt.attention.interface import AttentionConfig, AttentionImpl
from llmrt.ops.interface import Ops

if TYPE_CHECKING:
    from llmrt.distributed.communicator import DeviceCommunicator
    from llmrt.model.layers.linear import QuantMethod


@dataclass
class LayerContext:
    """Everything an architecture factory needs besides the Hugging Face config.

    - ``ops``: the resolved op table (norms, rotary, activations) of the selected backend.
    - ``attention_factory(config) -> AttentionImpl``: builds each attention layer's impl.
    - ``quant_method_factory(prefix) -> QuantMethod``: the quantization method of the linear
      layer whose checkpoint name prefix is ``prefix`` (e.g.
      ``"model.layers.0.self_attn.qkv_proj"``), so a method may leave some layers unquantized;
      ``None`` means every layer is unquantized.
    - ``linear_method_factory(prefix) -> QuantMethod``: the backend's method for unquantized
      layers and the LM head (``llmrt_register_linear_methods``); ``None``: core's ``F.linear``.
    - ``dtype``, ``device``: of parameters, buffers and activations.
    - ``tp_rank``, ``tp_size``: this process's tensor-parallel rank and the group's size.
    - ``communicator``: collectives across the tensor-parallel group (an
      :class:`llmrt.distributed.DeviceCommunicator`); required only when ``tp_size > 1``.
    """

    ops: Ops
    attention_factory: Callable[[AttentionConfig], AttentionImpl]
    quant_method_factory: Callable[[str], QuantMethod] | None
    dtype: torch.dtype
    device: torch.device
    tp_rank: int = 0
    tp_size: int = 1
    communicator: DeviceCommunicator | None = None
    linear_method_factory: Callable[[str], QuantMethod] | None = None

    def quant_method(self, prefix: str) -> QuantMethod:
        """The quantization method of the linear layer named ``prefix`` (default: unquantized)."""
        if self.quant_method_factory is None:
            return self.unquantized_method(prefix)
        return self.quant_method_factory(prefix)

    def unquantized_method(self, prefix: str) -> QuantMethod:
        """The backend's method for the unquantized layer named ``prefix``, else ``F.linear``."""
        if self.linear_method_factory is not None:
            return self.linear_method_factory(prefix)
        from llmrt.model.layers.linear import UnquantizedLinearMethod

        return UnquantizedLinearMethod()

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the tensor-parallel group (identity when ``tp_size == 1``)."""
        if self.tp_size == 1:
            return tensor
        return self._require_communicator().all_reduce(tensor)

    def all_gather(self, tensor: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Concatenate ``tensor`` from every rank along ``dim`` (identity when ``tp_size == 1``)."""
        if self.tp_size == 1:
            return tensor
        return self._require_communicator().all_gather(tensor, dim)

    def _require_communicator(self) -> DeviceCommunicator:
        if self.communicator is None:
            raise RuntimeError(
                f"tp_size={self.tp_size} needs a device communicator in the LayerContext"
            )
        return self.communicator
