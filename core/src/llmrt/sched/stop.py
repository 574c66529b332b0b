"""Token-level stop conditions, checked after each sampled token (stop strings need text and are
found by the detokenizer, which then calls :meth:`llmrt.sched.Scheduler.finish_requests`)."""

from __future__ import annotations

from llmrt.engine.request import Request, RequestStatus


def check_stop(request: Request, max_model_len: int) -> bool:
    """Finish ``request`` if its last token ends it; return whether it finished.

    In order, once ``min_tokens`` tokens exist:

    - EOS (``sampling_params.eos_token_id``) unless ``ignore_eos``: ``FINISHED_STOPPED``,
      ``stop_reason`` ``None``;
    - a token of ``stop_token_ids`` (always honoured): ``FINISHED_STOPPED``, ``stop_reason`` the id;
    - a token of ``all_stop_token_ids`` (the model's other end-of-sequence ids, filled by the
      engine) unless ``ignore_eos``: ``FINISHED_STOPPED``, ``stop_reason`` the id;
    - ``max_tokens`` outputs, or ``max_model_len`` tokens in all: ``FINISHED_LENGTH``.

    The context limit applies even before ``min_tokens``: nothing can be generated past it.
    """
    if request.num_output_tokens >= request.sampling_params.min_tokens:
        if _check_stop_token(request):
            return True
    if request.num_output_tokens >= request.max_tokens or request.num_tokens >= max_model_len:
        request.status = RequestStatus.FINISHED_LENGTH
        return True
    return False


def _check_stop_token(request: Request) -> bool:
    params = request.sampling_params
    last = request.output_token_ids[-1]
    if not params.ignore_eos and last == params.eos_token_id:
        return _stopped(request, None)
    if last in params.stop_token_ids:
        return _stopped(request, last)
    if not params.ignore_eos and last in params.all_stop_token_ids:
        return _stopped(request, last)
    return False


def _stopped(request: Request, reason: int | None) -> bool:
    request.status = RequestStatus.FINISHED_STOPPED
    request.stop_reason = reason
    return True
