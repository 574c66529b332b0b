"""The batched sampler: one pass over the batch with per-request parameters.

Greedy rows take an argmax and never pay for sorting. Random rows go through temperature,
top-k, top-p and min-p filtering as batched tensor operations, then an exponential race
(argmax of p / E with E ~ Exp(1)), which draws exactly from p. Seeded rows draw their noise from
their own generator, so their tokens do not depend on what else is in the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from llmrt.sampling_params import SamplingParams, SamplingType


@dataclass
class SamplingBatch:
    """Per-row sampling parameters as tensors, built once per step from the requests."""

    temperature: torch.Tensor
    top_k: torch.Tensor
    top_p: torch.Tensor
    min_p: torch.Tensor
    greedy: torch.Tensor
    all_greedy: bool
    needs_top_k: bool
    needs_top_p: bool
    needs_min_p: bool
    generators: dict[int, torch.Generator]

    @classmethod
    def build(
        cls,
        params: list[SamplingParams],
        generators: list[torch.Generator | None],
        device: torch.device | None = None,
        to_device: Callable[..., torch.Tensor] | None = None,
    ) -> SamplingBatch:
        """Gather each row's parameters; ``generators[i]`` is row i's seeded generator or None.

        Tensors are made on ``device``, or by ``to_device(values, dtype)`` when given (the model
        runner passes one that does not wait for the device).
        """
        if to_device is None:
            to_device = lambda values, dtype: torch.tensor(values, dtype=dtype, device=device)  # noqa: E731
        greedy = [p.sampling_type == SamplingType.GREEDY for p in params]
        temperature = [1.0 if g else p.temperature for p, g in zip(params, greedy)]
        top_k = [p.top_k for p in params]
        top_p = [p.top_p for p in params]
        min_p = [p.min_p for p in params]
        random_rows = [i for i, g in enumerate(greedy) if not g]
        return cls(
            temperature=to_device(temperature, torch.float32),
            top_k=to_device(top_k, torch.long),
            top_p=to_device(top_p, torch.float32),
            min_p=to_device(min_p, torch.float32),
            greedy=to_device(greedy, torch.bool),
            all_greedy=not random_rows,
            needs_top_k=any(top_k[i] > 0 for i in random_rows),
            needs_top_p=any(top_p[i] < 1.0 for i in random_rows),
            needs_min_p=any(min_p[i] > 0.0 for i in random_rows),
            generators={i: g for i, g in enumerate(generators) if g is not None},
        )


class Sampler:
    """Chooses one token per row of a float32 logits matrix."""

    def __call__(
        self, logits: torch.Tensor, batch: SamplingBatch, need_probs: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sampled token ids ``LongTensor[N]``, and the final distribution when asked for.

        The distribution of a greedy row is the softmax of its (processed) logits.
        """
        greedy_tokens = logits.argmax(dim=-1)
        if batch.all_greedy and not need_probs:
            return greedy_tokens, None
        probs = self.probabilities(logits, batch)
        if batch.all_greedy:
            return greedy_tokens, probs
        random_tokens = self._race(probs, batch)
        return torch.where(batch.greedy, greedy_tokens, random_tokens), probs

    def probabilities(self, logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
        """The distribution each random row samples from, after all filtering."""
        logits = logits / batch.temperature.unsqueeze(1)
        if batch.needs_top_k or batch.needs_top_p:
            logits = _apply_top_k_top_p(logits, batch)
        probs = torch.softmax(logits, dim=-1)
        if batch.needs_min_p:
            threshold = probs.max(dim=-1, keepdim=True).values * batch.min_p.unsqueeze(1)
            probs = probs.masked_fill(probs < threshold, 0.0)
        return probs

    @staticmethod
    def _race(probs: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
        noise = torch.empty_like(probs).exponential_()
        for row, generator in batch.generators.items():
            noise[row].exponential_(generator=generator)
        return (probs / noise).argmax(dim=-1)


def _apply_top_k_top_p(logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
    """Mask logits outside each row's top-k and top-p set (one sort for the batch)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    vocab = logits.shape[-1]
    if batch.needs_top_k:
        k = torch.where(batch.top_k > 0, batch.top_k, vocab).clamp(max=vocab)
        kth = sorted_logits.gather(1, (k - 1).unsqueeze(1))
        sorted_logits = sorted_logits.masked_fill(sorted_logits < kth, float("-inf"))
    if batch.needs_top_p:
        sorted_probs = sorted_logits.softmax(dim=-1)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs
        sorted_logits = sorted_logits.masked_fill(before >= batch.top_p.unsqueeze(1), float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
