"""``/v1/chat/completions``: a conversation in, assistant messages out (whole or streamed).

The conversation is rendered with the chat template and tokenized in the tokenizer thread,
checked like the engine checks it, then sent as one engine request with ``n`` sequences.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from llmrt.server.context import ServerContext
from llmrt.server.disconnect import until_disconnected
from llmrt.server.engine_client import RequestGroup
from llmrt.server.errors import bad_request
from llmrt.server.limits import MAX_MESSAGES
from llmrt.server.logprobs_format import chat_logprobs
from llmrt.server.messages import RequestDelta
from llmrt.server.metrics import observed
from llmrt.server.protocol.chat import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    DeltaMessage,
)
from llmrt.server.protocol.common import ChatLogprobs, ChatLogprobToken
from llmrt.server.request_params import chat_sampling
from llmrt.server.sse import sse_event, sse_response
from llmrt.server.usage_tracker import UsageTracker


def _content(message: ChatMessage, index: int) -> str | None:
    if message.content is None or isinstance(message.content, str):
        return message.content
    texts = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise bad_request(
                f"content parts of type {part.type!r} are not supported (text only)",
                f"messages[{index}].content",
            )
        texts.append(part.text)
    return "\n".join(texts)


def template_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """The conversation as the plain dicts chat templates expect; 400 if it is unusable."""
    if not messages:
        raise bad_request("messages must not be empty", "messages")
    if len(messages) > MAX_MESSAGES:
        raise bad_request(f"at most {MAX_MESSAGES} messages, got {len(messages)}", "messages")
    result = []
    for index, message in enumerate(messages):
        if not message.role:
            raise bad_request("every message needs a role", f"messages[{index}].role")
        entry: dict[str, Any] = {"role": message.role, "content": _content(message, index)}
        for name in ("name", "tool_calls", "tool_call_id"):
            value = getattr(message, name)
            if value is not None:
                entry[name] = value
        result.append(entry)
    return result


async def create_chat_completion(
    ctx: ServerContext, request: ChatCompletionRequest, http: Request[Any, Any, Any]
) -> Any:
    """Run a chat request; returns the response or a server-sent event stream."""
    ctx.check_model(request.model)
    ctx.check_ready()
    if request.response_format is not None and request.response_format.type != "text":
        raise bad_request(
            f"response_format {request.response_format.type!r} is not supported", "response_format"
        )
    messages = template_messages(request.messages)
    sampling = chat_sampling(request)
    _, token_ids = await ctx.tokenizer.render_chat(
        messages,
        add_generation_prompt=request.add_generation_prompt and not request.continue_final_message,
        continue_final_message=request.continue_final_message,
        tools=request.tools,
        chat_template_kwargs=request.chat_template_kwargs,
        add_special_tokens=request.add_special_tokens,
    )
    prompt = ctx.prepare(token_ids, sampling, request.priority, request.cache_salt)
    last = messages[-1]
    echo = (last["content"] or "") if request.echo and last["role"] == "assistant" else ""
    group = ctx.engine.submit([prompt], request.n or 1)
    run = ChatRun(ctx, request, len(prompt.token_ids), group, echo)
    if request.stream:
        return sse_response(run.events(), group.close)
    try:
        return await until_disconnected(http.receive, run.collect())
    finally:
        group.close()


@dataclass
class _Choice:
    index: int
    parts: list[str] = field(default_factory=list)
    logprobs: list[ChatLogprobToken] = field(default_factory=list)
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ChatRun:
    """One chat request in flight: turns deltas into choices."""

    def __init__(
        self,
        ctx: ServerContext,
        request: ChatCompletionRequest,
        prompt_len: int,
        group: RequestGroup,
        echo: str,
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.group = group
        self.echo = echo
        self.id = f"chatcmpl-{request.request_id or uuid.uuid4().hex}"
        self.created = int(time.time())
        self.usage = UsageTracker([prompt_len])
        self.choices = [_Choice(i) for i in range(request.n or 1)]
        self.top_logprobs = request.top_logprobs or 0
        self.observer = ctx.metrics.observer(group.arrival)  # type: ignore[union-attr]

    def _deltas(self) -> AsyncIterator[tuple[int, RequestDelta]]:
        return observed(self.group.__aiter__(), self.observer)

    def _apply(self, delta: RequestDelta) -> tuple[str, list[ChatLogprobToken] | None]:
        choice = self.choices[delta.index]
        self.usage.add(0, delta)
        text = delta.text
        if not choice.parts and self.echo:
            text = self.echo + text
        choice.parts.append(text)
        logprobs = (
            chat_logprobs(delta.logprobs, self.top_logprobs) if delta.logprobs is not None else None
        )
        choice.logprobs.extend(logprobs or [])
        choice.finish_reason, choice.stop_reason = delta.finish_reason, delta.stop_reason
        return text, logprobs

    async def collect(self) -> ChatCompletionResponse:
        """Wait for every sequence; the whole response."""
        async for _, delta in self._deltas():
            self._apply(delta)
        choices = [
            ChatChoice(
                c.index,
                AssistantMessage(content="".join(c.parts)),
                ChatLogprobs(c.logprobs) if self.request.logprobs else None,
                c.finish_reason,
                c.stop_reason,
            )
            for c in self.choices
        ]
        return ChatCompletionResponse(
            id=self.id,
            created=self.created,
            model=self.ctx.model_name,
            choices=choices,
            usage=self.usage.usage(),
        )

    async def events(self) -> AsyncIterator[bytes]:
        """Server-sent events: the role, a chunk per delta, then the usage chunk if asked for."""
        for choice in self.choices:
            yield sse_event(
                self._chunk(
                    [ChatChunkChoice(choice.index, DeltaMessage(role="assistant", content=""))]
                )
            )
        async for _, delta in self._deltas():
            text, logprobs = self._apply(delta)
            if text or logprobs or delta.finish_reason is not None:
                chunk_logprobs = ChatLogprobs(logprobs) if logprobs is not None else None
                yield sse_event(
                    self._chunk(
                        [
                            ChatChunkChoice(
                                delta.index,
                                DeltaMessage(content=text or None),
                                chunk_logprobs,
                                delta.finish_reason,
                                delta.stop_reason,
                            )
                        ]
                    )
                )
        options = self.request.stream_options
        if options is not None and options.include_usage:
            yield sse_event(self._chunk([], self.usage.usage()))

    def _chunk(self, choices: list[ChatChunkChoice], usage: Any = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.ctx.model_name,
            choices=choices,
            usage=usage,
        )
