"""The batched sampler: one pass over the batch with per-request parameters.

Greedy rows take an argmax and never pay for sorting. Random rows without top-k, top-p or
min-p go straight to the backend's ``sample_categorical`` op (one draw per row from
``softmax(logits / t)``; on a GPU one fused pass over the logits). Otherwise temperature,
top-k, top-p and min-p filter the logits as batched tensor operations first. Seeded rows draw
from their own generator (an exponential race: argmax of ``p / E`` with ``E ~ Exp(1)``, exact
on every backend), so their tokens do not depend on what else is in the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from llmrt.ops import torch_ops
from llmrt.sampling_params import SamplingParams, SamplingType


@dataclass
class SamplingBatch:
    """Per-row sampling parameters as tensors, built once per step from the requests."""

    temperature: torch.Tensor
    """Each row's temperature; 0 for greedy rows."""
    top_k: torch.Tensor
    top_p: torch.Tensor
    min_p: torch.Tensor
    all_greedy: bool
    needs_top_k: bool
    needs_top_p: bool
    needs_min_p: bool
    generators: dict[int, torch.Generator]

    @property
    def needs_filtering(self) -> bool:
        """Some random row restricts its distribution (top-k, top-p or min-p)."""
        return self.needs_top_k or self.needs_top_p or self.needs_min_p

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
        temperature = [0.0 if g else p.temperature for p, g in zip(params, greedy)]
        top_k = [p.top_k for p in params]
        top_p = [p.top_p for p in params]
        min_p = [p.min_p for p in params]
        random_rows = [i for i, g in enumerate(greedy) if not g]
        return cls(
            temperature=to_device(temperature, torch.float32),
            top_k=to_device(top_k, torch.long),
            top_p=to_device(top_p, torch.float32),
            min_p=to_device(min_p, torch.float32),
            all_greedy=not random_rows,
            needs_top_k=any(top_k[i] > 0 for i in random_rows),
            needs_top_p=any(top_p[i] < 1.0 for i in random_rows),
            needs_min_p=any(min_p[i] > 0.0 for i in random_rows),
            generators={i: g for i, g in enumerate(generators) if g is not None},
        )


class Sampler:
    """Chooses one token per row of a float32 logits matrix.

    :param draw: the ``sample_categorical`` op (see :class:`llmrt.ops.Ops`) that draws the
        random rows without a seed; core's reference when not given.
    """

    def __init__(self, draw: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
        self.draw = draw or torch_ops.sample_categorical

    def __call__(
        self, logits: torch.Tensor, batch: SamplingBatch, need_probs: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sampled token ids ``LongTensor[N]``, and the final distribution when asked for.

        The distribution of a greedy row is the softmax of its (processed) logits.
        """
        if batch.all_greedy and not need_probs:
            return logits.argmax(dim=-1), None
        if not (need_probs or batch.needs_filtering or batch.generators):
            return self.draw(logits, batch.temperature), None
        filtered = self.filtered_logits(logits, batch)
        tokens = self.draw(filtered, (batch.temperature > 0).float())
        probs = torch.softmax(filtered, dim=-1) if need_probs or batch.generators else None
        for row, generator in batch.generators.items():
            noise = torch.empty_like(probs[row]).exponential_(generator=generator)
            tokens[row] = (probs[row] / noise).argmax()
        return tokens, probs

    @staticmethod
    def filtered_logits(logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
        """``logits / t`` (greedy rows unscaled) with entries outside top-k, top-p, min-p at -inf."""
        temperature = batch.temperature
        logits = logits / torch.where(temperature > 0, temperature, 1.0).unsqueeze(1)
        if batch.needs_top_k or batch.needs_top_p:
            logits = _apply_top_k_top_p(logits, batch)
        if batch.needs_min_p:  # p_i < min_p * p_max  <=>  logit_i < logit_max + log(min_p)
            floor = logits.max(dim=-1, keepdim=True).values + torch.log(batch.min_p).unsqueeze(1)
            logits = logits.masked_fill(logits < floor, float("-inf"))
        return logits


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
