"""Perplexity over fixed windows of a text, computed by llmrt and by transformers alike."""

from __future__ import annotations

import math
from pathlib import Path

import torch


def token_windows(token_ids: list[int], size: int, limit: int | None = None) -> list[list[int]]:
    """Consecutive non-overlapping windows of ``size`` tokens (a shorter last one is dropped)."""
    windows = [token_ids[i : i + size] for i in range(0, len(token_ids) - size + 1, size)]
    return windows[:limit] if limit is not None else windows


def llmrt_perplexity(llm, windows: list[list[int]]) -> float:
    """exp(mean negative log-likelihood) of every window token but the first, through llmrt."""
    from llmrt import SamplingParams

    params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0, detokenize=False)
    outputs = llm.generate([{"prompt_token_ids": w} for w in windows], params, use_tqdm=False)
    nll, count = 0.0, 0
    for window, output in zip(windows, outputs):
        for token, entry in zip(window[1:], output.prompt_logprobs[1:]):
            nll -= entry[token].logprob
            count += 1
    return math.exp(nll / count)


@torch.inference_mode()
def hf_perplexity(model_dir: str | Path, windows: list[list[int]], dtype: torch.dtype = torch.float32) -> float:
    """The same perplexity computed with Hugging Face transformers on the same weights."""
    from llmrt.testing.hf_reference import load_hf_model

    model = load_hf_model(str(model_dir), dtype)
    nll, count = 0.0, 0
    for window in windows:
        ids = torch.tensor([window])
        logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        nll -= logprobs.gather(1, ids[0, 1:].unsqueeze(1)).sum().item()
        count += len(window) - 1
    return math.exp(nll / count)
