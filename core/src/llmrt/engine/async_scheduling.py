"""Asynchronous scheduling: the host prepares step N+1 while the device computes step N.

Synchronously, each engine step schedules, runs the model, waits for the sampled tokens and
records them; on an accelerator the device idles while the host schedules, prepares the batch,
sets up sampling and processes outputs. With asynchronous scheduling (one-step lookahead, as in
vLLM v1) :meth:`LLMEngine.step` does, in order:

1. schedule step N: each request that sampled in step N-1 counts one token more, still in
   flight (:meth:`Scheduler.expect_tokens`), and is scheduled to compute it;
2. launch step N (:meth:`ModelRunner.launch`): the runner takes the in-flight tokens from step
   N-1's sampled-token tensor on the device, and starts a non-blocking copy of step N's tokens
   to the host; nothing waits for the device;
3. wait for step N-1's tokens (by now the device is busy with step N) and record them exactly
   as the synchronous engine would: token-level stops, logprobs, detokenization, stop strings,
   then return step N-1's outputs.

A request that a stop token or stop string ends in step N-1 was already scheduled in step N:
that extra token is discarded and never returned, and its blocks are freed as usual. A request
whose in-flight token surely ends it by length is not scheduled again. Outputs are the same as
synchronous scheduling for greedy and seeded requests (tests compare both modes).

A step falls back to synchronous (its tokens are recorded before the next step is scheduled)
when a request that samples in it needs its real tokens first: see :func:`needs_real_tokens`.
Beam search runs synchronously throughout.

It is on by default where the backend says device work overlaps the host
(``Backend.overlaps_host_and_device()``); ``async_scheduling`` in ``EngineConfig``
(``--async-scheduling/--no-async-scheduling``) overrides that.
"""

from __future__ import annotations

from llmrt.engine.request import Request


def needs_real_tokens(request: Request) -> bool:
    """True when ``request``'s next sampling must see every token generated so far.

    That is the case for the first token of a request with ``n > 1`` (its samples are forked
    from it), for logits processing that reads the generated tokens (repetition, frequency and
    presence penalties, bad words, ``min_tokens``), and for plugin logits processors (they may
    read anything). A step with such a request is recorded before the next one is scheduled.
    """
    p = request.sampling_params
    return bool(
        request.pending_siblings
        or p.min_tokens
        or p.bad_words_token_ids
        or p.logits_processors
        or p.repetition_penalty != 1.0
        or p.frequency_penalty != 0.0
        or p.presence_penalty != 0.0
    )
