"""Messages between the front end and the engine process, encoded with msgspec msgpack.

Every message is a tagged ``msgspec.Struct`` (``array_like`` keeps frames small); the two
unions :data:`ToEngine` and :data:`FromEngine` are the whole protocol. Nothing is pickled:
a malformed frame fails to decode into these types and is rejected.
"""

from __future__ import annotations

from typing import Any

import msgspec

# -- front end -> engine ----------------------------------------------------------------------


class EngineStart(msgspec.Struct, tag="start", tag_field="kind", array_like=True):
    """The first message: the engine configuration (an ``EngineConfig`` as plain data)."""

    config: dict[str, Any]


class AddRequest(msgspec.Struct, tag="add", tag_field="kind", array_like=True):
    """Queue a tokenized prompt. ``sampling`` holds the SamplingParams keywords the user set."""

    request_id: str
    prompt_token_ids: list[int]
    sampling: dict[str, Any]
    priority: int = 0
    cache_salt: str | None = None


class AbortRequests(msgspec.Struct, tag="abort", tag_field="kind", array_like=True):
    """Abort requests by id; their KV blocks are freed at once. Unknown ids are ignored."""

    request_ids: list[str]


class Shutdown(msgspec.Struct, tag="shutdown", tag_field="kind", array_like=True):
    """Abort everything and exit."""


ToEngine = EngineStart | AddRequest | AbortRequests | Shutdown

# -- engine -> front end ----------------------------------------------------------------------


class EngineReady(msgspec.Struct, tag="ready", tag_field="kind", array_like=True):
    """The engine is loaded; what the front end needs to validate requests like it."""

    model_dir: str
    max_model_len: int
    vocab_size: int
    num_blocks: int
    backend: str
    eos_token_id: int | None
    generation_defaults: dict[str, Any]
    timings: dict[str, float]
    max_num_seqs: int | None = None


class TokenLogprob(msgspec.Struct, array_like=True):
    """One candidate token at one position: id, log-probability and its text."""

    token_id: int
    logprob: float
    text: str


class RequestDelta(msgspec.Struct, array_like=True):
    """What is new for one sequence (``index`` of ``n``) of a request since its last delta."""

    request_id: str
    index: int
    text: str
    token_ids: list[int]
    logprobs: list[list[TokenLogprob]] | None = None
    """Per new token: the sampled token (NaN logprob if unknown), then candidates by logprob."""
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    num_prompt_tokens: int = 0
    num_cached_tokens: int = 0
    prompt_logprobs: list[list[TokenLogprob]] | None = None
    """Per prompt position, like ``logprobs`` (first delta only, when asked for)."""


class EngineStats(msgspec.Struct, array_like=True):
    """A snapshot of the engine's state, sent after every step that changed something."""

    num_running: int
    num_waiting: int
    kv_cache_usage: float
    num_free_blocks: int
    num_blocks: int
    prefix_cache_queries: int
    prefix_cache_hits: int
    num_preemptions: int = 0


class Outputs(msgspec.Struct, tag="outputs", tag_field="kind", array_like=True):
    """The deltas of one step (possibly none) and the stats after it."""

    deltas: list[RequestDelta]
    stats: EngineStats


class RequestFailed(msgspec.Struct, tag="failed", tag_field="kind", array_like=True):
    """A request the engine refused or could not run; shaped like an OpenAI error."""

    request_id: str
    message: str
    type: str = "BadRequestError"
    param: str | None = None
    code: str | None = None
    status: int = 400


class EngineFailed(msgspec.Struct, tag="fatal", tag_field="kind", array_like=True):
    """The engine cannot go on (failed to start or crashed); the process exits after this."""

    message: str


FromEngine = EngineReady | Outputs | RequestFailed | EngineFailed

# -- codecs -----------------------------------------------------------------------------------

_encoder = msgspec.msgpack.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """The msgpack bytes of one message."""
    return _encoder.encode(message)


def to_engine_decoder() -> msgspec.msgpack.Decoder:
    """A decoder for messages the engine receives."""
    return msgspec.msgpack.Decoder(ToEngine)


def from_engine_decoder() -> msgspec.msgpack.Decoder:
    """A decoder for messages the front end receives."""
    return msgspec.msgpack.Decoder(FromEngine)
