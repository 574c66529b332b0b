"""Reference outputs from Hugging Face transformers on the same weights, for correctness tests."""

from __future__ import annotations

import inspect
from functools import lru_cache
from pathlib import Path

import torch


@lru_cache(maxsize=8)
def load_hf_model(model_dir: str, dtype: torch.dtype = torch.float32):
    """The checkpoint loaded with transformers in eval mode (cached per process)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()


@torch.inference_mode()
def hf_greedy(model_dir: str | Path, prompts: list[list[int]], max_tokens: int,
              dtype: torch.dtype = torch.float32) -> list[list[int]]:
    """Greedy continuations computed one prompt at a time with transformers' KV cache.

    No EOS handling: exactly ``max_tokens`` tokens per prompt (compare with ``ignore_eos``).
    """
    model = load_hf_model(str(model_dir), dtype)
    # transformers 5.2x renamed past_key_values to cache; earlier versions know only the old name.
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    outputs = []
    for prompt in prompts:
        result = model(torch.tensor([prompt]), use_cache=True)
        tokens: list[int] = []
        for _ in range(max_tokens):
            token = int(result.logits[0, -1].argmax())
            tokens.append(token)
            cache = getattr(result, cache_arg)
            result = model(torch.tensor([[token]]), use_cache=True, **{cache_arg: cache})
        outputs.append(tokens)
    return outputs


@torch.inference_mode()
def hf_logprobs(model_dir: str | Path, token_ids: list[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Log-softmax of transformers' logits at every position of ``token_ids`` ([len, vocab])."""
    model = load_hf_model(str(model_dir), dtype)
    logits = model(torch.tensor([token_ids])).logits[0].float()
    return torch.log_softmax(logits, dim=-1)
