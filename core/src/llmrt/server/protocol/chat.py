"""``POST /v1/chat/completions``: request, response and stream chunk."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from llmrt.server.protocol.common import ChatLogprobs, StreamOptions, Usage
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


class ContentPart(msgspec.Struct):
    """One part of a message's content; only ``{"type": "text", "text": ...}`` is supported."""

    type: str
    text: str | None = None


class ChatMessage(msgspec.Struct):
    """One message of the conversation."""

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ResponseFormat(msgspec.Struct):
    """``response_format``; only ``{"type": "text"}`` is supported."""

    type: str = "text"


class ChatCompletionRequest(msgspec.Struct):
    """OpenAI's chat completion request plus vLLM's extra sampling fields."""

    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    model: str | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: LogitBias | None = None
    logprobs: bool | None = False
    top_logprobs: Logprobs | None = None
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    n: N | None = 1
    presence_penalty: Penalty | None = None
    response_format: ResponseFormat | None = None
    seed: Int64 | None = None
    stop: Stop | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
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
    echo: bool = False
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    add_special_tokens: bool = False
    chat_template_kwargs: dict[str, Any] | None = None
    priority: Int64 = 0
    request_id: str | None = None
    cache_salt: str | None = None


class AssistantMessage(msgspec.Struct):
    """The generated message."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None


class ChatChoice(msgspec.Struct):
    """One choice of a chat completion."""

    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ChatCompletionResponse(msgspec.Struct, kw_only=True):
    """``object: "chat.completion"``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class DeltaMessage(msgspec.Struct, omit_defaults=True):
    """What a stream chunk adds to a choice's message."""

    role: str | None = None
    content: str | None = None


class ChatChunkChoice(msgspec.Struct):
    """One choice of a stream chunk."""

    index: int
    delta: DeltaMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    """``object: "chat.completion.chunk"``, one server-sent event of a stream."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
