"""Schemas shared by chat and completions: usage, stream options, logprobs."""

from __future__ import annotations

import msgspec


class StreamOptions(msgspec.Struct):
    """``stream_options``: ``include_usage`` adds a last chunk (empty ``choices``) with usage."""

    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


class PromptTokensDetails(msgspec.Struct):
    """``usage.prompt_tokens_details``: prompt tokens served from the prefix cache."""

    cached_tokens: int = 0


class Usage(msgspec.Struct):
    """Token counts of a request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None


class CompletionLogprobs(msgspec.Struct):
    """Legacy completions logprobs, as evaluation harnesses read them."""

    text_offset: list[int] = msgspec.field(default_factory=list)
    token_logprobs: list[float | None] = msgspec.field(default_factory=list)
    tokens: list[str] = msgspec.field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = msgspec.field(default_factory=list)


class TopLogprob(msgspec.Struct):
    """One alternative token in chat logprobs."""

    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatLogprobToken(msgspec.Struct):
    """One generated token in chat logprobs, with its alternatives."""

    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = msgspec.field(default_factory=list)


class ChatLogprobs(msgspec.Struct):
    """``choices[i].logprobs`` of a chat completion."""

    content: list[ChatLogprobToken] | None = None
