"""PendingStep: a step queued on the device whose sampled tokens have not reached the host yet.

:meth:`llmrt.engine.model_runner.ModelRunner.launch` returns one as soon as the step's work is
queued; :meth:`PendingStep.resolve` waits for the tokens and returns the step's
:class:`~llmrt.engine.model_runner.RunnerOutput`. Between the two, the host is free to schedule
and prepare the next step (asynchronous scheduling, see ``engine/async_scheduling.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmrt.engine.model_runner import RunnerOutput
    from llmrt.engine.transfers import HostCopy


class PendingStep:
    """The outcome of one launched step: logprobs already gathered, tokens still in flight.

    :param result: the step's output without its sampled tokens (logprobs, prompt logprobs).
    :param request_ids: the request of each sampled row, in row order.
    :param tokens: the sampled tokens on their way to the host (``None`` if nothing sampled).
    """

    def __init__(
        self,
        result: RunnerOutput,
        request_ids: list[str] | None = None,
        tokens: HostCopy | None = None,
    ) -> None:
        self._result = result
        self._request_ids = request_ids or []
        self._tokens = tokens

    def resolve(self) -> RunnerOutput:
        """Wait for the sampled tokens and return the complete output (idempotent)."""
        if self._tokens is not None:
            sampled = self._result.sampled_token_ids
            for request_id, token in zip(self._request_ids, self._tokens.tolist(), strict=True):
                sampled[request_id] = [token]
            self._tokens = None
        return self._result
