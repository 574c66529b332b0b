"""``POST /tokenize`` and ``POST /detokenize`` (vLLM's extension endpoints)."""

from __future__ import annotations

from typing import Any

import msgspec

from llmrt.server.protocol.chat import ChatMessage
from llmrt.server.protocol.constraints import TokenId


class TokenizeRequest(msgspec.Struct):
    """Either ``prompt`` (text) or ``messages`` (rendered with the chat template)."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    tools: list[dict[str, Any]] | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    return_token_strs: bool = False


class TokenizeResponse(msgspec.Struct):
    """The token ids, their count and the context length."""

    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(msgspec.Struct):
    """Token ids to turn into text."""

    tokens: list[TokenId]
    model: str | None = None


class DetokenizeResponse(msgspec.Struct):
    """The decoded text."""

    prompt: str
