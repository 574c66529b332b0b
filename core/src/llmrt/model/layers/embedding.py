"""Token embedding and language-model head, split by vocabulary across tensor-parallel ranks.

Rank ``r`` holds rows ``[r * V/tp, (r+1) * V/tp)`` of the ``[V, H]`` table (``V`` rounded up to
a multiple of ``tp_size``; the padding rows of the last rank are zero). The embedding looks
up the ids in its range and the group sums the results; the head computes its slice of the
logits and the group gathers them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmrt.model.context import LayerContext
from llmrt.model.loader import copy_weight, set_weight_attrs


class VocabParallelEmbedding(nn.Module):
    """``ids [T] -> [T, H]`` embedding lookup over this rank's vocabulary slice.

    ``shared_weight`` reuses an existing parameter (weight tying) instead of allocating one.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        ctx: LayerContext,
        shared_weight: nn.Parameter | None = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.rows_per_rank = -(-num_embeddings // ctx.tp_size)
        self.vocab_start = ctx.tp_rank * self.rows_per_rank
        self.vocab_end = min(self.vocab_start + self.rows_per_rank, num_embeddings)
        if shared_weight is not None:
            self.weight = shared_weight
            return
        self.weight = nn.Parameter(
            torch.empty(self.rows_per_rank, embedding_dim, dtype=ctx.dtype, device=ctx.device),
            requires_grad=False,
        )
        set_weight_attrs(self.weight, {"output_dim": 0, "weight_loader": self.weight_loader})

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Embeddings of ``input_ids`` (summed over ranks when the vocabulary is split)."""
        if self.ctx.tp_size == 1:
            return F.embedding(input_ids, self.weight)
        outside = (input_ids < self.vocab_start) | (input_ids >= self.vocab_end)
        local = torch.where(outside, 0, input_ids - self.vocab_start)
        out = F.embedding(local, self.weight).masked_fill(outside.unsqueeze(-1), 0)
        return self.ctx.all_reduce(out)

    def weight_loader(
        self, param: nn.Parameter, loaded_weight: torch.Tensor, shard_id: Any = None
    ) -> None:
        """Copy this rank's vocabulary rows; zero the padding rows of the last rank."""
        if loaded_weight.shape[0] != self.num_embeddings:
            raise ValueError(
                f"vocabulary size mismatch: checkpoint {loaded_weight.shape[0]}, "
                f"model {self.num_embeddings}"
            )
        rows = self.vocab_end - self.vocab_start
        copy_weight(param.narrow(0, 0, rows), loaded_weight.narrow(0, self.vocab_start, rows))
        if rows < param.shape[0]:
            with torch.no_grad():
                param[rows:].zero_()

    def extra_repr(self) -> str:
        rows = f"[{self.vocab_start}, {self.vocab_end})"
        return f"vocab={self.num_embeddings}, dim={self.embedding_dim}, rows={rows}"


class ParallelLMHead(VocabParallelEmbedding):
    """The output projection ``hidden [N, H] -> logits [N, V]``.

    With ``tied_to`` (models with ``tie_word_embeddings``) it shares that embedding's weight
    parameter instead of allocating its own, and the checkpoint needs no ``lm_head.weight``.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        ctx: LayerContext,
        tied_to: VocabParallelEmbedding | None = None,
    ) -> None:
        shared = tied_to.weight if tied_to is not None else None
        super().__init__(num_embeddings, embedding_dim, ctx, shared_weight=shared)
        self.tied = tied_to is not None
        self.quant_method = ctx.unquantized_method("lm_head")
        """Runs the product (the backend's unquantized method, which may repack after loading)."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits over the whole vocabulary, in the model dtype."""
        return self._gathered(self.quant_method.apply(self, hidden, None))

    def forward_float32(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits over the whole vocabulary in float32, written so by the product where the
        linear method can (:meth:`QuantMethod.apply_float32`)."""
        return self._gathered(self.quant_method.apply_float32(self, hidden))

    def _gathered(self, logits: torch.Tensor) -> torch.Tensor:
        if self.ctx.tp_size > 1:
            logits = self.ctx.all_gather(logits, dim=-1)
        return logits[..., : self.num_embeddings]
