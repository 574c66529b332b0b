"""Turning sampled tokens into text and RequestOutputs: detokenization and stop strings.

Token-level stops (EOS, stop token ids, length) are the scheduler's; stop *strings* need text,
so they are found here, and the request is then finished in the scheduler. Requests with
``n > 1`` run as ``n`` child requests whose outputs are gathered under their parent's id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmrt.engine.detokenizer import IncrementalDetokenizer
from llmrt.engine.request import Request
from llmrt.outputs import CompletionOutput, Logprob, PromptLogprobs, RequestOutput, SampleLogprobs
from llmrt.sample.logprobs import TokenLogprobs


@dataclass
class SequenceState:
    """Text state of one child sequence."""

    request: Request
    index: int
    detokenizer: IncrementalDetokenizer | None
    text: str = ""
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    num_tokens_reported: int = 0
    logprobs: SampleLogprobs | None = None
    cumulative_logprob: float | None = None


@dataclass
class ParentState:
    """A user-visible request and its ``n`` child sequences."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    children: list[SequenceState] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """True once every child has finished."""
        return all(c.finish_reason is not None for c in self.children)


def _find_stop_string(text: str, new_len: int, stops: list[str]) -> tuple[str, int] | None:
    """Earliest stop string that ends inside the last ``new_len`` characters of ``text``."""
    best: tuple[str, int] | None = None
    for stop in stops:
        start = max(0, len(text) - new_len - len(stop) + 1)
        position = text.find(stop, start)
        if position != -1 and (best is None or position < best[1]):
            best = (stop, position)
    return best


class OutputProcessor:
    """Keeps the text state of every live request and builds RequestOutputs."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.parents: dict[str, ParentState] = {}
        self.child_to_parent: dict[str, tuple[ParentState, SequenceState]] = {}
        self._token_text: dict[int, str] = {}

    def add(self, parent: ParentState, children: list[Request]) -> None:
        """Track a new user request made of ``children``."""
        for index, child in enumerate(children):
            params = child.sampling_params
            detok = None
            if params.detokenize and self.tokenizer is not None:
                detok = IncrementalDetokenizer(self.tokenizer, child.prompt_token_ids,
                                               params.skip_special_tokens,
                                               params.spaces_between_special_tokens)
            state = SequenceState(child, index, detok)
            parent.children.append(state)
            self.child_to_parent[child.request_id] = (parent, state)
        self.parents[parent.request_id] = parent

    def update(self, requests: list[Request], finished_only: bool = False) -> tuple[list[RequestOutput], list[str]]:
        """Process requests that got tokens or finished; returns outputs and stop-string hits.

        The second list names child requests a stop string finished: the caller must finish
        them in the scheduler too. With ``finished_only`` only finished requests get an output
        (building one copies every generated token, so callers that keep only final outputs
        skip that cost at each step).
        """
        touched: dict[str, ParentState] = {}
        stopped: list[str] = []
        for request in requests:
            found = self.child_to_parent.get(request.request_id)
            if found is None:
                continue
            parent, state = found
            if self._update_sequence(state) and not request.is_finished:
                stopped.append(request.request_id)
            touched[parent.request_id] = parent
        outputs = []
        for parent in touched.values():
            finished = parent.finished
            if finished or not finished_only:
                outputs.append(self._output(parent))
            if finished:
                self._forget(parent)
        return outputs, stopped

    def _update_sequence(self, state: SequenceState) -> bool:
        """Detokenize new tokens, apply stop strings; True if a stop string ended it."""
        request = state.request
        new_ids = request.output_token_ids[state.num_tokens_reported :]
        if request.sampling_params.logprobs is not None:
            self._append_logprobs(state, request.output_logprobs[state.num_tokens_reported :])
        state.num_tokens_reported = len(request.output_token_ids)
        hit = False
        if state.detokenizer is not None:
            delta = state.detokenizer.update(new_ids)
            if request.is_finished:
                delta += state.detokenizer.flush()
            state.text += delta
            hit = self._apply_stop_strings(state, len(delta))
        if hit:
            return True
        if request.is_finished:
            state.finish_reason = request.status.finish_reason
            state.stop_reason = request.stop_reason
        return False

    def _append_logprobs(self, state: SequenceState, entries: list[TokenLogprobs]) -> None:
        if state.logprobs is None:
            state.logprobs, state.cumulative_logprob = [], 0.0
        for entry in entries:
            state.logprobs.append(self.logprob_dict(entry))
            state.cumulative_logprob += entry.logprobs[0]

    def logprob_dict(self, entry: TokenLogprobs) -> dict[int, Logprob]:
        """vLLM's shape for one position: token id -> Logprob, the chosen token first."""
        return {token: Logprob(lp, rank, self._text_of(token))
                for token, lp, rank in zip(entry.token_ids, entry.logprobs, entry.ranks)}

    def _text_of(self, token: int) -> str | None:
        if self.tokenizer is None:
            return None
        text = self._token_text.get(token)
        if text is None:
            text = self._token_text[token] = self.tokenizer.decode([token])
        return text

    def _apply_stop_strings(self, state: SequenceState, new_len: int) -> bool:
        params = state.request.sampling_params
        if not params.stop or new_len == 0 or state.finish_reason is not None:
            return False
        if len(state.request.output_token_ids) <= params.min_tokens:
            return False
        found = _find_stop_string(state.text, new_len, params.stop)
        if found is None:
            return False
        stop, position = found
        end = position + len(stop) if params.include_stop_str_in_output else position
        state.text = state.text[:end]
        state.finish_reason, state.stop_reason = "stop", stop
        return True

    def _output(self, parent: ParentState) -> RequestOutput:
        outputs = [
            CompletionOutput(
                index=c.index,
                text=c.text,
                token_ids=list(c.request.output_token_ids),
                cumulative_logprob=c.cumulative_logprob,
                logprobs=c.logprobs,
                finish_reason=c.finish_reason,
                stop_reason=c.stop_reason,
            )
            for c in parent.children
        ]
        first = parent.children[0].request
        return RequestOutput(parent.request_id, parent.prompt, parent.prompt_token_ids, outputs,
                             finished=parent.finished, num_cached_tokens=max(0, first.num_cached_tokens),
                             prompt_logprobs=self._prompt_logprobs(first))

    def _prompt_logprobs(self, request: Request) -> PromptLogprobs | None:
        if request.sampling_params.prompt_logprobs is None:
            return None
        return [None if e is None else self.logprob_dict(e) for e in request.prompt_logprobs]

    def _forget(self, parent: ParentState) -> None:
        self.parents.pop(parent.request_id, None)
        for child in parent.children:
            self.child_to_parent.pop(child.request.request_id, None)

    def abort(self, request_id: str) -> list[str]:
        """Forget a user request; returns its child request ids (to abort in the scheduler)."""
        parent = self.parents.pop(request_id, None)
        if parent is None:
            return []
        for child in parent.children:
            self.child_to_parent.pop(child.request.request_id, None)
        return [c.request.request_id for c in parent.children]
