"""Request: one sequence being generated, as the scheduler and KV cache manager see it."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from llmrt.sample.logprobs import TokenLogprobs
from llmrt.sampling_params import SamplingParams


class RequestStatus(enum.IntEnum):
    """Where a request is in its life. Values above ``PREEMPTED`` are finished."""

    WAITING = 0
    RUNNING = 1
    PREEMPTED = 2
    FINISHED_STOPPED = 3
    FINISHED_LENGTH = 4
    FINISHED_ABORTED = 5
    FINISHED_ERROR = 6

    @property
    def is_finished(self) -> bool:
        """True once the request will never be scheduled again."""
        return self > RequestStatus.PREEMPTED

    @property
    def finish_reason(self) -> str | None:
        """OpenAI's ``finish_reason`` for a finished status, else ``None``."""
        return _FINISH_REASONS.get(self)


_FINISH_REASONS = {
    RequestStatus.FINISHED_STOPPED: "stop",
    RequestStatus.FINISHED_LENGTH: "length",
    RequestStatus.FINISHED_ABORTED: "abort",
    RequestStatus.FINISHED_ERROR: "error",
}


@dataclass(eq=False)
class Request:
    """A prompt and the tokens generated for it so far.

    ``num_computed_tokens`` counts tokens whose KV is in the cache; each step the scheduler
    lets it catch up with ``num_tokens`` (prompt chunks and decode steps are the same thing).
    """

    request_id: str
    prompt_token_ids: list[int]
    sampling_params: SamplingParams
    arrival_time: float = field(default_factory=time.monotonic)
    priority: int = 0
    cache_salt: str | None = None
    max_tokens: int = 16
    """Hard cap on generated tokens (``sampling_params.max_tokens`` bounded by the context)."""
    output_token_ids: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    num_cached_tokens: int = -1
    """Prompt tokens found in the prefix cache at first scheduling (-1 until then)."""
    status: RequestStatus = RequestStatus.WAITING
    stop_reason: int | str | None = None
    num_preemptions: int = 0
    output_logprobs: list[TokenLogprobs] = field(default_factory=list)
    """One entry per output token when ``sampling_params.logprobs`` is set."""
    prompt_logprobs: list[TokenLogprobs | None] = field(default_factory=list)
    """One entry per prompt token (``None`` for the first) when ``prompt_logprobs`` is set."""
    pending_siblings: list[Request] = field(default_factory=list)
    """Further samples of the same prompt (``n > 1``): they draw their first token from this
    request's first logits and are then forked from it, sharing its KV blocks."""
    reserved_sequences: int = 1
    """Running sequences the scheduler keeps room for while this request runs: a beam-search
    root's width until its first beams are chosen (then each beam counts for itself)."""

    @property
    def num_prompt_tokens(self) -> int:
        """Length of the prompt."""
        return len(self.prompt_token_ids)

    @property
    def num_output_tokens(self) -> int:
        """Tokens generated so far."""
        return len(self.output_token_ids)

    @property
    def num_tokens(self) -> int:
        """Prompt plus generated tokens."""
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def all_token_ids(self) -> list[int]:
        """Prompt followed by generated tokens (a new list)."""
        return self.prompt_token_ids + self.output_token_ids

    def token_ids_slice(self, start: int, stop: int) -> list[int]:
        """Tokens ``[start, stop)`` of prompt+output without concatenating the whole list."""
        prompt_len = len(self.prompt_token_ids)
        if stop <= prompt_len:
            return self.prompt_token_ids[start:stop]
        if start >= prompt_len:
            return self.output_token_ids[start - prompt_len : stop - prompt_len]
        return self.prompt_token_ids[start:] + self.output_token_ids[: stop - prompt_len]

    def append_output_token(self, token_id: int) -> None:
        """Record one generated token."""
        self.output_token_ids.append(token_id)

    @property
    def is_finished(self) -> bool:
        """True once the request will never be scheduled again."""
        return self.status.is_finished
