"""Turning the engine's cumulative RequestOutputs into per-sequence deltas (engine process).

A delta carries only the text, token ids and logprobs that are new since the last one, so
a streaming request costs the socket O(tokens), not O(tokens^2). While a sequence may still
end in a stop string that is excluded from the output, its last ``len(stop) - 1``
characters are held back: a stop string found across two steps then never retracts text
that was already sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llmrt.outputs import CompletionOutput, RequestOutput
from llmrt.sampling_params import SamplingParams
from llmrt.server.messages import RequestDelta, TokenLogprob

TOKEN_TEXT_CACHE_SIZE = 1 << 18
"""Decoded single-token texts kept for logprob reports (bounded by the vocabulary anyway)."""


@dataclass
class _Sent:
    """How much of one sequence was already reported."""

    chars: int = 0
    tokens: int = 0
    logprobs: int = 0
    finished: bool = False


@dataclass
class _Tracked:
    holdback: int
    sequences: dict[int, _Sent]
    prompt_logprobs_sent: bool = False


class TokenTexts:
    """The text of single tokens (for logprob reports), decoded once and cached."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        """The text of ``token_id`` (special tokens included)."""
        text = self._cache.get(token_id)
        if text is None:
            text = (
                ""
                if self.tokenizer is None
                else self.tokenizer.decode([token_id], skip_special_tokens=False)
            )
            if len(self._cache) < TOKEN_TEXT_CACHE_SIZE:
                self._cache[token_id] = text
        return text


class DeltaTracker:
    """Remembers what was sent for each live request and computes the next deltas."""

    def __init__(self, tokenizer: Any) -> None:
        self.token_text = TokenTexts(tokenizer)
        self._requests: dict[str, _Tracked] = {}

    def track(self, request_id: str, params: SamplingParams) -> None:
        """Start tracking a request just added to the engine."""
        stops = params.stop or []
        holdback = (
            0 if params.include_stop_str_in_output or not stops else max(len(s) for s in stops) - 1
        )
        self._requests[request_id] = _Tracked(holdback, {})

    def live_ids(self) -> list[str]:
        """Requests added and not yet finished or aborted."""
        return list(self._requests)

    def forget(self, request_id: str) -> None:
        """Stop tracking (the request was aborted)."""
        self._requests.pop(request_id, None)

    def deltas(self, output: RequestOutput) -> list[RequestDelta]:
        """The deltas of every sequence of ``output`` that has news."""
        tracked = self._requests.get(output.request_id)
        if tracked is None:
            return []
        result = []
        for completion in output.outputs:
            sent = tracked.sequences.setdefault(completion.index, _Sent())
            delta = self._sequence_delta(output, completion, sent, tracked)
            if delta is not None:
                result.append(delta)
        if output.finished:
            self.forget(output.request_id)
        return result

    def _sequence_delta(
        self, output: RequestOutput, completion: CompletionOutput, sent: _Sent, tracked: _Tracked
    ) -> RequestDelta | None:
        if sent.finished:
            return None
        finished = completion.finish_reason is not None
        end = (
            len(completion.text)
            if finished
            else max(sent.chars, len(completion.text) - tracked.holdback)
        )
        text = completion.text[sent.chars : end]
        new_ids = completion.token_ids[sent.tokens :]
        if not text and not new_ids and not finished:
            return None
        sent.chars, sent.tokens, sent.finished = (
            max(sent.chars, end),
            len(completion.token_ids),
            finished,
        )
        delta = RequestDelta(
            output.request_id,
            completion.index,
            text,
            list(new_ids),
            finish_reason=completion.finish_reason,
            stop_reason=completion.stop_reason,
            num_prompt_tokens=len(output.prompt_token_ids),
            num_cached_tokens=output.num_cached_tokens,
        )
        delta.logprobs = self._new_logprobs(completion, sent)
        if output.prompt_logprobs is not None and not tracked.prompt_logprobs_sent:
            tracked.prompt_logprobs_sent = True
            pairs = zip(output.prompt_token_ids, output.prompt_logprobs, strict=False)
            delta.prompt_logprobs = [self._candidates(token, entry or {}) for token, entry in pairs]
        return delta

    def _new_logprobs(
        self, completion: CompletionOutput, sent: _Sent
    ) -> list[list[TokenLogprob]] | None:
        if completion.logprobs is None:
            return None
        entries = completion.logprobs[sent.logprobs :]
        tokens = completion.token_ids[sent.logprobs : sent.logprobs + len(entries)]
        sent.logprobs += len(tokens)
        pairs = zip(tokens, entries, strict=False)
        return [self._candidates(token, entry) for token, entry in pairs]

    def _candidates(self, token_id: int, entry: dict[int, Any]) -> list[TokenLogprob]:
        """The chosen token first (NaN logprob if unknown), then candidates by logprob."""
        chosen = TokenLogprob(
            token_id, _as_float(entry.get(token_id, math.nan)), self.token_text(token_id)
        )
        ranked = sorted(entry.items(), key=lambda item: -_as_float(item[1]))
        return [chosen] + [TokenLogprob(t, _as_float(lp), self.token_text(t)) for t, lp in ranked]


def _as_float(value: Any) -> float:
    """A logprob as a float (accepts vLLM-style objects with a ``logprob`` attribute)."""
    return float(getattr(value, "logprob", value))
