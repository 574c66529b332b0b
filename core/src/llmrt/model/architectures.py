"""Hugging Face architecture names -> model factories, for the families core implements.

Each family is a :class:`FamilyTraits` (what its Hugging Face modeling code hard-wires);
:func:`decoder_spec` combines it with the checkpoint's config into a
:class:`~llmrt.model.decoder.DecoderSpec`. Core registers the factories through the
``llmrt_register_model_architectures`` hook like any plugin would; a plugin adds an
architecture by registering its own ``factory(hf_config, ctx) -> CausalLM``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmrt.model.causal_lm import CausalLM
from llmrt.model.context import LayerContext
from llmrt.model.decoder import DecoderForCausalLM, DecoderSpec
from llmrt.model.hf_config import (
    head_size,
    layer_types,
    layer_windows,
    max_model_len_from_config,
    rope_parameters,
)

ModelFactory = Callable[[Any, LayerContext], CausalLM]


@dataclass(frozen=True)
class FamilyTraits:
    """What a family's modeling code fixes regardless of config values.

    ``qkv_bias`` / ``o_bias``: ``None`` reads ``config.attention_bias``; a bool forces it
    (Qwen2 always has q/k/v biases and no output bias; Mistral has none). ``gemma`` turns on
    Gemma's numerics: ``(1 + w)`` norms, sandwich norms, ``sqrt(hidden)`` embedding scale,
    ``query_pre_attn_scalar``, final logit soft-capping. ``attn_softcap``: whether the
    config's ``attn_logit_softcapping`` is applied (Gemma 2 yes; Gemma 3's modeling code
    ignores it, so we do too).
    """

    qkv_bias: bool | None = None
    o_bias: bool | None = None
    qk_norm: bool = False
    gemma: bool = False
    attn_softcap: bool = False


LLAMA = FamilyTraits()
MISTRAL = FamilyTraits(qkv_bias=False, o_bias=False)
QWEN2 = FamilyTraits(qkv_bias=True, o_bias=False)
QWEN3 = FamilyTraits(qk_norm=True)
GEMMA2 = FamilyTraits(gemma=True, attn_softcap=True)
GEMMA3 = FamilyTraits(gemma=True, qk_norm=True)

ARCHITECTURES: dict[str, FamilyTraits] = {
    "LlamaForCausalLM": LLAMA,
    "MistralForCausalLM": MISTRAL,
    "Qwen2ForCausalLM": QWEN2,
    "Qwen3ForCausalLM": QWEN3,
    "Gemma2ForCausalLM": GEMMA2,
    "Gemma3ForCausalLM": GEMMA3,
}
"""The architectures core implements, by the name in config.json's ``architectures``."""


def decoder_spec(hf_config: Any, traits: FamilyTraits) -> DecoderSpec:
    """Read a Hugging Face config into a :class:`DecoderSpec` for a family."""
    _check_supported(hf_config)
    size = head_size(hf_config)
    bias = bool(getattr(hf_config, "attention_bias", False))
    types = layer_types(hf_config)
    gemma = traits.gemma
    return DecoderSpec(
        vocab_size=hf_config.vocab_size,
        hidden_size=hf_config.hidden_size,
        intermediate_size=hf_config.intermediate_size,
        num_layers=hf_config.num_hidden_layers,
        num_heads=hf_config.num_attention_heads,
        num_kv_heads=getattr(hf_config, "num_key_value_heads", None)
        or hf_config.num_attention_heads,
        head_size=size,
        rms_norm_eps=hf_config.rms_norm_eps,
        hidden_act=getattr(hf_config, "hidden_activation", None) or hf_config.hidden_act,
        max_position=max_model_len_from_config(hf_config),
        attn_scale=(hf_config.query_pre_attn_scalar if gemma else size) ** -0.5,
        layer_rope=tuple(rope_parameters(hf_config, kind) for kind in types),
        layer_windows=tuple(layer_windows(hf_config)),
        qkv_bias=bias if traits.qkv_bias is None else traits.qkv_bias,
        o_bias=bias if traits.o_bias is None else traits.o_bias,
        mlp_bias=bool(getattr(hf_config, "mlp_bias", False)),
        qk_norm=traits.qk_norm,
        gemma_norms=gemma,
        sandwich_norms=gemma,
        embed_scale=math.sqrt(hf_config.hidden_size) if gemma else None,
        attn_softcap=getattr(hf_config, "attn_logit_softcapping", None)
        if traits.attn_softcap
        else None,
        final_softcap=getattr(hf_config, "final_logit_softcapping", None) if gemma else None,
        tie_word_embeddings=bool(getattr(hf_config, "tie_word_embeddings", False)),
    )


def _check_supported(hf_config: Any) -> None:
    """Refuse config options the shared decoder does not implement, naming them."""
    if getattr(hf_config, "use_bidirectional_attention", False):
        raise ValueError(
            "use_bidirectional_attention=True (an encoder-style Gemma 3) is not supported"
        )


def decoder_factory(traits: FamilyTraits) -> ModelFactory:
    """A ``factory(hf_config, ctx) -> CausalLM`` building the shared decoder for a family."""

    def factory(hf_config: Any, ctx: LayerContext) -> CausalLM:
        """The shared decoder shaped by ``hf_config`` and the family's traits."""
        return DecoderForCausalLM(decoder_spec(hf_config, traits), ctx)

    return factory


def register_core_architectures(register: Callable[..., None]) -> None:
    """Register a factory for every name in :data:`ARCHITECTURES` (``register(name, factory)``)."""
    for name, traits in ARCHITECTURES.items():
        register(name, decoder_factory(traits))
