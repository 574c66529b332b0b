"""CausalLM: the interface every text-generation model offers the model runner."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from llmrt.attention.metadata import AttentionMetadata
from llmrt.model.layers.attention import Attention


class CausalLM(nn.Module):
    """A decoder-only language model over a paged KV cache.

    Architecture factories (registered through ``llmrt_register_model_architectures``) are
    called as ``factory(hf_config, ctx: LayerContext)`` and return an instance.

    ``start_layer`` / ``end_layer`` name the contiguous range of decoder layers this
    instance computes (the whole model today; a pipeline-parallel stage later).
    """

    start_layer: int = 0
    end_layer: int = 0

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, attn_metadata: AttentionMetadata
    ) -> torch.Tensor:
        """Hidden states ``[T, H]`` (after the final norm) for the step's flattened tokens.

        :param input_ids: ``LongTensor[T]``, the tokens of every sequence, in batch order.
        :param positions: ``LongTensor[T]``, each token's absolute position in its sequence.
        :param attn_metadata: where the tokens' keys/values go in and come from the KV cache.
        """
        raise NotImplementedError

    def forward_rows(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        attn_metadata: AttentionMetadata,
        rows: torch.Tensor,
    ) -> torch.Tensor:
        """Hidden states ``[N, H]`` of the token rows ``rows`` only (``LongTensor[N]``, indices
        into the step's ``T`` tokens), equal to ``forward(...)[rows]``.

        The runner calls it when it needs only the sampling rows, e.g. each prompt's last token.
        Every token's keys and values must still be written to the cache, but work that goes row
        by row after the last layer's attention (output projection, MLP, final norm) need not run
        for the other rows: an override may skip it, which spares about one layer's MLP per prompt
        token. This default runs the whole forward pass and selects.
        """
        return self(input_ids, positions, attn_metadata)[rows]

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``hidden [N, H] -> logits [N, vocab]`` in float32, final soft-capping applied.

        The runner passes only the rows it samples from (usually each sequence's last token).
        """
        raise NotImplementedError

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Copy checkpoint tensors (Hugging Face names) into parameters.

        :return: names (as in ``named_parameters()``) of the parameters fully loaded.
        :raises llmrt.model.loader.UnexpectedWeightsError: for tensors matching no parameter.
        """
        raise NotImplementedError

    def attention_layers(self) -> list[Attention]:
        """Every attention layer in execution order (the runner binds a KV cache to each)."""
        return [m for m in self.modules() if isinstance(m, Attention)]
