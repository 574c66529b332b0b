"""SchedulerOutput: the boundary object between the scheduler and a backend's model runner."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmrt.engine.request import Request


@dataclass
class ScheduledRequest:
    """``num_new_tokens`` tokens of one request to compute this step.

    The tokens are ``request.token_ids_slice(start, start + num_new_tokens)``; their positions
    are ``start ..``; ``block_ids`` is the request's whole block table after allocation. When the
    chunk reaches the end of the request's known tokens, the runner samples one new token.
    Under asynchronous scheduling a chunk may end one token *past* the known tokens: its last
    token was sampled by the previous step and is still on its way to the host (the runner
    reads it from the device), and it samples too.
    """

    request: Request
    start: int
    num_new_tokens: int
    block_ids: list[int]

    @property
    def samples(self) -> bool:
        """True when this chunk ends at (or, with a token in flight, one past) the request's last
        known token: a token is sampled. Read it before the step's tokens are recorded."""
        return self.start + self.num_new_tokens >= self.request.num_tokens


@dataclass
class SchedulerOutput:
    """What runs in one engine step, in batch order, plus KV block moves to do first."""

    scheduled: list[ScheduledRequest] = field(default_factory=list)
    num_batched_tokens: int = 0
    preempted_request_ids: list[str] = field(default_factory=list)
    finished_request_ids: list[str] = field(default_factory=list)
    """Requests finished or aborted since the previous step (runners drop their state)."""
    copy_blocks: list[tuple[int, int]] = field(default_factory=list)
    """``(src, dst)`` device block copies (copy-on-write), done before the forward pass."""
    swap_out: list[tuple[int, int]] = field(default_factory=list)
    """``(device_block, host_block)`` copies to host memory, done before the forward pass."""
    swap_in: list[tuple[int, int]] = field(default_factory=list)
    """``(host_block, device_block)`` copies back to the device, done before the forward pass."""

    @property
    def is_empty(self) -> bool:
        """True when nothing is computed this step."""
        return not self.scheduled
