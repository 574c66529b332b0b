"""Logprobs in OpenAI's two response shapes, from the engine's per-token candidate lists.

Each position's list holds the chosen token first (logprob NaN when the engine did not
report it), then the candidates by decreasing logprob.
"""

from __future__ import annotations

import math

from llmrt.server.messages import TokenLogprob
from llmrt.server.protocol.common import ChatLogprobToken, CompletionLogprobs, TopLogprob

NEG_INF_LOGPROB = -9999.0
"""JSON has no -inf: a logprob of -inf is reported as this (as vLLM does)."""


def clean_logprob(value: float) -> float | None:
    """``None`` for unknown (NaN), a finite stand-in for -inf, else ``value``."""
    if math.isnan(value):
        return None
    return NEG_INF_LOGPROB if value == -math.inf else value


def _reported(value: float) -> float:
    """A logprob for a field that may not be null (unknown becomes -9999)."""
    cleaned = clean_logprob(value)
    return NEG_INF_LOGPROB if cleaned is None else cleaned


def _bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def chat_logprobs(positions: list[list[TokenLogprob]], top: int) -> list[ChatLogprobToken]:
    """Chat ``logprobs.content`` entries with ``top`` alternatives each."""
    result = []
    for candidates in positions:
        chosen = candidates[0]
        alternatives = [
            TopLogprob(c.text, _reported(c.logprob), _bytes(c.text))
            for c in candidates[1 : 1 + top]
        ]
        result.append(
            ChatLogprobToken(
                chosen.text, _reported(chosen.logprob), _bytes(chosen.text), alternatives
            )
        )
    return result


class CompletionLogprobsBuilder:
    """Accumulates the legacy ``logprobs`` object of one completion choice."""

    def __init__(self, top: int, offset: int = 0) -> None:
        self.top = top
        self.offset = offset
        self.result = CompletionLogprobs()

    def add(
        self, positions: list[list[TokenLogprob]], first_is_unscored: bool = False
    ) -> CompletionLogprobs:
        """Append positions; returns only what they added (for a stream chunk)."""
        part = CompletionLogprobs()
        for i, candidates in enumerate(positions):
            chosen = candidates[0]
            part.tokens.append(chosen.text)
            part.text_offset.append(self.offset)
            self.offset += len(chosen.text)
            if first_is_unscored and i == 0:
                part.token_logprobs.append(None)
                part.top_logprobs.append(None)
                continue
            part.token_logprobs.append(clean_logprob(chosen.logprob))
            top = {c.text: _reported(c.logprob) for c in candidates[1 : 1 + self.top]}
            if part.token_logprobs[-1] is not None:
                top.setdefault(chosen.text, part.token_logprobs[-1])
            part.top_logprobs.append(top)
        for name in ("tokens", "text_offset", "token_logprobs", "top_logprobs"):
            getattr(self.result, name).extend(getattr(part, name))
        return part
