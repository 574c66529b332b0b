"""Reading a Hugging Face model directory's config.json and generation_config.json.

Also normalizes the two ways transformers stores rope parameters: 5.x keeps them in
``config.rope_parameters`` (for Gemma 3 nested per layer type: ``{"sliding_attention": {...},
"full_attention": {...}}``), 4.x in ``config.rope_theta`` + ``config.rope_scaling`` (+ Gemma
3's ``rope_local_base_freq``). ``trust_remote_code`` is always off: only architectures that
transformers itself knows are read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "half": torch.float16,
    "fp16": torch.float16,
}
_LENGTH_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "max_sequence_length",
)
_GENERATION_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty", "min_p")
_ORIGINAL_LENGTH_TYPES = ("llama3", "yarn", "longrope")


def load_hf_config(model_dir: str | Path) -> Any:
    """The model's ``transformers`` config (``AutoConfig``, ``trust_remote_code=False``)."""
    from transformers import AutoConfig

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {path}: not a Hugging Face model directory")
    try:
        return AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    except ValueError as exc:
        raise ValueError(f"cannot read {path / 'config.json'}: {exc}") from exc


def config_dtype(hf_config: Any) -> torch.dtype | None:
    """The checkpoint's dtype as the config states it (``dtype`` in 5.x, ``torch_dtype`` in 4.x)."""
    value = getattr(hf_config, "dtype", None) or getattr(hf_config, "torch_dtype", None)
    if value is None or isinstance(value, torch.dtype):
        return value
    return _DTYPES.get(str(value).removeprefix("torch."))


def resolve_dtype(config_dtype: torch.dtype | str | None, requested: str) -> torch.dtype:
    """The model dtype for ``--dtype requested``.

    ``"auto"`` takes the checkpoint's dtype (float32 when the config names none or names a
    non-float16/bfloat16/float32 type); otherwise one of ``float32``/``bfloat16``/``float16``
    (aliases ``float``, ``fp32``, ``bf16``, ``half``, ``fp16``).
    """
    if requested != "auto":
        try:
            return _DTYPES[requested]
        except KeyError:
            raise ValueError(
                f"unknown dtype {requested!r}; choose auto, float32, bfloat16 or float16"
            ) from None
    if isinstance(config_dtype, str):
        config_dtype = _DTYPES.get(config_dtype.removeprefix("torch."))
    if config_dtype in (torch.float32, torch.bfloat16, torch.float16):
        return config_dtype
    return torch.float32


def text_config(hf_config: Any) -> Any:
    """The language-model part of a config (the config itself for text-only models)."""
    getter = getattr(hf_config, "get_text_config", None)
    return getter() if getter is not None else hf_config


def head_size(hf_config: Any) -> int:
    """Per-head size: ``head_dim`` when set, else ``hidden_size // num_attention_heads``."""
    return (
        getattr(hf_config, "head_dim", None)
        or hf_config.hidden_size // hf_config.num_attention_heads
    )


def max_model_len_from_config(hf_config: Any) -> int:
    """The longest context the model supports, as vLLM derives it.

    The smallest of the length keys present (``max_position_embeddings``, ``n_positions``,
    ...), stretched by the rope ``factor`` for ``linear``/``dynamic``/``yarn`` scaling (yarn
    from ``original_max_position_embeddings``). Gemma 3 configs already state the stretched
    length and are not multiplied.
    """
    cfg = text_config(hf_config)
    lengths = [int(getattr(cfg, key)) for key in _LENGTH_KEYS if getattr(cfg, key, None)]
    if not lengths:
        raise ValueError("the config states no maximum length (max_position_embeddings or similar)")
    length = min(lengths)
    params = rope_parameters(cfg, "full_attention")
    factor = params.get("factor")
    rope_type = params.get("rope_type")
    if factor and rope_type in ("linear", "dynamic", "yarn") and not _is_gemma3(cfg):
        base = (
            params.get("original_max_position_embeddings", length)
            if rope_type == "yarn"
            else length
        )
        length = max(length, int(base * factor))
    return length


def rope_parameters(hf_config: Any, layer_type: str | None = None) -> dict[str, Any]:
    """Normalized rope parameters for layers of ``layer_type`` (``None``: the only set).

    Always has ``rope_type`` and ``rope_theta``; types that need them also get
    ``original_max_position_embeddings``; ``max_position_embeddings`` is added for reference.
    """
    stored = getattr(hf_config, "rope_parameters", None)
    params = (
        _from_rope_parameters(stored, layer_type)
        if stored
        else _from_4x_fields(hf_config, layer_type)
    )
    if "type" in params:
        params.setdefault("rope_type", params.pop("type"))
    params.setdefault("rope_type", "default")
    params.setdefault("rope_theta", getattr(hf_config, "rope_theta", None) or 10000.0)
    partial = getattr(hf_config, "partial_rotary_factor", None)
    if partial is not None:
        params.setdefault("partial_rotary_factor", partial)
    max_pos = getattr(hf_config, "max_position_embeddings", None)
    if params["rope_type"] in _ORIGINAL_LENGTH_TYPES:
        params.setdefault("original_max_position_embeddings", max_pos)
    params.setdefault("max_position_embeddings", max_pos)
    return params


def _from_rope_parameters(stored: dict[str, Any], layer_type: str | None) -> dict[str, Any]:
    """transformers 5.x: flat, or nested by layer type."""
    nested = {k: v for k, v in stored.items() if isinstance(v, dict)}
    if not nested:
        return dict(stored)
    chosen = nested.get(layer_type) or nested.get("full_attention") or next(iter(nested.values()))
    return dict(chosen)


def _from_4x_fields(hf_config: Any, layer_type: str | None) -> dict[str, Any]:
    """transformers 4.x: ``rope_theta`` + ``rope_scaling`` (+ Gemma 3's local base frequency)."""
    local_theta = getattr(hf_config, "rope_local_base_freq", None)
    if layer_type == "sliding_attention" and local_theta is not None:
        return {"rope_type": "default", "rope_theta": local_theta}
    return dict(getattr(hf_config, "rope_scaling", None) or {})


def layer_types(hf_config: Any) -> list[str]:
    """Each layer's attention type: ``"full_attention"`` or ``"sliding_attention"``.

    From ``config.layer_types`` (transformers 5.x), else rebuilt as 4.x models defined it
    (Gemma 2: every other layer slides; Gemma 3: ``sliding_window_pattern``; others: all
    layers slide when ``sliding_window`` is set).
    """
    n = hf_config.num_hidden_layers
    stated = getattr(hf_config, "layer_types", None)
    if stated:
        return list(stated)
    if getattr(hf_config, "model_type", "") == "gemma2":
        return ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)]
    pattern = getattr(hf_config, "sliding_window_pattern", None)
    if pattern:
        return ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    kind = "sliding_attention" if _config_window(hf_config) else "full_attention"
    return [kind] * n


def layer_windows(hf_config: Any) -> list[int | None]:
    """Each layer's sliding window (``None``: full causal attention)."""
    window = _config_window(hf_config)
    windows: list[int | None] = []
    for i, kind in enumerate(layer_types(hf_config)):
        if kind not in ("full_attention", "sliding_attention"):
            raise ValueError(f"layer {i} has attention type {kind!r}, which llmrt does not support")
        windows.append(window if kind == "sliding_attention" else None)
    return windows


def _config_window(hf_config: Any) -> int | None:
    if getattr(hf_config, "use_sliding_window", True) is False:
        return None
    return getattr(hf_config, "sliding_window", None) or None


def _is_gemma3(hf_config: Any) -> bool:
    return str(getattr(hf_config, "model_type", "")).startswith("gemma3")


def load_generation_defaults(model_dir: str | Path) -> dict[str, Any]:
    """Sampling defaults from ``generation_config.json`` (empty when the file is absent).

    Keys, only those the file sets: ``temperature``, ``top_p``, ``top_k``,
    ``repetition_penalty``, ``min_p``, ``max_tokens`` (from ``max_new_tokens``) and
    ``eos_token_id`` (always a list). Like vLLM, ``do_sample`` is not interpreted.
    """
    path = Path(model_dir) / "generation_config.json"
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    defaults = {key: raw[key] for key in _GENERATION_KEYS if raw.get(key) is not None}
    if raw.get("max_new_tokens") is not None:
        defaults["max_tokens"] = raw["max_new_tokens"]
    eos = raw.get("eos_token_id")
    if eos is not None:
        defaults["eos_token_id"] = list(eos) if isinstance(eos, (list, tuple)) else [eos]
    return defaults
