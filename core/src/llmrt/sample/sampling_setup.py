"""SamplingSetup: what a batch of sampling rows needs, derived from their parameters alone.

Building it walks every row's ``SamplingParams`` and creates the per-row parameter tensors,
which costs host time proportional to the batch at every step. Decode batches usually keep the
same requests in the same order for many steps, so :class:`SamplingSetupCache` reuses the last
setup while the rows are the very same request objects (parameters never change once a request
is queued). Anything that depends on generated tokens (penalties, bad words, min-tokens
masking) is not part of it and is rebuilt each step where a row needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import is_

import torch

from llmrt.engine.request import Request
from llmrt.sample.sampler import SamplingBatch
from llmrt.sampling_params import LogprobsMode, SamplingParams


@dataclass
class SamplingSetup:
    """Per-batch sampling facts; row ``i`` is ``requests[i]`` of the step."""

    batch: SamplingBatch
    needs_processing: bool
    """Some row has masks, bias or penalties (:func:`build_logits_processing` must run)."""
    raw_logprobs: bool
    """Some row asks for logprobs of the raw logits."""
    processed_logprobs: bool
    """Some row asks for logprobs of the final distribution."""
    logprob_rows: list[int]
    """Rows that ask for logprobs."""
    plugin_processors: list[str]
    """Names of plugin logits processors some row enabled, sorted."""


def needs_logits_processing(params: SamplingParams) -> bool:
    """True when a row needs :func:`~llmrt.sample.logits_processing.build_logits_processing`."""
    return bool(
        params.allowed_token_ids
        or params.bad_words_token_ids
        or params.logit_bias
        or params.min_tokens > 0
        or params.repetition_penalty != 1.0
        or params.frequency_penalty != 0.0
        or params.presence_penalty != 0.0
    )


def build_sampling_setup(
    requests: list[Request],
    generators: list[torch.Generator | None],
    to_device: Callable[..., torch.Tensor],
) -> SamplingSetup:
    """Gather the setup of ``requests`` (one row each) in one pass over their parameters."""
    params = [r.sampling_params for r in requests]
    wanted = [i for i, p in enumerate(params) if p.logprobs is not None]
    modes = {params[i].logprobs_mode for i in wanted}
    return SamplingSetup(
        batch=SamplingBatch.build(params, generators, to_device=to_device),
        needs_processing=any(map(needs_logits_processing, params)),
        raw_logprobs=LogprobsMode.RAW in modes,
        processed_logprobs=LogprobsMode.PROCESSED in modes,
        logprob_rows=wanted,
        plugin_processors=sorted({name for p in params for name in p.logits_processors or ()}),
    )


class SamplingSetupCache:
    """Keeps the last :class:`SamplingSetup` and returns it while the rows are unchanged."""

    def __init__(self) -> None:
        self._requests: list[Request] = []
        self._setup: SamplingSetup | None = None

    def get(
        self, requests: list[Request], build: Callable[[list[Request]], SamplingSetup]
    ) -> SamplingSetup:
        """The setup of ``requests``: the cached one if they are the same objects in the same
        order as last time, else ``build(requests)`` (then cached)."""
        same = (
            self._setup is not None
            and len(requests) == len(self._requests)
            and all(map(is_, requests, self._requests))
        )
        if not same:
            self._setup = build(requests)
            self._requests = list(requests)
        assert self._setup is not None
        return self._setup

    def clear(self) -> None:
        """Forget the cached setup (and the requests it holds)."""
        self._requests, self._setup = [], None
