"""One decoder-only transformer for every supported family; what differs is data (DecoderSpec).

    embed (x sqrt(H) for Gemma) -> layers [norm -> attention -> norm -> gated MLP] -> norm -> head

Per-family differences, all fields of :class:`DecoderSpec`: biases of the projections,
per-head q/k RMS norm (Qwen3, Gemma 3), Gemma's ``(1 + w)`` norms and "sandwich" norms
around attention and MLP, the MLP activation, the attention scale, soft-capping of attention
and final logits, and each layer's sliding window and rope parameters. Parameter names
follow Hugging Face's (``model.layers.N.self_attn...``) except the fused ``qkv_proj`` and
``gate_up_proj``, which :meth:`DecoderForCausalLM.load_weights` fills from the separate
checkpoint tensors.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from llmrt.attention.metadata import AttentionMetadata
from llmrt.model.causal_lm import CausalLM
from llmrt.model.context import LayerContext
from llmrt.model.layers.activation import GatedActivation
from llmrt.model.layers.attention import Attention
from llmrt.model.layers.embedding import ParallelLMHead, VocabParallelEmbedding
from llmrt.model.layers.linear import (
    MergedColumnParallelLinear,
    QKVParallelLinear,
    RowParallelLinear,
)
from llmrt.model.layers.norm import RMSNorm
from llmrt.model.layers.rotary import RotaryEmbedding
from llmrt.model.loader import UnexpectedWeightsError, default_weight_loader


@dataclass(frozen=True)
class DecoderSpec:
    """Everything that shapes a decoder-only model, read from a Hugging Face config.

    ``layer_rope[i]`` is layer ``i``'s rope parameter dict (``rope_type``, ``rope_theta``,
    ...); ``layer_windows[i]`` its sliding window or ``None``. ``gemma_norms`` selects
    ``(1 + w)`` norm weights with Gemma's cast order; ``sandwich_norms`` adds Gemma's norms
    after attention and around the MLP; ``embed_scale`` multiplies the embeddings.
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_size: int
    rms_norm_eps: float
    hidden_act: str
    max_position: int
    attn_scale: float
    layer_rope: tuple[Mapping[str, Any], ...]
    layer_windows: tuple[int | None, ...]
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    gemma_norms: bool = False
    sandwich_norms: bool = False
    embed_scale: float | None = None
    attn_softcap: float | None = None
    final_softcap: float | None = None
    tie_word_embeddings: bool = False

    def norm(self, size: int, ctx: LayerContext) -> RMSNorm:
        """An RMSNorm of ``size`` with this family's numerics."""
        if self.gemma_norms:
            return RMSNorm(
                size, self.rms_norm_eps, ctx, weight_offset=1.0, cast_before_weight=False
            )
        return RMSNorm(size, self.rms_norm_eps, ctx)


class DecoderAttention(nn.Module):
    """Fused QKV projection, optional per-head q/k norm, rotary, paged attention, output."""

    def __init__(
        self, spec: DecoderSpec, index: int, rotary: RotaryEmbedding, ctx: LayerContext, prefix: str
    ) -> None:
        super().__init__()
        self.qkv_proj = QKVParallelLinear(
            spec.hidden_size,
            spec.head_size,
            spec.num_heads,
            spec.num_kv_heads,
            spec.qkv_bias,
            ctx,
            prefix=f"{prefix}.qkv_proj",
        )
        heads, kv_heads = self.qkv_proj.num_heads, self.qkv_proj.num_kv_heads
        self.head_size = spec.head_size
        self.split_sizes = [
            heads * spec.head_size,
            kv_heads * spec.head_size,
            kv_heads * spec.head_size,
        ]
        self.o_proj = RowParallelLinear(
            spec.num_heads * spec.head_size,
            spec.hidden_size,
            spec.o_bias,
            ctx,
            prefix=f"{prefix}.o_proj",
        )
        self.q_norm = spec.norm(spec.head_size, ctx) if spec.qk_norm else None
        self.k_norm = spec.norm(spec.head_size, ctx) if spec.qk_norm else None
        self.rotary_emb = rotary
        self.attn = Attention(
            heads,
            kv_heads,
            spec.head_size,
            spec.attn_scale,
            ctx,
            layer_index=index,
            sliding_window=spec.layer_windows[index],
            logit_softcap=spec.attn_softcap,
        )

    def forward(
        self,
        positions: torch.Tensor,
        hidden: torch.Tensor,
        metadata: AttentionMetadata,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[T, H] -> [T, H]``, or ``[N, H]`` for the ``N`` token rows ``rows`` (every token's
        key and value are still cached; only the output projection is limited to ``rows``)."""
        q, k, v = self.qkv_proj(hidden).split(self.split_sizes, dim=-1)
        if self.q_norm is not None:
            q, k = self.rotary_emb.with_qk_norm(positions, q, k, self.q_norm, self.k_norm)
        else:
            q, k = self.rotary_emb(positions, q, k)
        out = self.attn(q, k, v, metadata)
        return self.o_proj(out if rows is None else out[rows])


class DecoderMLP(nn.Module):
    """Gated MLP: ``down(act(gate(x)) * up(x))`` with gate and up fused into one matmul."""

    def __init__(self, spec: DecoderSpec, ctx: LayerContext, prefix: str) -> None:
        super().__init__()
        size = spec.intermediate_size
        self.gate_up_proj = MergedColumnParallelLinear(
            spec.hidden_size, [size, size], spec.mlp_bias, ctx, prefix=f"{prefix}.gate_up_proj"
        )
        self.act_fn = GatedActivation(spec.hidden_act, ctx)
        self.down_proj = RowParallelLinear(
            size, spec.hidden_size, spec.mlp_bias, ctx, prefix=f"{prefix}.down_proj"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, H] -> [T, H]``."""
        return self.down_proj(self.act_fn(self.gate_up_proj(x)))


class DecoderLayer(nn.Module):
    """One transformer block; the residual stream is carried separately for fused add+norm."""

    def __init__(
        self, spec: DecoderSpec, index: int, rotary: RotaryEmbedding, ctx: LayerContext, prefix: str
    ) -> None:
        super().__init__()
        self.input_layernorm = spec.norm(spec.hidden_size, ctx)
        self.self_attn = DecoderAttention(spec, index, rotary, ctx, prefix=f"{prefix}.self_attn")
        self.post_attention_layernorm = spec.norm(spec.hidden_size, ctx)
        self.mlp = DecoderMLP(spec, ctx, prefix=f"{prefix}.mlp")
        self.sandwich = spec.sandwich_norms
        if self.sandwich:
            self.pre_feedforward_layernorm = spec.norm(spec.hidden_size, ctx)
            self.post_feedforward_layernorm = spec.norm(spec.hidden_size, ctx)

    def forward(
        self,
        positions: torch.Tensor,
        hidden: torch.Tensor,
        residual: torch.Tensor | None,
        metadata: AttentionMetadata,
        rows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hidden, residual) -> (hidden, residual)``; the caller adds the last pair.

        With ``rows``, the pair returned holds only those token rows: everything after attention
        is row by row, so it runs on them alone.
        """
        if residual is None:
            hidden, residual = self.input_layernorm(hidden), hidden
        else:
            hidden, residual = self.input_layernorm(hidden, residual)
        hidden = self.self_attn(positions, hidden, metadata, rows)
        if rows is not None:
            residual = residual[rows]
        if self.sandwich:
            hidden = self.post_attention_layernorm(hidden)
            hidden, residual = self.pre_feedforward_layernorm(hidden, residual)
            return self.post_feedforward_layernorm(self.mlp(hidden)), residual
        hidden, residual = self.post_attention_layernorm(hidden, residual)
        return self.mlp(hidden), residual


class DecoderModel(nn.Module):
    """Embedding, the decoder layers ``[start_layer, end_layer)`` and the final norm.

    Layers outside the range (other pipeline stages) are empty placeholders.
    """

    def __init__(
        self,
        spec: DecoderSpec,
        ctx: LayerContext,
        start_layer: int = 0,
        end_layer: int | None = None,
    ) -> None:
        super().__init__()
        self.start_layer = start_layer
        self.end_layer = spec.num_layers if end_layer is None else end_layer
        self.embed_tokens = VocabParallelEmbedding(spec.vocab_size, spec.hidden_size, ctx)
        # Hugging Face multiplies by the scale rounded to the model dtype (55.4256 -> 55.5 in bf16).
        scale = None
        if spec.embed_scale is not None:
            scale = torch.tensor(spec.embed_scale, device=ctx.device).to(ctx.dtype)
        self.register_buffer("embed_scale", scale, persistent=False)
        rotaries = _shared_rotaries(spec, ctx)
        self.layers = nn.ModuleList(
            DecoderLayer(spec, i, rotaries[i], ctx, prefix=f"model.layers.{i}")
            if self.start_layer <= i < self.end_layer
            else nn.Identity()
            for i in range(spec.num_layers)
        )
        self.norm = spec.norm(spec.hidden_size, ctx)

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        metadata: AttentionMetadata,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``ids [T] -> hidden [T, H]`` after the final norm; ``[N, H]`` with ``rows`` (the last
        layer runs its work after attention on those ``N`` token rows only)."""
        hidden = self.embed_tokens(input_ids)
        if self.embed_scale is not None:
            hidden = hidden * self.embed_scale
        residual = None
        last = self.end_layer - 1
        for index in range(self.start_layer, self.end_layer):
            layer_rows = rows if index == last else None
            hidden, residual = self.layers[index](positions, hidden, residual, metadata, layer_rows)
        if rows is not None and self.start_layer == self.end_layer:  # no layer here to select them
            hidden = hidden[rows]
        if residual is None:
            return self.norm(hidden)
        return self.norm(hidden, residual)[0]


def _shared_rotaries(spec: DecoderSpec, ctx: LayerContext) -> list[RotaryEmbedding]:
    """One RotaryEmbedding per distinct rope parameter set, listed per layer."""
    by_params: dict[str, RotaryEmbedding] = {}
    per_layer = []
    for params in spec.layer_rope:
        key = json.dumps(dict(params), sort_keys=True, default=str)
        if key not in by_params:
            by_params[key] = RotaryEmbedding(spec.head_size, spec.max_position, params, ctx)
        per_layer.append(by_params[key])
    return per_layer


# Checkpoint tensor names fused into one parameter: (fused name, checkpoint name, shard id).
_STACKED_PARAMS: tuple[tuple[str, str, Any], ...] = (
    (".qkv_proj.", ".q_proj.", "q"),
    (".qkv_proj.", ".k_proj.", "k"),
    (".qkv_proj.", ".v_proj.", "v"),
    (".gate_up_proj.", ".gate_proj.", 0),
    (".gate_up_proj.", ".up_proj.", 1),
)
_SHARDS_OF = {".qkv_proj.": {"q", "k", "v"}, ".gate_up_proj.": {0, 1}}
# Non-parameter tensors some checkpoints carry (old Llama exports store rope tables).
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq", "rotary_emb.cos_cached", "rotary_emb.sin_cached")
_LAYER_INDEX = re.compile(r"^model\.layers\.(\d+)\.")


class DecoderForCausalLM(CausalLM):
    """:class:`CausalLM` over :class:`DecoderModel` with a (possibly tied) language-model head."""

    def __init__(
        self,
        spec: DecoderSpec,
        ctx: LayerContext,
        start_layer: int = 0,
        end_layer: int | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.model = DecoderModel(spec, ctx, start_layer, end_layer)
        self.start_layer, self.end_layer = self.model.start_layer, self.model.end_layer
        tied = self.model.embed_tokens if spec.tie_word_embeddings else None
        self.lm_head = ParallelLMHead(spec.vocab_size, spec.hidden_size, ctx, tied_to=tied)

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, attn_metadata: AttentionMetadata
    ) -> torch.Tensor:
        """See :meth:`CausalLM.forward`."""
        return self.model(input_ids, positions, attn_metadata)

    def forward_rows(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        attn_metadata: AttentionMetadata,
        rows: torch.Tensor,
    ) -> torch.Tensor:
        """See :meth:`CausalLM.forward_rows`: the last layer's output projection, MLP and the
        final norm run on ``rows`` only."""
        return self.model(input_ids, positions, attn_metadata, rows)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """See :meth:`CausalLM.compute_logits`; soft-capping is done in float32."""
        logits = self.lm_head.forward_float32(hidden_states)
        cap = self.spec.final_softcap
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """See :meth:`CausalLM.load_weights`; fills ``qkv_proj`` and ``gate_up_proj`` by shard."""
        params = dict(self.named_parameters())
        seen: dict[str, set[Any]] = defaultdict(set)
        unexpected: list[str] = []
        for name, tensor in weights:
            if self._skipped(name):
                continue
            target, shard_id = _map_name(name)
            param = params.get(target)
            if param is None:
                unexpected.append(name)
                continue
            _load_one(param, tensor, shard_id)
            seen[target].add(shard_id)
        if unexpected:
            raise UnexpectedWeightsError(unexpected)
        return {name for name, shards in seen.items() if shards >= _expected_shards(name)}

    def _skipped(self, name: str) -> bool:
        """Tensors deliberately not loaded: rope tables, a tied head, other stages' layers."""
        if name.endswith(_IGNORED_SUFFIXES):
            return True
        if name == "lm_head.weight" and self.spec.tie_word_embeddings:
            return True
        match = _LAYER_INDEX.match(name)
        return match is not None and not self.start_layer <= int(match.group(1)) < self.end_layer


def _load_one(param: nn.Parameter, tensor: torch.Tensor, shard_id: Any) -> None:
    """Copy one checkpoint tensor through the parameter's own ``weight_loader`` when it has one."""
    loader = getattr(param, "weight_loader", None)
    if loader is None:
        if shard_id is not None:
            raise ValueError(f"parameter has no weight_loader for fused shard {shard_id!r}")
        default_weight_loader(param, tensor)
    elif shard_id is None:
        loader(param, tensor)
    else:
        loader(param, tensor, shard_id)


def _map_name(name: str) -> tuple[str, Any]:
    """Checkpoint name -> (parameter name, shard id or None)."""
    for fused, original, shard_id in _STACKED_PARAMS:
        if original in name:
            return name.replace(original, fused), shard_id
    return name, None


def _expected_shards(param_name: str) -> set[Any]:
    for fused, shards in _SHARDS_OF.items():
        if fused in param_name:
            return shards
    return {None}
