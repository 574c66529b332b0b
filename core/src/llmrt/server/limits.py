"""Upper bounds the server enforces before anything is queued or allocated.

Sampling bounds (n, logprobs, stop strings, logit_bias entries) live in
:mod:`llmrt.sampling_params` and are checked when the front end builds the request's
``SamplingParams``; the bounds below are the HTTP-level ones.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest accepted request body; larger bodies get 413 before they are read."""

DEFAULT_MAX_QUEUED_REQUESTS = 1024
"""Sequences that may wait beyond ``--max-num-seqs`` running ones; past it, 429."""

MAX_PROMPTS_PER_REQUEST = 256
"""Prompts in one /v1/completions batch."""

MAX_MESSAGES = 4096
"""Messages in one chat conversation."""

MAX_TOKENIZE_IDS = 1 << 20
"""Token ids accepted by /detokenize."""


@dataclass(frozen=True)
class ServerLimits:
    """The limits of one server instance (from the command line)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_queued_requests: int = DEFAULT_MAX_QUEUED_REQUESTS
    max_num_seqs: int = 256

    @property
    def max_pending_sequences(self) -> int:
        """Sequences (``n`` per prompt) the engine may hold at once: running plus queued."""
        return self.max_num_seqs + self.max_queued_requests
