"""Scheduler: continuous batching with one token budget per step (vLLM v1's design).

There are no prefill and decode phases. Each step every request's ``num_computed_tokens``
catches up with its ``num_tokens`` as far as the budget (``max_num_batched_tokens``) allows:
a decode is one token, a long prompt is computed in chunks over several steps, and both mix in
one batch. Running requests are served first, in policy order (oldest or most important first),
then waiting requests are admitted while budget, sequence slots (``max_num_seqs``) and KV
blocks last. A newly admitted request starts after its prefix-cache hit.

Preemption (recompute): when a running request cannot get blocks, the *last* running request
in policy order (the latest arrival, or the least important) is preempted: its blocks are
freed, it restarts from token 0 and goes back to the front of the waiting queue. Because the
running list is kept in policy order and served from the front, the victim is never a request
already scheduled this step, and the first request in policy order is never preempted while
another one holds blocks, so it always progresses: no request starves. In a step with a
preemption no waiting request is admitted (it would take the blocks just freed), except in a
stalled step (below).

A request that cannot fit in the whole KV cache (it is the only one holding blocks and still
cannot grow) is finished with ``FINISHED_ERROR`` and a ``stop_reason`` saying why; the next
:meth:`Scheduler.update_from_output` returns it. The engine should still refuse, at startup
or admission, a ``max_model_len`` larger than the cache (as vLLM does) so this stays rare.

Requests waiting for tokens from outside the scheduler (beams that reported their next-token
logprobs, until their beam group chooses; see ``engine/beam_search.py``) hold blocks while they
have nothing to compute. Two rules keep them from stalling the engine:

- A preempted request with nothing to compute is *parked*, not queued: it is readmitted only
  once it is given tokens (:meth:`Scheduler.append_output_tokens`), so it never takes blocks
  ahead of the requests its group is still waiting for.
- When a step would compute nothing, no token is on its way and the first waiting request
  cannot get a seat or blocks, running requests are preempted, last first, until it can (or it
  is found too large for the whole cache). And a running request that would have to preempt
  itself preempts the last idle request instead. Each such step lets a request that still owes
  its group a report compute, so groups advance.

With ``preemption_mode="swap"`` (the KV cache manager must have a host swap space) a victim's
KV is copied to host memory instead (``SchedulerOutput.swap_out``) and keeps its progress; it is
copied back when readmitted (``swap_in``). A victim that does not fit in the swap space is
recomputed. A model runner applies, before the forward pass and in this order: ``swap_out``,
``swap_in``, ``copy_blocks``. (Swap-ins happen only in steps without a preemption, or, in a
stalled step, after all of its swap-outs, so host blocks are never reused within one step.)

Asynchronous scheduling (``engine/async_scheduling.py``): after a step is launched, the engine
calls :meth:`Scheduler.expect_tokens`; until :meth:`Scheduler.update_from_output` brings that
step's tokens, each of its sampling requests counts one more token (in flight) and is scheduled
to compute it; the runner reads the token from the device. A request whose in-flight token is
sure to end it by length is not scheduled. One that ends by a stop token or string is finished
when its token arrives, and the token its next step sampled is discarded.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from typing import Any

from llmrt.config import SchedulerConfig
from llmrt.engine.request import Request, RequestStatus
from llmrt.kv.kv_cache_manager import KVCacheManager
from llmrt.sched.output import ScheduledRequest, SchedulerOutput
from llmrt.sched.request_queue import RequestQueue, create_request_queue
from llmrt.sched.stop import check_stop


class Scheduler:
    """Decides which tokens of which requests run each step; registered as ``"fcfs"``.

    :param scheduler_config: budget, ``max_num_seqs``, ``max_model_len``, policy, preemption mode.
    :param kv_cache_manager: owner of the requests' block tables.
    """

    def __init__(self, scheduler_config: SchedulerConfig, kv_cache_manager: KVCacheManager) -> None:
        mode = scheduler_config.preemption_mode
        if mode not in ("recompute", "swap"):
            raise ValueError(f"unknown preemption_mode {mode!r}; choose 'recompute' or 'swap'")
        host_swap = kv_cache_manager.host_swap
        if mode == "swap" and (host_swap is None or host_swap.num_blocks == 0):
            raise ValueError("preemption_mode='swap' needs host swap space (swap_space_bytes > 0)")
        self.config = scheduler_config
        self.kv_cache_manager = kv_cache_manager
        self._seq = itertools.count()
        self._order: dict[str, int] = {}
        self.waiting: RequestQueue = create_request_queue(scheduler_config.policy, self._sort_key)
        self.running: list[Request] = []
        """Running requests in policy order (the last one is the next preemption victim)."""
        self.requests: dict[str, Request] = {}
        """Every unfinished request by id."""
        self._parked: dict[str, Request] = {}
        """Preempted requests with nothing to compute, until they are given tokens."""
        self._finished_ids: list[str] = []
        self._in_flight: set[str] = set()
        """Requests whose last sampled token has not been recorded yet (asynchronous scheduling)."""
        self._pending_reports: list[Request] = []
        """Requests changed outside a step (errors in schedule, appended tokens): reported next."""
        self.num_preemptions = 0
        """Preemptions since the scheduler started (for metrics and tests)."""

    # -- requests --------------------------------------------------------------------------

    def add_request(self, request: Request) -> None:
        """Queue a request; ``ValueError`` for an empty or too long prompt or a duplicate id."""
        max_len = self.config.max_model_len
        if request.request_id in self.requests:
            raise ValueError(f"request id {request.request_id!r} is already in use")
        if not request.prompt_token_ids:
            raise ValueError("the prompt is empty; at least one token is needed")
        if request.num_prompt_tokens >= max_len:
            raise ValueError(
                f"This model's maximum context length is {max_len} tokens. However, you "
                f"requested {request.num_prompt_tokens} tokens in the prompt, which leaves no "
                "room to generate."
            )
        request.status = RequestStatus.WAITING
        self._order[request.request_id] = next(self._seq)
        self.requests[request.request_id] = request
        self.waiting.add(request)

    def finish_requests(
        self, request_ids: str | Iterable[str], status: RequestStatus
    ) -> list[Request]:
        """Finish requests at once (aborts, stop strings) and free their blocks.

        Idempotent: unknown or already finished ids are ignored. ``stop_reason`` is left as it
        is (set it before calling). Call between steps, not between ``schedule`` and
        ``update_from_output``. Returns the requests this call finished.
        """
        if not status.is_finished:
            raise ValueError(f"{status.name} is not a finished status")
        ids = [request_ids] if isinstance(request_ids, str) else request_ids
        finished: list[Request] = []
        queued: list[Request] = []
        for request_id in ids:
            request = self.requests.get(request_id)
            if request is None:
                continue
            if request.status == RequestStatus.RUNNING:
                self.running.remove(request)
            else:
                queued.append(request)
            request.status = status
            self._release(request)
            finished.append(request)
        if queued:
            self._dequeue(queued)
        return finished

    def fork_request(self, parent: Request, child: Request) -> None:
        """Add ``child`` as a running copy of ``parent`` that shares its KV blocks.

        For parallel sampling and beam search: ``child``'s tokens must equal ``parent``'s up to
        ``parent.num_computed_tokens``; the first of them to write into a still-shared block
        gets a copy of it (copy-on-write). The child sorts right after its parent.

        A child without a seat (a beam forked while seats its group had given up, with its
        beams preempted, went to other requests), or of a preempted parent, waits at the front
        of the queue instead and computes its own KV when admitted.
        """
        if child.request_id in self.requests:
            raise ValueError(f"request id {child.request_id!r} is already in use")
        self._order[child.request_id] = next(self._seq)
        self.requests[child.request_id] = child
        child.num_cached_tokens = parent.num_cached_tokens
        reserved = any(child is sibling for sibling in parent.pending_siblings)  # n > 1: seats kept
        if parent.status != RequestStatus.RUNNING or (not reserved and not self._has_seat(child)):
            child.status = RequestStatus.PREEMPTED  # waiting, with outputs to come
            self.waiting.push_front(child)
            return
        self.kv_cache_manager.fork(parent, child)
        child.status = RequestStatus.RUNNING
        bisect.insort(self.running, child, key=self._sort_key)

    def append_output_tokens(self, request: Request, token_ids: list[int]) -> bool:
        """Give a request tokens chosen outside the sampler (a beam's next token, a forked
        sample's first one), with the usual stop checks; True if it finished.

        Call between steps. A finished request is released and reported by the next
        :meth:`update_from_output`.
        """
        self._record_tokens(request, token_ids)
        self._pending_reports.append(request)
        return request.is_finished

    def _record_tokens(self, request: Request, token_ids: list[int]) -> None:
        """Append tokens up to the first that stops the request; release it if it finished.

        A request preempted while its token was in flight is in the waiting queue.
        """
        queued = request.status == RequestStatus.PREEMPTED
        for token in token_ids:
            request.append_output_token(token)
            if check_stop(request, self.config.max_model_len):
                break
        if request.is_finished:
            if queued:
                self._dequeue([request])
            else:
                self.running.remove(request)
            self._release(request)
        elif self._parked.pop(request.request_id, None) is not None:
            self.waiting.push_front(request)  # it has tokens to compute again

    def get_request(self, request_id: str) -> Request | None:
        """The unfinished request with this id, or ``None``."""
        return self.requests.get(request_id)

    def has_unfinished_requests(self) -> bool:
        """True while a request waits or runs, or a finished one is not yet reported."""
        return bool(self.requests) or bool(self._pending_reports)

    @property
    def num_running(self) -> int:
        """Requests holding KV blocks and being computed."""
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        """Requests queued for admission (new or preempted, parked ones included)."""
        return len(self.waiting) + len(self._parked)

    def reset_prefix_cache(self) -> bool:
        """Forget all cached KV blocks (see :meth:`KVCacheManager.reset_prefix_cache`)."""
        return self.kv_cache_manager.reset_prefix_cache()

    # -- the step --------------------------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        """Choose this step's work and allocate its KV blocks.

        Advances each scheduled request's ``num_computed_tokens`` by its chunk (the chunk's
        ``start`` is the value before). Returns the batch, preempted ids, ids finished since
        the previous step, and block copies to do before the forward pass.
        """
        output = SchedulerOutput()
        budget = self._schedule_running(output, self.config.max_num_batched_tokens)
        if not output.preempted_request_ids:
            self._schedule_waiting(output, budget)
        output.copy_blocks = self.kv_cache_manager.take_pending_copies()
        output.finished_request_ids, self._finished_ids = self._finished_ids, []
        return output

    def update_from_output(
        self, output: SchedulerOutput, sampled_token_ids: dict[str, list[int]]
    ) -> list[Request]:
        """Record the tokens sampled in a step and finish requests that stop.

        :param output: what :meth:`schedule` returned for the step.
        :param sampled_token_ids: new tokens by request id, for chunks that ``samples``.
        :return: requests that got tokens or finished, including any that :meth:`schedule`
            finished with an error.
        """
        updated, self._pending_reports = self._pending_reports, []
        in_flight = self._in_flight
        for chunk in output.scheduled:
            request = chunk.request
            if in_flight:
                in_flight.discard(request.request_id)
            new_tokens = sampled_token_ids.get(request.request_id)
            if request.is_finished or not new_tokens or not chunk.samples:
                continue
            self._record_tokens(request, new_tokens)
            updated.append(request)
        return updated

    def expect_tokens(self, output: SchedulerOutput) -> None:
        """Mark the sampling requests of a launched step as having one token in flight.

        Until :meth:`update_from_output` records that step, :meth:`schedule` treats each of
        them as one token longer (asynchronous scheduling). Call it after the update of the
        step before.
        """
        self._in_flight.update(c.request.request_id for c in output.scheduled
                               if c.samples and not c.request.is_finished)

    # -- scheduling helpers ----------------------------------------------------------------

    def _schedule_running(self, output: SchedulerOutput, budget: int) -> int:
        index = 0
        while index < len(self.running) and budget > 0:
            request = self.running[index]
            num_new = min(self._num_tokens_to_compute(request), budget)
            if num_new <= 0:
                index += 1
                continue
            block_ids = self._allocate_or_preempt(request, num_new, output)
            if block_ids is None:
                continue  # the request left the running list (it was the last one)
            self._add_chunk(output, request, num_new, block_ids)
            budget -= num_new
            if index >= len(self.running) or self.running[index] is not request:
                index = self.running.index(request)  # an idle request ahead of it was preempted
            index += 1
        return budget

    def _num_tokens_to_compute(self, request: Request) -> int:
        """Known tokens without KV, plus a token in flight unless that token surely ends the
        request by length (then nothing: it finishes when the token arrives)."""
        missing = request.num_tokens - request.num_computed_tokens
        if not self._in_flight or request.request_id not in self._in_flight:
            return missing
        if (request.num_output_tokens + 1 >= request.max_tokens
                or request.num_tokens + 1 >= self.config.max_model_len):
            return 0
        return missing + 1

    def _allocate_or_preempt(
        self, request: Request, num_new: int, output: SchedulerOutput
    ) -> list[int] | None:
        while True:
            block_ids = self.kv_cache_manager.allocate_slots(request, num_new)
            if block_ids is not None:
                return block_ids
            victim = self.running[-1]
            if victim is request:  # rather than restart itself beside requests that wait idle
                victim = self._idle_victim(request, output) or request
            if victim is request and len(self.running) == 1:
                self.running.pop()
                self._finish_too_large(request)
                return None
            self._preempt(victim, output)
            if victim is request:
                return None

    def _schedule_waiting(self, output: SchedulerOutput, budget: int) -> None:
        if not self.waiting or (len(self.running) >= self.config.max_num_seqs and not self._stalled(output)):
            return  # (a full running list: no need to count its seats every step)
        seats = self._seats()
        while self.waiting and budget > 0:
            request = self.waiting.peek()
            # Its samples may not join the running list beyond max_num_seqs (an idle engine admits
            # anyway: validation rejects n > max_num_seqs, nothing waits forever).
            seated = not seats or seats + _sequences(request) <= self.config.max_num_seqs
            allocated = self._allocate_waiting(request, budget, output) if seated else None
            if allocated is None and self.running and not self._stalled(output):
                break  # wait for seats or blocks; later arrivals do not overtake
            self.waiting.pop()
            if allocated is None and self.running:
                allocated = self._preempt_for(request, budget, output)
                seats = self._seats()
            if allocated is None:
                self._finish_too_large(request)
                continue
            num_new, block_ids = allocated
            request.status = RequestStatus.RUNNING
            bisect.insort(self.running, request, key=self._sort_key)
            self._add_chunk(output, request, num_new, block_ids)
            budget -= num_new
            seats += _sequences(request)

    def _stalled(self, output: SchedulerOutput) -> bool:
        """True when this step would compute nothing and no token is on its way: the running
        requests hold their blocks while waiting for tokens from outside the scheduler (beams
        that reported, waiting for their group's choice), so a waiting request that needs those
        blocks would wait forever."""
        return not output.scheduled and not self._in_flight

    def _preempt_for(
        self, request: Request, budget: int, output: SchedulerOutput
    ) -> tuple[int, list[int]] | None:
        """Preempt running requests, last first, until ``request`` (taken off the waiting queue)
        has a seat and its first chunk's blocks; ``None`` if it does not fit even in an empty
        cache (then nobody is preempted when its first chunk alone outnumbers the cache's
        blocks). The preempted ones are parked or wait behind ``request``."""
        kv = self.kv_cache_manager
        first_chunk = min(request.num_tokens, budget)  # at least this much, with or without a prefix hit
        if not kv.is_swapped(request) and -(-first_chunk // kv.block_size) > kv.num_blocks:
            return None
        allocated = None
        while allocated is None and self.running:
            self._preempt(self.running[-1], output)
            if self._has_seat(request):
                allocated = self._allocate_waiting(request, budget, output)
        return allocated

    def _seats(self) -> int:
        """Sequences the running requests keep room for (see :func:`_sequences`)."""
        return sum(map(_sequences, self.running))

    def _has_seat(self, request: Request) -> bool:
        """Whether ``request`` fits beside the running requests under ``max_num_seqs`` (always in
        an empty running list: validation bounds a request's own sequences)."""
        return not self.running or self._seats() + _sequences(request) <= self.config.max_num_seqs

    def _idle(self, request: Request) -> bool:
        """Nothing to compute and no token on its way: it waits for tokens from outside."""
        return request.num_computed_tokens >= request.num_tokens and request.request_id not in self._in_flight

    def _idle_victim(self, request: Request, output: SchedulerOutput) -> Request | None:
        """The last running request other than ``request`` that is idle and not in this step."""
        scheduled = {c.request.request_id for c in output.scheduled}
        for candidate in reversed(self.running):
            if candidate is not request and candidate.request_id not in scheduled and self._idle(candidate):
                return candidate
        return None

    def _allocate_waiting(
        self, request: Request, budget: int, output: SchedulerOutput
    ) -> tuple[int, list[int]] | None:
        """Blocks for a waiting request's first chunk: swapped-in KV or prefix hit + new blocks."""
        kv = self.kv_cache_manager
        if kv.is_swapped(request):
            num_new = min(request.num_tokens - request.num_computed_tokens, budget)
            swapped = kv.swap_in(request, num_new)
            if swapped is None:
                return None
            output.swap_in.extend(swapped[1])
            return num_new, swapped[0]
        computed_blocks, num_hit = kv.get_computed_blocks(request)
        num_new = min(request.num_tokens - num_hit, budget)
        block_ids = kv.allocate_slots(request, num_new, computed_blocks)
        if block_ids is None:
            return None
        if request.num_cached_tokens < 0:
            request.num_cached_tokens = num_hit
        request.num_computed_tokens = num_hit
        return num_new, block_ids

    @staticmethod
    def _add_chunk(
        output: SchedulerOutput, request: Request, num_new: int, block_ids: list[int]
    ) -> None:
        chunk = ScheduledRequest(request, request.num_computed_tokens, num_new, block_ids)
        output.scheduled.append(chunk)
        output.num_batched_tokens += num_new
        request.num_computed_tokens += num_new

    def _dequeue(self, requests: list[Request]) -> None:
        """Take preempted or waiting requests out of the waiting queue or the parked ones."""
        queued = [r for r in requests if self._parked.pop(r.request_id, None) is None]
        if queued:
            self.waiting.remove_requests(queued)

    def _preempt(self, victim: Request, output: SchedulerOutput) -> None:
        self.num_preemptions += 1
        idle = self._idle(victim)
        self.running.remove(victim)
        swapped = None
        if self.config.preemption_mode == "swap":
            swapped = self.kv_cache_manager.swap_out(victim)
        if swapped is not None:
            output.swap_out.extend(swapped)
        else:
            self.kv_cache_manager.free(victim)
            victim.num_computed_tokens = 0
        victim.status = RequestStatus.PREEMPTED
        victim.num_preemptions += 1
        if idle:
            self._parked[victim.request_id] = victim
        else:
            self.waiting.push_front(victim)
        output.preempted_request_ids.append(victim.request_id)

    def _finish_too_large(self, request: Request) -> None:
        pool_tokens = self.kv_cache_manager.num_blocks * self.kv_cache_manager.block_size
        request.status = RequestStatus.FINISHED_ERROR
        request.stop_reason = (
            f"the KV cache is too small for this request: it needs more than the "
            f"{pool_tokens} tokens ({self.kv_cache_manager.num_blocks} blocks) the cache holds"
        )
        self._release(request)
        self._pending_reports.append(request)

    def _release(self, request: Request) -> None:
        """Free a finished request's blocks and forget it (the caller dequeued it)."""
        self.kv_cache_manager.free(request)
        self._in_flight.discard(request.request_id)
        del self.requests[request.request_id]
        del self._order[request.request_id]
        self._finished_ids.append(request.request_id)

    def _sort_key(self, request: Request) -> tuple[Any, ...]:
        seq = self._order[request.request_id]
        if self.config.policy == "priority":
            return (request.priority, request.arrival_time, seq)
        return (seq,)


def _sequences(request: Request) -> int:
    """Running sequences to keep room for: ``request`` and the samples that fork from it after its
    first token (``n > 1``), or a beam-search root's width until its beams exist. A step samples
    one row per sequence, and backends size their graphs, warm-ups and memory profile for
    ``max_num_seqs`` rows."""
    return max(request.reserved_sequences, 1 + len(request.pending_siblings))
