"""Sampling keywords: what travels from the front end to the engine for each request.

The front end turns an HTTP request into a dict of :class:`~llmrt.sampling_params.SamplingParams`
keywords holding only what the user set (``None`` for ``max_tokens`` means "up to the context
length"). Both processes build the ``SamplingParams`` with :func:`build_sampling_params`, so
the front end rejects bad values with a 400 before the engine sees them, and the engine's
generation_config defaults apply to the fields the user left out.
"""

from __future__ import annotations

from typing import Any

from llmrt.sampling_params import SamplingParams

UNTIL_CONTEXT = None
"""``max_tokens`` value meaning "generate until the context is full"."""


def build_sampling_params(kwargs: dict[str, Any]) -> SamplingParams:
    """``SamplingParams`` from user-set keywords; ``ValueError`` (with ``param``) if invalid."""
    unbounded = "max_tokens" in kwargs and kwargs["max_tokens"] is UNTIL_CONTEXT
    given = {k: v for k, v in kwargs.items() if v is not None}
    params = SamplingParams.from_optional(**given)
    if unbounded:
        params.max_tokens = None
    return params
