"""``POST /v1/completions``: request, response and stream chunk."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from llmrt.server.protocol.common import CompletionLogprobs, StreamOptions, Usage
from llmrt.server.protocol.constraints import (
    INT64_MAX,
    Int64,
    LogitBias,
    Logprobs,
    N,
    Penalty,
    PositiveFloat,
    Probability,
    Stop,
    Temperature,
    TokenCount,
    TokenId,
    TopK,
    TopP,
)

PromptInput = str | Annotated[list[str | TokenId | list[TokenId]], msgspec.Meta(min_length=1)]
"""A string, a list of strings, a list of token ids, or a list of token-id lists."""


class CompletionRequest(msgspec.Struct):
    """OpenAI's (legacy) completion request plus vLLM's extra sampling fields."""

    prompt: PromptInput
    model: str | None = None
    best_of: N | None = None
    echo: bool | None = False
    frequency_penalty: Penalty | None = None
    logit_bias: LogitBias | None = None
    logprobs: Logprobs | None = None
    max_tokens: TokenCount | None = 16
    n: N | None = 1
    presence_penalty: Penalty | None = None
    seed: Int64 | None = None
    stop: Stop | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    user: str | None = None
    # vLLM extras
    use_beam_search: bool = False
    top_k: TopK | None = None
    min_p: Probability | None = None
    repetition_penalty: PositiveFloat | None = None
    length_penalty: float | None = None
    stop_token_ids: list[TokenId] | None = None
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    min_tokens: TokenCount | None = None
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)] | None = None
    prompt_logprobs: Logprobs | None = None
    add_special_tokens: bool = True
    priority: Int64 = 0
    request_id: str | None = None
    cache_salt: str | None = None


class CompletionChoice(msgspec.Struct):
    """One choice of a completion."""

    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class CompletionResponse(msgspec.Struct, kw_only=True):
    """``object: "text_completion"``."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    system_fingerprint: str | None = None


class CompletionChunk(msgspec.Struct, kw_only=True):
    """One server-sent event of a completion stream (also ``object: "text_completion"``)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
