"""Beam search inside the engine, with beams sharing KV blocks copy-on-write.

Each beam is an ordinary request that decodes greedily with ``logprobs = K`` (its top K
continuations). The engine takes the sampled token away from beam requests; once every live
beam of a group has reported, :class:`BeamGroup` chooses the next beams as Hugging Face
transformers does (``early_stopping=False``):

- candidates are the K best (beam score + token logprob) over all beams, where
  K = max(2, 1 + number of stop tokens) x beam_width;
- a candidate that ends in a stop token, or reaches ``max_tokens``, and ranks within the first
  ``beam_width`` becomes a finished hypothesis scored ``sum_logprobs / length ** length_penalty``
  (the best ``beam_width`` are kept);
- the best ``beam_width`` other candidates continue: a beam chosen once continues in place, a
  beam chosen again is forked (it shares every KV block with its source until one of them
  writes into a shared block), a beam not chosen is freed;
- the search stops when no candidate can continue, or every hypothesis slot is full and the
  best running beam, scored at its current length, cannot beat the worst hypothesis.

Stop strings are not applied to beams.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from llmrt.engine.request import Request, RequestStatus
from llmrt.outputs import CompletionOutput, RequestOutput
from llmrt.sample.logprobs import TokenLogprobs
from llmrt.sampling_params import LogprobsMode, SamplingParams


@dataclass
class Hypothesis:
    """A finished beam: its tokens, summed logprob and length-penalized score."""

    token_ids: list[int]
    cumulative_logprob: float
    score: float
    stopped: bool


@dataclass
class Beam:
    """A live beam: the request computing it and its summed logprob."""

    request: Request
    score: float


@dataclass
class BeamGroup:
    """One user request searched with ``width`` beams."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    params: SamplingParams
    width: int
    beams: list[Beam]
    stop_ids: set[int]
    finished: list[Hypothesis] = field(default_factory=list)
    reports: dict[str, TokenLogprobs] = field(default_factory=dict)
    generated: int = 0
    improvable: bool = True
    done: bool = False
    _ids: Any = field(default_factory=itertools.count)

    @property
    def keep(self) -> int:
        """How many candidates are considered each step."""
        return max(2, 1 + len(self.stop_ids)) * self.width

    @property
    def ready(self) -> bool:
        """True once every live beam has reported its next-token logprobs."""
        return all(b.request.request_id in self.reports for b in self.beams)

    def candidates(self) -> list[tuple[float, int, int]]:
        """The ``keep`` best (accumulated score, beam index, token), best first."""
        pool = []
        for index, beam in enumerate(self.beams):
            entry = self.reports[beam.request.request_id]
            pool += [(beam.score + lp, index, token) for token, lp in zip(entry.token_ids[1:], entry.logprobs[1:])]
        pool.sort(key=lambda c: (-c[0], c[1], c[2]))
        return pool[: self.keep]

    def select(self) -> list[tuple[int, int, float]]:
        """Advance one token: record finished hypotheses, return the next beams' (source, token, score)."""
        last_step = self.generated + 1 >= self.params.max_tokens
        running: list[tuple[int, int, float]] = []
        for rank, (score, index, token) in enumerate(self.candidates()):
            if token in self.stop_ids or last_step:
                if rank < self.width and self.improvable:
                    self._add_hypothesis(index, token, score)
            elif len(running) < self.width:
                running.append((index, token, score))
        self.generated += 1
        self.reports.clear()
        self._update_improvable(running)
        self.done = not running or not self.improvable
        return running

    def _add_hypothesis(self, index: int, token: int, score: float) -> None:
        tokens = self.beams[index].request.output_token_ids + [token]
        normalized = score / (len(tokens) ** self.params.length_penalty)
        self.finished.append(Hypothesis(tokens, score, normalized, token in self.stop_ids))
        self.finished.sort(key=lambda h: -h.score)
        del self.finished[self.width :]

    def _update_improvable(self, running: list[tuple[int, int, float]]) -> None:
        if len(self.finished) < self.width or not running:
            return
        best_running = running[0][2] / (self.generated ** self.params.length_penalty)
        self.improvable = self.improvable and best_running > self.finished[-1].score

    def new_beam_request(self, source: Request) -> Request:
        """A request continuing ``source``'s tokens, to be forked from it."""
        return Request(f"{self.request_id}#beam{next(self._ids)}", list(source.prompt_token_ids),
                       source.sampling_params, priority=source.priority, cache_salt=source.cache_salt,
                       max_tokens=source.max_tokens, output_token_ids=list(source.output_token_ids))

    def failure(self) -> Request | None:
        """A beam the scheduler finished with an error (say, too large for the KV cache), if any."""
        return next((b.request for b in self.beams if b.request.status == RequestStatus.FINISHED_ERROR), None)

    def error_output(self, reason: str | None) -> RequestOutput:
        """The request's final output when one of its beams failed: no tokens, finish reason
        ``error`` and the beam's reason."""
        failed = CompletionOutput(index=0, text="", token_ids=[], finish_reason="error", stop_reason=reason)
        return RequestOutput(self.request_id, self.prompt, self.prompt_token_ids, [failed], finished=True)

    def output(self, tokenizer: Any) -> RequestOutput:
        """The best ``n`` hypotheses (running beams fill in if too few finished)."""
        hypotheses = list(self.finished)
        for beam in self.beams if len(hypotheses) < self.params.n else ():
            tokens = beam.request.output_token_ids
            hypotheses.append(Hypothesis(list(tokens), beam.score,
                                         beam.score / max(1, len(tokens)) ** self.params.length_penalty, False))
        hypotheses.sort(key=lambda h: -h.score)
        outputs = [
            CompletionOutput(index=i, text=_decode(tokenizer, h.token_ids, self.params), token_ids=h.token_ids,
                             cumulative_logprob=h.cumulative_logprob, finish_reason="stop" if h.stopped else "length")
            for i, h in enumerate(hypotheses[: self.params.n])
        ]
        return RequestOutput(self.request_id, self.prompt, self.prompt_token_ids, outputs, finished=True)


def _decode(tokenizer: Any, token_ids: list[int], params: SamplingParams) -> str:
    if tokenizer is None or not params.detokenize:
        return ""
    return tokenizer.decode(token_ids, skip_special_tokens=params.skip_special_tokens)


def beam_request_params(params: SamplingParams, keep: int) -> SamplingParams:
    """What each beam request runs with: greedy, raw logprobs of its top ``keep`` tokens, no stops."""
    beam = params.clone()
    beam.n, beam.temperature, beam.ignore_eos, beam.min_tokens = 1, 0.0, True, 0
    beam.stop, beam.stop_token_ids, beam.all_stop_token_ids = [], [], set()
    beam.logprobs, beam.logprobs_mode = keep, LogprobsMode.RAW
    return beam


class BeamSearchManager:
    """Every beam-search request of an engine: intercepts beam tokens, advances groups."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.groups: dict[str, BeamGroup] = {}
        self.beam_to_group: dict[str, BeamGroup] = {}

    def create(self, request_id: str, prompt: str | None, token_ids: list[int], params: SamplingParams,
               max_tokens: int, priority: int, cache_salt: str | None) -> Request:
        """Set up a group; returns its root request, to be added to the scheduler."""
        width = params.num_sequences
        stop_ids = set(params.all_stop_token_ids) | set(params.stop_token_ids)
        if params.eos_token_id is not None and not params.ignore_eos:
            stop_ids.add(params.eos_token_id)
        group_params = params.clone()
        group_params.max_tokens = max_tokens
        group = BeamGroup(request_id, prompt, list(token_ids), group_params, width, [], stop_ids)
        root = Request(f"{request_id}#beam-root", list(token_ids), beam_request_params(params, group.keep),
                       priority=priority, cache_salt=cache_salt, max_tokens=max_tokens)
        root.reserved_sequences = width
        group.beams.append(Beam(root, 0.0))
        self.groups[request_id] = group
        self.beam_to_group[root.request_id] = group
        return root

    def intercept(self, sampled: dict[str, list[int]], logprobs: dict[str, TokenLogprobs]) -> None:
        """Take beam requests' tokens and logprobs out of a step's results."""
        for request_id in [r for r in sampled if r in self.beam_to_group]:
            sampled.pop(request_id)
            self.beam_to_group[request_id].reports[request_id] = logprobs.pop(request_id)

    def advance(self, scheduler: Any) -> list[RequestOutput]:
        """Move every group whose beams all reported; return outputs of groups that finished
        (a group whose beam failed finishes with that beam's error)."""
        outputs = []
        for group in list(self.groups.values()):
            failed = group.failure()
            if failed is not None:
                outputs.append(group.error_output(failed.stop_reason))
                self._drop([b.request.request_id for b in group.beams], scheduler)
                del self.groups[group.request_id]
        for group in [g for g in self.groups.values() if g.beams and g.ready and g.reports]:
            chosen = group.select()
            if group.done:
                outputs.append(group.output(self.tokenizer))
                self._drop([b.request.request_id for b in group.beams], scheduler)
                del self.groups[group.request_id]
            else:
                self._continue(group, chosen, scheduler)
        return outputs

    def _continue(self, group: BeamGroup, chosen: list[tuple[int, int, float]], scheduler: Any) -> None:
        """Free unchosen beams first and release the root's reservation (their seats go to the
        forks), then fork duplicated sources, then append tokens."""
        sources = {source for source, _, _ in chosen}
        self._drop([b.request.request_id for i, b in enumerate(group.beams) if i not in sources], scheduler)
        for beam in group.beams:
            beam.request.reserved_sequences = 1  # the beams now exist: each counts for itself
        used: set[int] = set()
        plans: list[tuple[Request, int, float]] = []
        for source, token, score in chosen:
            request = group.beams[source].request
            if source in used:
                child = group.new_beam_request(request)
                scheduler.fork_request(request, child)
                self.beam_to_group[child.request_id] = group
                request = child
            used.add(source)
            plans.append((request, token, score))
        for request, token, _ in plans:
            scheduler.append_output_tokens(request, [token])
        group.beams = [Beam(r, s) for r, _, s in plans]

    def _drop(self, request_ids: list[str], scheduler: Any) -> None:
        scheduler.finish_requests(request_ids, RequestStatus.FINISHED_ABORTED)
        for request_id in request_ids:
            self.beam_to_group.pop(request_id, None)

    def abort(self, request_id: str, scheduler: Any) -> bool:
        """Abort a beam-search request; False if it is not one."""
        group = self.groups.pop(request_id, None)
        if group is None:
            return False
        self._drop([b.request.request_id for b in group.beams], scheduler)
        return True
