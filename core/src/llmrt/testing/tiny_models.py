"""Tiny random-weight Hugging Face models for tests (no downloads).

``build_tiny_model(arch, path)`` writes a complete model directory (config.json,
safetensors weights, tokenizer files, generation_config.json) that both
``transformers`` and llmrt can load. Models are built from transformers' own config
and model classes, so transformers is the reference implementation for correctness
tests. Weights are reproducible: the same ``arch``, ``seed``, ``dtype`` and overrides
give byte-identical safetensors files.

Building is cheap (well under a second per model), but tests that share a model
should build it once per session, e.g.::

    @pytest.fixture(scope="session")
    def llama_dir(tmp_path_factory):
        return build_tiny_model("llama", tmp_path_factory.mktemp("llama"))
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from llmrt.testing.tiny_tokenizer import (
    IM_END_TOKEN,
    SPECIAL_TOKENS,
    save_tiny_tokenizer,
    train_tiny_tokenizer,
)

#: Architectures ``build_tiny_model`` knows.
TINY_ARCHITECTURES: tuple[str, ...] = (
    "llama",
    "llama3",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma2",
    "gemma3",
)

#: Window of every sliding-window layer; prompts longer than this exercise the window.
TINY_SLIDING_WINDOW = 32

#: Std of the normal init of all matrices. Large (HF default is 0.02) so logits are far from
#: uniform (std ~1.6, max ~7). Measured greedy top1-top2 gaps: median ~0.35, 1st percentile
#: ~0.005, against ~1e-5 float32 differences between attention paths, so greedy float32
#: outputs are stable (``measure_greedy_margins`` measures this).
TINY_INITIALIZER_RANGE = 0.2

#: Gemma multiplies token embeddings by sqrt(hidden_size); drawn like other weights, the
#: embedding then swamps the residual stream and greedy decoding just repeats the input
#: token. Gemma models get their (tied) embedding scaled by this factor and the final norm
#: gain multiplied by its inverse, which keeps logits spread but makes outputs context-dependent.
GEMMA_EMBEDDING_SCALE = 0.25

#: Std of the noise added to every 1-D parameter (norm weights, biases), which transformers
#: initializes to constants; the noise makes a runtime that ignores them produce different logits.
TINY_VECTOR_NOISE = 0.2

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Shared by every architecture; tokenizer ids and vocab size are added at build time.
_COMMON: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 512,
    "initializer_range": TINY_INITIALIZER_RANGE,
    "rms_norm_eps": 1e-6,
}

_LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}

# arch -> (config class, model class, arch-specific config values).
_ARCH_SPECS: dict[str, tuple[type[PreTrainedConfig], type[PreTrainedModel], dict[str, Any]]] = {
    "llama": (LlamaConfig, LlamaForCausalLM, {"tie_word_embeddings": False}),
    "llama3": (
        LlamaConfig,
        LlamaForCausalLM,
        {"tie_word_embeddings": False, "rope_parameters": _LLAMA3_ROPE},
    ),
    "mistral": (
        MistralConfig,
        MistralForCausalLM,
        {"tie_word_embeddings": False, "sliding_window": TINY_SLIDING_WINDOW},
    ),
    "qwen2": (
        Qwen2Config,
        Qwen2ForCausalLM,
        {
            "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        },
    ),
    "qwen3": (
        Qwen3Config,
        Qwen3ForCausalLM,
        {
            "tie_word_embeddings": True,
            "head_dim": 32,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        },
    ),
    "gemma2": (
        Gemma2Config,
        Gemma2ForCausalLM,
        {
            "tie_word_embeddings": True,
            "head_dim": 32,
            "query_pre_attn_scalar": 16,
            "sliding_window": TINY_SLIDING_WINDOW,
            "attn_logit_softcapping": 10.0,
            "final_logit_softcapping": 8.0,
        },
    ),
    "gemma3": (
        Gemma3TextConfig,
        Gemma3ForCausalLM,
        {
            "tie_word_embeddings": True,
            "num_hidden_layers": 4,
            "head_dim": 32,
            "query_pre_attn_scalar": 16,
            "sliding_window": TINY_SLIDING_WINDOW,
            "sliding_window_pattern": 3,
        },
    ),
}


def tiny_config(
    arch: str, tokenizer: PreTrainedTokenizerBase | None = None, **overrides: Any
) -> PreTrainedConfig:
    """Return the transformers config ``build_tiny_model`` would use for ``arch``.

    Token ids and ``vocab_size`` come from ``tokenizer`` (default: ``tiny_tokenizer_for(arch)``);
    keyword ``overrides`` replace any config field.
    """
    config_cls, model_cls, arch_values = _arch_spec(arch)
    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer_for(arch)
    values = {**_COMMON, **_token_values(tokenizer), **arch_values, **overrides}
    config = config_cls(**values)
    config.architectures = [model_cls.__name__]
    return config


def build_tiny_model(
    arch: str,
    path: str | os.PathLike,
    *,
    seed: int = 0,
    dtype: str = "float32",
    max_shard_size: str | None = None,
    **config_overrides: Any,
) -> Path:
    """Write a tiny random-weight ``arch`` model directory at ``path`` and return it.

    The directory holds config.json, model.safetensors (or shards plus
    model.safetensors.index.json when ``max_shard_size`` is given, e.g. ``"20KB"``),
    tokenizer.json, tokenizer_config.json (with the chat template), and
    generation_config.json (greedy; eos ids ``<|eos|>`` and ``<|im_end|>``).
    ``dtype`` is one of ``float32``, ``bfloat16``, ``float16``; the weights are drawn in
    float32 and then cast, so the same ``seed`` gives the same values up to rounding.
    ``config_overrides`` replace config fields (e.g. ``num_hidden_layers=3``).
    """
    torch_dtype = _resolve_dtype(dtype)
    tokenizer = tiny_tokenizer_for(arch)
    model = make_tiny_model(arch, seed=seed, **config_overrides).to(torch_dtype)
    model.generation_config = tiny_generation_config(tokenizer)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    # transformers 5.x always writes safetensors (the safe_serialization argument is gone).
    shard_kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out, **shard_kwargs)
    save_tiny_tokenizer(tokenizer, out)
    return out


def make_tiny_model(arch: str, *, seed: int = 0, **config_overrides: Any) -> PreTrainedModel:
    """Return the float32 ``arch`` model (in eval mode) that ``build_tiny_model`` would save.

    Useful as an in-memory transformers reference without touching disk.
    """
    config = tiny_config(arch, **config_overrides)
    return _init_model(_arch_spec(arch)[1], config, seed)


def tiny_tokenizer_for(arch: str) -> PreTrainedTokenizerFast:
    """Return the tokenizer ``build_tiny_model`` saves with ``arch`` (qwen2: the qwen2 flavor)."""
    _arch_spec(arch)
    return train_tiny_tokenizer(flavor="qwen2" if arch == "qwen2" else "bytelevel")


def tiny_generation_config(tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """Return a greedy generation config whose stop ids are ``<|eos|>`` and ``<|im_end|>``."""
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(IM_END_TOKEN)],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )


def random_prompts(
    tokenizer_or_vocab_size: PreTrainedTokenizerBase | int,
    n: int,
    min_len: int,
    max_len: int,
    seed: int = 0,
) -> list[list[int]]:
    """Return ``n`` prompts of random token ids, each ``min_len..max_len`` long (inclusive).

    Special token ids are never used: those of the tokenizer when one is given, else the
    tiny tokenizer's (ids ``0..len(SPECIAL_TOKENS)-1``) when a vocab size is given.
    The same arguments always give the same prompts.
    """
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    allowed = _ordinary_ids(tokenizer_or_vocab_size)
    rng = random.Random(seed)
    return [rng.choices(allowed, k=rng.randint(min_len, max_len)) for _ in range(n)]


def measure_greedy_margins(
    model: PreTrainedModel, prompts: list[list[int]], new_tokens: int = 16
) -> list[float]:
    """Greedy-decode each prompt and return the top1 - top2 logit gap at every step.

    Used to check that a tiny model's greedy output is robust to float rounding: a
    runtime that matches transformers to ~1e-4 must then pick the same tokens.
    """
    margins: list[float] = []
    with torch.no_grad():
        for prompt in prompts:
            out = model.generate(
                torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
            )
            for step_logits in out.logits:
                top2 = step_logits[0].float().topk(2).values
                margins.append(float(top2[0] - top2[1]))
    return margins


def _arch_spec(arch: str) -> tuple[type[PreTrainedConfig], type[PreTrainedModel], dict[str, Any]]:
    """Look up ``arch`` in the spec table, with a helpful error for unknown names."""
    try:
        return _ARCH_SPECS[arch]
    except KeyError:
        raise ValueError(f"unknown tiny arch {arch!r}; choose from {TINY_ARCHITECTURES}") from None


def _resolve_dtype(dtype: str) -> torch.dtype:
    """Map a dtype name to a torch dtype."""
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unsupported dtype {dtype!r}; choose from {tuple(_DTYPES)}") from None


def _token_values(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """Config fields taken from the tokenizer: vocab size and bos/eos/pad ids."""
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _init_model(
    model_cls: Callable[[PreTrainedConfig], PreTrainedModel], config: PreTrainedConfig, seed: int
) -> PreTrainedModel:
    """Instantiate ``model_cls`` in float32 with seeded weights; the global RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config).to(torch.float32)
        _perturb_vectors(model)
    if config.model_type.startswith("gemma"):
        _rebalance_gemma(model, GEMMA_EMBEDDING_SCALE)
    return model.eval()


def _perturb_vectors(model: PreTrainedModel) -> None:
    """Add seeded noise to 1-D parameters (norm weights, biases) so they are not constants."""
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 1:
                param.add_(torch.randn_like(param) * TINY_VECTOR_NOISE)


def _rebalance_gemma(model: PreTrainedModel, scale: float) -> None:
    """Scale a Gemma model's embedding by ``scale`` and its final norm gain by ``1 / scale``.

    Gemma's RMSNorm multiplies by ``1 + weight``, so the stored weight is adjusted so that
    the effective gain is divided by ``scale``.
    """
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(scale)
        norm_weight = model.model.norm.weight
        norm_weight.copy_((1 + norm_weight) / scale - 1)


def _ordinary_ids(tokenizer_or_vocab_size: PreTrainedTokenizerBase | int) -> list[int]:
    """Token ids that are not special, for a tokenizer or a tiny-tokenizer vocab size."""
    if isinstance(tokenizer_or_vocab_size, int):
        return list(range(len(SPECIAL_TOKENS), tokenizer_or_vocab_size))
    tokenizer = tokenizer_or_vocab_size
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    return [i for i in range(len(tokenizer)) if i not in special]
