"""``/v1/completions``: prompts in, text completions out (whole or streamed).

Prompts may be a string, a list of strings, a list of token ids or a list of token-id
lists; each becomes one engine request with ``n`` sequences, and choice ``i * n + j`` is
sequence ``j`` of prompt ``i``. ``echo`` puts the prompt before the completion (with its
logprobs when ``logprobs`` is set); ``echo`` with ``max_tokens: 0`` scores the prompt only.
"""

from __future__ import annotations

import math
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
from llmrt.server.limits import MAX_PROMPTS_PER_REQUEST
from llmrt.server.logprobs_format import CompletionLogprobsBuilder
from llmrt.server.messages import RequestDelta, TokenLogprob
from llmrt.server.metrics import observed
from llmrt.server.protocol.completion import (
    CompletionChoice,
    CompletionChunk,
    CompletionRequest,
    CompletionResponse,
)
from llmrt.server.request_params import completion_sampling
from llmrt.server.sse import sse_event, sse_response
from llmrt.server.usage_tracker import UsageTracker


@dataclass
class _Prompt:
    text: str | None
    token_ids: list[int]
    positions: list[list[TokenLogprob]] | None = None
    """Echoed prompt tokens with their logprobs (when ``echo`` and ``logprobs``)."""


@dataclass
class _Choice:
    index: int
    parts: list[str] = field(default_factory=list)
    logprobs: CompletionLogprobsBuilder | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    started: bool = False


def split_prompts(prompt: Any) -> tuple[list[str] | None, list[list[int]] | None]:
    """Texts or token-id lists from any accepted prompt form; 400 for mixed or empty ones."""
    if isinstance(prompt, str):
        return [prompt], None
    if not prompt:
        raise bad_request("prompt must not be empty", "prompt")
    if all(isinstance(p, str) for p in prompt):
        return list(prompt), None
    if all(isinstance(p, int) for p in prompt):
        return None, [list(prompt)]
    if all(isinstance(p, list) for p in prompt):
        return None, [list(p) for p in prompt]
    raise bad_request(
        "prompt must be a string, a list of strings, a list of token ids or a list of "
        "token-id lists",
        "prompt",
    )


async def _tokenized(ctx: ServerContext, request: CompletionRequest) -> list[_Prompt]:
    texts, id_lists = split_prompts(request.prompt)
    count = len(texts or id_lists or [])
    if count > MAX_PROMPTS_PER_REQUEST:
        raise bad_request(
            f"at most {MAX_PROMPTS_PER_REQUEST} prompts per request, got {count}", "prompt"
        )
    if texts is not None:
        ids = [await ctx.tokenizer.encode(t, request.add_special_tokens) for t in texts]
        return [_Prompt(t, i) for t, i in zip(texts, ids, strict=True)]
    assert id_lists is not None
    if request.echo:
        return [_Prompt(await ctx.tokenizer.decode(i), i) for i in id_lists]
    return [_Prompt(None, i) for i in id_lists]


async def _echo_positions(ctx: ServerContext, token_ids: list[int]) -> list[list[TokenLogprob]]:
    """Prompt tokens with unknown logprobs (the engine's prompt logprobs replace them)."""
    texts = await ctx.tokenizer.run(
        lambda: [ctx.tokenizer.tokenizer.decode([t]) for t in token_ids]
    )
    return [[TokenLogprob(t, math.nan, text)] for t, text in zip(token_ids, texts, strict=True)]


async def create_completion(
    ctx: ServerContext, request: CompletionRequest, http: Request[Any, Any, Any]
) -> Any:
    """Run a completion request; returns the response or a server-sent event stream."""
    ctx.check_model(request.model)
    ctx.check_ready()
    if request.suffix:
        raise bad_request("suffix is not supported", "suffix")
    sampling = completion_sampling(request)
    prompts = await _tokenized(ctx, request)
    engine_prompts = [
        ctx.prepare(p.token_ids, sampling, request.priority, request.cache_salt) for p in prompts
    ]
    for prompt, engine_prompt in zip(prompts, engine_prompts, strict=True):
        prompt.token_ids = engine_prompt.token_ids
        if request.echo and request.logprobs is not None:
            prompt.positions = await _echo_positions(ctx, prompt.token_ids)
    group = ctx.engine.submit(engine_prompts, request.n or 1)
    run = CompletionRun(ctx, request, prompts, group)
    if request.stream:
        return sse_response(run.events(), group.close)
    try:
        return await until_disconnected(http.receive, run.collect())
    finally:
        group.close()


class CompletionRun:
    """One completion request in flight: turns deltas into choices."""

    def __init__(
        self,
        ctx: ServerContext,
        request: CompletionRequest,
        prompts: list[_Prompt],
        group: RequestGroup,
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.prompts = prompts
        self.group = group
        self.n = request.n or 1
        self.id = f"cmpl-{request.request_id or uuid.uuid4().hex}"
        self.created = int(time.time())
        self.score_only = request.echo and request.max_tokens == 0
        self.usage = UsageTracker([len(p.token_ids) for p in prompts])
        self.choices: dict[int, _Choice] = {}
        self.observer = ctx.metrics.observer(group.arrival)  # type: ignore[union-attr]

    def _deltas(self) -> AsyncIterator[tuple[int, RequestDelta]]:
        return observed(self.group.__aiter__(), self.observer)

    def _apply(self, prompt_index: int, delta: RequestDelta) -> CompletionChoice:
        """Fold one delta into its choice; returns the part it adds (a stream chunk's choice)."""
        prompt = self.prompts[prompt_index]
        index = prompt_index * self.n + delta.index
        choice = self.choices.setdefault(index, _Choice(index))
        if choice.logprobs is None and self.request.logprobs is not None:
            choice.logprobs = CompletionLogprobsBuilder(self.request.logprobs)
        if delta.prompt_logprobs is not None and prompt.positions is not None:
            prompt.positions = delta.prompt_logprobs
        self.usage.add(prompt_index, delta, 0 if self.score_only else None)
        text, positions, unscored_first = "", [], False
        if not choice.started:
            choice.started = True
            if self.request.echo:
                text = prompt.text or ""
                positions, unscored_first = list(prompt.positions or []), True
        if not self.score_only:
            text += delta.text
            positions += delta.logprobs or []
        part = (
            choice.logprobs.add(positions, unscored_first) if choice.logprobs is not None else None
        )
        choice.parts.append(text)
        choice.finish_reason, choice.stop_reason = delta.finish_reason, delta.stop_reason
        return CompletionChoice(index, text, part, delta.finish_reason, delta.stop_reason)

    async def collect(self) -> CompletionResponse:
        """Wait for every sequence; the whole response."""
        async for prompt_index, delta in self._deltas():
            self._apply(prompt_index, delta)
        choices = [
            CompletionChoice(
                c.index,
                "".join(c.parts),
                c.logprobs.result if c.logprobs is not None else None,
                c.finish_reason,
                c.stop_reason,
            )
            for c in sorted(self.choices.values(), key=lambda c: c.index)
        ]
        return CompletionResponse(
            id=self.id,
            created=self.created,
            model=self.ctx.model_name,
            choices=choices,
            usage=self.usage.usage(),
        )

    async def events(self) -> AsyncIterator[bytes]:
        """Server-sent events: a chunk per delta, then the usage chunk if asked for."""
        async for prompt_index, delta in self._deltas():
            choice = self._apply(prompt_index, delta)
            if choice.text or choice.finish_reason is not None or choice.logprobs is not None:
                yield sse_event(self._chunk([choice]))
        options = self.request.stream_options
        if options is not None and options.include_usage:
            yield sse_event(self._chunk([], self.usage.usage()))

    def _chunk(self, choices: list[CompletionChoice], usage: Any = None) -> CompletionChunk:
        return CompletionChunk(
            id=self.id,
            created=self.created,
            model=self.ctx.model_name,
            choices=choices,
            usage=usage,
        )
