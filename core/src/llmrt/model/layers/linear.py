"""Linear layers split for tensor parallelism, each delegating its matmul to a QuantMethod.

Column-parallel layers split their *output* features across ranks (each rank holds rows
``[rank * n/tp, (rank+1) * n/tp)`` of the weight); row-parallel layers split their *input*
features and sum the partial results over the group. With ``tp_size == 1`` (today) every
rank holds everything and no collective runs, but the slicing is real and tested.

Parameters carry loading metadata as attributes (see :func:`set_weight_attrs`):
``output_dim`` / ``input_dim`` name the tensor dimension that is split across ranks, and
``weight_loader(param, loaded_weight, shard_id=None)`` copies this rank's slice of a
checkpoint tensor into the parameter. A quantization method that creates packed
parameters sets these attributes for them (and may give them its own ``weight_loader``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmrt.model.context import LayerContext
from llmrt.model.loader import copy_weight, set_weight_attrs


class QuantMethod(ABC):
    """How a linear layer stores its weights and computes ``x @ W^T + b``.

    Registered by plugins through ``llmrt_register_quantization_methods``; one instance per
    linear layer (from :meth:`LayerContext.quant_method`).
    """

    @abstractmethod
    def create_weights(
        self,
        layer: nn.Module,
        in_features: int,
        out_features_per_partition: int,
        dtype: torch.dtype,
    ) -> None:
        """Register the layer's weight parameters (on ``layer.device``) with loading attributes.

        :param layer: the linear layer; ``layer.output_sizes`` lists the per-rank output size of
            each merged shard (q/k/v or gate/up), ``layer.device`` is the target device.
        :param in_features: input features held by this rank.
        :param out_features_per_partition: output features held by this rank (all shards).
        :param dtype: the model's activation dtype.
        """

    @abstractmethod
    def apply(self, layer: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``x [..., in] -> [..., out]`` with the layer's weights, adding ``bias`` when given."""

    def apply_float32(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``x @ W^T`` in float32 (the LM head's logits, which sampling reads in float32).

        Default: :meth:`apply`, then a conversion. A method whose product can write float32
        directly overrides it and saves a pass over the logits.
        """
        return self.apply(layer, x, None).float()

    def process_weights_after_loading(self, layer: nn.Module) -> None:  # noqa: B027 - optional hook
        """Repack or convert loaded weights (called once, after every tensor is loaded)."""


class UnquantizedLinearMethod(QuantMethod):
    """Plain weights ``[out, in]`` in the model dtype and ``F.linear``."""

    def create_weights(
        self,
        layer: nn.Module,
        in_features: int,
        out_features_per_partition: int,
        dtype: torch.dtype,
    ) -> None:
        """One parameter ``weight [out_per_partition, in]``; split on dim 0 (column) or 1 (row)."""
        weight = nn.Parameter(
            torch.empty(out_features_per_partition, in_features, dtype=dtype, device=layer.device),
            requires_grad=False,
        )
        set_weight_attrs(
            weight, {"output_dim": 0, "input_dim": 1, "weight_loader": layer.weight_loader}
        )
        layer.register_parameter("weight", weight)

    def apply(self, layer: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``F.linear(x, layer.weight, bias)``."""
        return F.linear(x, layer.weight, bias)


class LinearBase(nn.Module):
    """Shared construction: the quant method creates the weights; the bias is plain."""

    def __init__(
        self,
        in_features: int,
        output_sizes: list[int],
        bias: bool,
        ctx: LayerContext,
        prefix: str,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.output_sizes = output_sizes
        self.out_features = sum(output_sizes)
        self.ctx = ctx
        self.tp_rank, self.tp_size = ctx.tp_rank, ctx.tp_size
        self.device = ctx.device
        self.prefix = prefix
        self.quant_method = ctx.quant_method(prefix)
        self.quant_method.create_weights(self, in_features, self.out_features, ctx.dtype)
        self.bias: nn.Parameter | None = None
        if bias:
            self.bias = nn.Parameter(
                torch.empty(self.out_features, dtype=ctx.dtype, device=ctx.device),
                requires_grad=False,
            )
            set_weight_attrs(self.bias, {"output_dim": 0, "weight_loader": self.weight_loader})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., in] -> [..., out]`` through the quant method."""
        return self.quant_method.apply(self, x, self.bias)

    def weight_loader(
        self, param: nn.Parameter, loaded_weight: torch.Tensor, shard_id: Any = None
    ) -> None:
        """Copy this rank's slice of ``loaded_weight`` into ``param`` (overridden per layer)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, tp={self.tp_rank}/{self.tp_size}"


def _divide(total: int, parts: int, what: str) -> int:
    if total % parts:
        raise ValueError(f"{what} ({total}) is not divisible by the tensor-parallel size ({parts})")
    return total // parts


def _rank_slice(tensor: torch.Tensor, dim: int | None, rank: int, size: int) -> torch.Tensor:
    """Part ``rank`` (``size`` rows) of ``tensor`` along ``dim``; all of it if ``dim`` is None."""
    if dim is None:
        return tensor
    return tensor.narrow(dim, rank * size, size)


class ColumnParallelLinear(LinearBase):
    """``y = x W^T + b`` with the output features split across ranks (output stays split)."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool, ctx: LayerContext, prefix: str = ""
    ) -> None:
        per_rank = _divide(out_features, ctx.tp_size, f"{prefix or 'linear'} output features")
        super().__init__(in_features, [per_rank], bias, ctx, prefix)

    def weight_loader(
        self, param: nn.Parameter, loaded_weight: torch.Tensor, shard_id: Any = None
    ) -> None:
        """Take this rank's rows along ``param.output_dim``."""
        dim = getattr(param, "output_dim", None)
        size = param.shape[dim] if dim is not None else 0
        copy_weight(param, _rank_slice(loaded_weight, dim, self.tp_rank, size))


class MergedColumnParallelLinear(LinearBase):
    """Several column-parallel projections of the same input fused into one matmul.

    Used for the MLP's ``gate_up_proj``: checkpoint tensors ``gate_proj`` (shard 0) and
    ``up_proj`` (shard 1) land side by side in the output dimension.
    """

    def __init__(
        self,
        in_features: int,
        output_sizes: list[int],
        bias: bool,
        ctx: LayerContext,
        prefix: str = "",
    ) -> None:
        per_rank = [
            _divide(n, ctx.tp_size, f"{prefix or 'linear'} output features") for n in output_sizes
        ]
        super().__init__(in_features, per_rank, bias, ctx, prefix)

    def weight_loader(
        self, param: nn.Parameter, loaded_weight: torch.Tensor, shard_id: Any = None
    ) -> None:
        """Copy shard ``shard_id`` (an index into ``output_sizes``) into its slice of ``param``."""
        if shard_id is None:
            raise ValueError(
                f"{self.prefix}: a merged layer needs a shard id for each checkpoint tensor"
            )
        dim = getattr(param, "output_dim", None)
        size = self.output_sizes[shard_id]
        offset = sum(self.output_sizes[:shard_id])
        target = param if dim is None else param.narrow(dim, offset, size)
        copy_weight(target, _rank_slice(loaded_weight, dim, self.tp_rank, size))


class QKVParallelLinear(LinearBase):
    """The fused query/key/value projection, split by attention heads across ranks.

    Shards ``"q"``, ``"k"``, ``"v"`` come from ``q_proj``, ``k_proj``, ``v_proj``. When there
    are fewer KV heads than ranks, each KV head is replicated on ``tp_size / num_kv_heads``
    ranks.
    """

    def __init__(
        self,
        hidden_size: int,
        head_size: int,
        num_heads: int,
        num_kv_heads: int,
        bias: bool,
        ctx: LayerContext,
        prefix: str = "",
    ) -> None:
        self.head_size = head_size
        self.num_heads = _divide(num_heads, ctx.tp_size, "attention heads")
        if num_kv_heads >= ctx.tp_size:
            self.num_kv_heads = _divide(num_kv_heads, ctx.tp_size, "key/value heads")
            self.kv_replicas = 1
        else:
            self.num_kv_heads = 1
            self.kv_replicas = _divide(
                ctx.tp_size, num_kv_heads, "tensor-parallel size over kv heads"
            )
        q_size, kv_size = self.num_heads * head_size, self.num_kv_heads * head_size
        self.shard_sizes = {"q": q_size, "k": kv_size, "v": kv_size}
        super().__init__(hidden_size, [q_size, kv_size, kv_size], bias, ctx, prefix)

    def weight_loader(
        self, param: nn.Parameter, loaded_weight: torch.Tensor, shard_id: Any = None
    ) -> None:
        """Copy shard ``"q"``, ``"k"`` or ``"v"`` into its slice of ``param``."""
        if shard_id not in self.shard_sizes:
            raise ValueError(f"{self.prefix}: shard id must be 'q', 'k' or 'v', got {shard_id!r}")
        dim = getattr(param, "output_dim", None)
        order = ["q", "k", "v"]
        offset = sum(self.shard_sizes[s] for s in order[: order.index(shard_id)])
        size = self.shard_sizes[shard_id]
        rank = self.tp_rank if shard_id == "q" else self.tp_rank // self.kv_replicas
        target = param if dim is None else param.narrow(dim, offset, size)
        copy_weight(target, _rank_slice(loaded_weight, dim, rank, size))


class RowParallelLinear(LinearBase):
    """``y = x W^T + b`` with the input features split across ranks; partial sums are reduced.

    The input is expected already split (the output of a column-parallel layer). The bias is
    added once, after the reduction.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool, ctx: LayerContext, prefix: str = ""
    ) -> None:
        per_rank = _divide(in_features, ctx.tp_size, f"{prefix or 'linear'} input features")
        super().__init__(per_rank, [out_features], bias, ctx, prefix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Partial product on this rank, summed over the group, plus the bias."""
        if self.tp_size == 1:
            return self.quant_method.apply(self, x, self.bias)
        out = self.ctx.all_reduce(self.quant_method.apply(self, x, None))
        return out if self.bias is None else out + self.bias

    def weight_loader(
        self, param: nn.Parameter, loaded_weight: torch.Tensor, shard_id: Any = None
    ) -> None:
        """Take this rank's columns along ``param.input_dim`` (the bias is replicated whole)."""
        dim = getattr(param, "input_dim", None)
        size = param.shape[dim] if dim is not None else 0
        copy_weight(param, _rank_slice(loaded_weight, dim, self.tp_rank, size))
