"""Per-request logits processing, batched: masks, bias and penalties before sampling.

Order (as in vLLM): allowed-token mask, bad words, min-tokens stop masking, logit bias, then
repetition / frequency / presence penalties. Each is built as one dense tensor operation over
the rows that need it; rows that need none of them cost nothing.

- Repetition penalty (Hugging Face's definition): for every token in the prompt or the output,
  a positive logit is divided by the penalty, a negative one multiplied by it.
- Frequency and presence penalties (OpenAI's definition): subtract
  ``frequency * count + presence * (count > 0)``, counting output tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmrt.engine.request import Request


@dataclass
class LogitsProcessing:
    """The processing one step's sampling rows need; ``None`` fields are skipped."""

    allowed_mask: torch.Tensor | None = None
    banned: tuple[torch.Tensor, torch.Tensor] | None = None
    bias: torch.Tensor | None = None
    output_counts: torch.Tensor | None = None
    prompt_mask: torch.Tensor | None = None
    repetition: torch.Tensor | None = None
    frequency: torch.Tensor | None = None
    presence: torch.Tensor | None = None

    @property
    def is_empty(self) -> bool:
        """True when no row needs any processing."""
        return (self.allowed_mask is None and self.banned is None and self.bias is None
                and self.output_counts is None)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """Return processed float32 logits ``[rows, vocab]`` (a new tensor)."""
        logits = logits.clone()
        if self.allowed_mask is not None:
            logits.masked_fill_(~self.allowed_mask, float("-inf"))
        if self.banned is not None:
            logits[self.banned] = float("-inf")
        if self.bias is not None:
            logits += self.bias
        if self.output_counts is not None:
            logits = self._penalize(logits)
        return logits

    def _penalize(self, logits: torch.Tensor) -> torch.Tensor:
        seen = (self.output_counts > 0) | self.prompt_mask
        repetition = self.repetition.unsqueeze(1)
        penalized = torch.where(logits > 0, logits / repetition, logits * repetition)
        logits = torch.where(seen, penalized, logits)
        logits -= self.frequency.unsqueeze(1) * self.output_counts
        logits -= self.presence.unsqueeze(1) * (self.output_counts > 0).float()
        return logits


def build_logits_processing(requests: list[Request], vocab_size: int, device: torch.device) -> LogitsProcessing:
    """Gather what each request asks for into batched tensors."""
    processing = LogitsProcessing()
    rows = len(requests)
    params = [r.sampling_params for r in requests]
    if any(p.allowed_token_ids for p in params):
        mask = torch.ones(rows, vocab_size, dtype=torch.bool)
        for row, p in enumerate(params):
            if p.allowed_token_ids:
                mask[row] = False
                mask[row, p.allowed_token_ids] = True
        processing.allowed_mask = mask.to(device)
    banned = _banned_tokens(requests)
    if banned:
        row_idx, token_idx = zip(*banned)
        processing.banned = (torch.tensor(row_idx, device=device), torch.tensor(token_idx, device=device))
    if any(p.logit_bias for p in params):
        bias = torch.zeros(rows, vocab_size)
        for row, p in enumerate(params):
            for token, value in (p.logit_bias or {}).items():
                bias[row, token] = value
        processing.bias = bias.to(device)
    if any(_has_penalties(p) for p in params):
        _add_penalties(processing, requests, vocab_size, device)
    return processing


def _has_penalties(p) -> bool:
    return p.repetition_penalty != 1.0 or p.frequency_penalty != 0.0 or p.presence_penalty != 0.0


def _banned_tokens(requests: list[Request]) -> list[tuple[int, int]]:
    """(row, token) pairs masked this step: bad-word completions and early stop tokens."""
    banned: list[tuple[int, int]] = []
    for row, request in enumerate(requests):
        p = request.sampling_params
        if request.num_output_tokens < p.min_tokens:
            stops = set(p.stop_token_ids or ()) | set(p.all_stop_token_ids)
            if p.eos_token_id is not None and not p.ignore_eos:
                stops.add(p.eos_token_id)
            banned += [(row, token) for token in stops]
        for word in p.bad_words_token_ids:
            if _ends_with(request.output_token_ids, word[:-1]):
                banned.append((row, word[-1]))
    return banned


def _ends_with(tokens: list[int], prefix: list[int]) -> bool:
    return not prefix or (len(tokens) >= len(prefix) and tokens[-len(prefix):] == prefix)


def _add_penalties(processing: LogitsProcessing, requests: list[Request], vocab: int,
                   device: torch.device) -> None:
    rows = len(requests)
    counts = torch.zeros(rows, vocab)
    prompt_mask = torch.zeros(rows, vocab, dtype=torch.bool)
    for row, request in enumerate(requests):
        if request.output_token_ids:
            ids = torch.tensor(request.output_token_ids)
            counts[row].index_add_(0, ids, torch.ones(len(ids)))
        if request.sampling_params.repetition_penalty != 1.0:
            prompt_mask[row, torch.tensor(request.prompt_token_ids)] = True
    params = [r.sampling_params for r in requests]
    processing.output_counts = counts.to(device)
    processing.prompt_mask = prompt_mask.to(device)
    processing.repetition = torch.tensor([p.repetition_penalty for p in params], device=device)
    processing.frequency = torch.tensor([p.frequency_penalty for p in params], device=device)
    processing.presence = torch.tensor([p.presence_penalty for p in params], device=device)
