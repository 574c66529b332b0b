"""Counting a request's tokens for ``usage`` as its deltas arrive."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmrt.server.messages import RequestDelta
from llmrt.server.protocol.common import PromptTokensDetails, Usage


@dataclass
class UsageTracker:
    """Prompt tokens per prompt, generated tokens, and prefix-cache hits."""

    prompt_lengths: list[int]
    completion_tokens: int = 0
    cached: dict[int, int] = field(default_factory=dict)

    def add(
        self, prompt_index: int, delta: RequestDelta, counted_tokens: int | None = None
    ) -> None:
        """Count one delta (``counted_tokens`` overrides its token count, e.g. 0 when scoring)."""
        self.completion_tokens += len(delta.token_ids) if counted_tokens is None else counted_tokens
        self.cached[prompt_index] = max(self.cached.get(prompt_index, 0), delta.num_cached_tokens)

    def usage(self) -> Usage:
        """The ``usage`` object."""
        prompt = sum(self.prompt_lengths)
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=self.completion_tokens,
            total_tokens=prompt + self.completion_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=sum(self.cached.values())),
        )
