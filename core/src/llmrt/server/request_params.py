"""From an OpenAI request to the sampling keywords the engine takes."""

from __future__ import annotations

from typing import Any

from llmrt.server.errors import bad_request
from llmrt.server.protocol.chat import ChatCompletionRequest
from llmrt.server.protocol.completion import CompletionRequest
from llmrt.server.sampling import UNTIL_CONTEXT

# Fields copied as they are (same name, same meaning in SamplingParams).
_SHARED_FIELDS = (
    "n",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "stop_token_ids",
    "ignore_eos",
    "min_tokens",
    "prompt_logprobs",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "include_stop_str_in_output",
    "truncate_prompt_tokens",
    "use_beam_search",
    "length_penalty",
)


def _logit_bias(bias: dict[str, float] | None) -> dict[int, float] | None:
    if bias is None:
        return None
    try:
        return {int(token): float(value) for token, value in bias.items()}
    except ValueError as exc:
        raise bad_request(
            "logit_bias keys must be token ids (integers as strings)", "logit_bias"
        ) from exc


def _shared(request: Any) -> dict[str, Any]:
    kwargs = {name: getattr(request, name) for name in _SHARED_FIELDS}
    if not request.use_beam_search:
        kwargs.pop("use_beam_search")
    if request.length_penalty is None:
        kwargs.pop("length_penalty")
    kwargs["logit_bias"] = _logit_bias(request.logit_bias)
    return kwargs


def chat_sampling(request: ChatCompletionRequest) -> dict[str, Any]:
    """Sampling keywords of a chat request (``max_tokens`` unset means up to the context)."""
    kwargs = _shared(request)
    limit = (
        request.max_completion_tokens
        if request.max_completion_tokens is not None
        else request.max_tokens
    )
    kwargs["max_tokens"] = limit if limit is not None else UNTIL_CONTEXT
    if request.logprobs:
        kwargs["logprobs"] = request.top_logprobs or 0
    elif request.top_logprobs:
        raise bad_request("top_logprobs requires logprobs to be true", "top_logprobs")
    return kwargs


def completion_sampling(request: CompletionRequest) -> dict[str, Any]:
    """Sampling keywords of a completion request.

    ``max_tokens: 0`` with ``echo`` (scoring a prompt, as evaluation harnesses do) runs one
    token that the response then leaves out.
    """
    kwargs = _shared(request)
    kwargs["best_of"] = request.best_of
    max_tokens = request.max_tokens
    if max_tokens == 0 and request.echo:
        max_tokens = 1
    kwargs["max_tokens"] = max_tokens if max_tokens is not None else UNTIL_CONTEXT
    if request.logprobs is not None:
        kwargs["logprobs"] = request.logprobs
        if request.echo and request.prompt_logprobs is None:
            kwargs["prompt_logprobs"] = request.logprobs
    return kwargs
