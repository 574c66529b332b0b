"""Benchmark prompts: the random dataset (token ids of chosen lengths) and custom JSONL files."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class SampleRequest:
    """One benchmark request: its prompt, the prompt's length and the output length to ask for."""

    prompt: str | list[int]
    prompt_len: int
    expected_output_len: int


def _lengths(rng: random.Random, mean: int, ratio: float, count: int) -> list[int]:
    low, high = max(1, int(mean * (1 - ratio))), max(1, int(mean * (1 + ratio)))
    return [rng.randint(low, high) for _ in range(count)]


def _ordinary_ids(tokenizer: Any) -> list[int]:
    """Vocabulary ids that are not special tokens."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    return [t for t in range(len(tokenizer)) if t not in special]


def random_requests(
    tokenizer: Any,
    num: int,
    input_len: int,
    output_len: int,
    range_ratio: float = 0.0,
    prefix_len: int = 0,
    seed: int = 0,
    as_text: bool = False,
) -> list[SampleRequest]:
    """``num`` prompts of random ordinary tokens (a shared prefix of ``prefix_len`` first).

    Prompts are token ids, so the server sees exactly the chosen lengths; with ``as_text``
    they are decoded (for the chat endpoint) and the length is that of the re-encoded text.
    """
    rng = random.Random(seed)
    vocab = _ordinary_ids(tokenizer)
    prefix = [rng.choice(vocab) for _ in range(prefix_len)]
    inputs = _lengths(rng, input_len, range_ratio, num)
    outputs = _lengths(rng, output_len, range_ratio, num)
    samples = []
    for in_len, out_len in zip(inputs, outputs, strict=True):
        ids = prefix + [rng.choice(vocab) for _ in range(in_len)]
        if as_text:
            text = tokenizer.decode(ids)
            samples.append(
                SampleRequest(text, len(tokenizer.encode(text, add_special_tokens=False)), out_len)
            )
        else:
            samples.append(SampleRequest(ids, len(ids), out_len))
    return samples


def custom_requests(path: str, tokenizer: Any, num: int, output_len: int) -> list[SampleRequest]:
    """Prompts from a JSONL file of ``{"prompt": "..."}`` lines (the first ``num``)."""
    samples = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if len(samples) >= num:
                break
            if line.strip():
                prompt = json.loads(line)["prompt"]
                samples.append(SampleRequest(prompt, len(tokenizer.encode(prompt)), output_len))
    if not samples:
        raise ValueError(f"{path} holds no prompts")
    return samples


# -- the "nano" workload (DESIGN.md section 5) -------------------------------------------------

NANO_NUM_PROMPTS = 256
NANO_LEN_RANGE = (100, 1024)
NANO_MAX_TOKEN_ID = 10000
NANO_TOTALS = (142_827, 133_966)
"""Prompt and output tokens of the full nano workload; printed so that runs are comparable."""


def nano_requests(
    num: int = NANO_NUM_PROMPTS, len_range: tuple[int, int] = NANO_LEN_RANGE, seed: int = 0
) -> list[SampleRequest]:
    """The nano-vllm benchmark: ``num`` prompts of random ids in ``[0, 10000]``, then ``num``
    output lengths, every length uniform in ``len_range`` (inclusive), from ``Random(seed)``.

    The defaults give the published workload (:data:`NANO_TOTALS`); a smaller ``num`` and
    range scale its shape down to small machines. EOS must be ignored for the lengths to hold.
    """
    rng = random.Random(seed)
    low, high = len_range
    prompts = [
        [rng.randint(0, NANO_MAX_TOKEN_ID) for _ in range(rng.randint(low, high))] for _ in range(num)
    ]
    outputs = [rng.randint(low, high) for _ in range(num)]
    return [SampleRequest(ids, len(ids), out) for ids, out in zip(prompts, outputs, strict=True)]


def is_full_nano(num: int, len_range: tuple[int, int], seed: int) -> bool:
    """Whether these arguments give the published nano workload."""
    return (num, tuple(len_range), seed) == (NANO_NUM_PROMPTS, NANO_LEN_RANGE, 0)
