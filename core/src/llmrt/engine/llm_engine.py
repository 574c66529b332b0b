"""LLMEngine: the step loop tying scheduler, KV cache, model runner and output processing.

``add_request`` validates and queues; ``step`` schedules one batch, runs it, records the
sampled tokens and returns the RequestOutputs that changed. Startup says which backend was
chosen and why, what memory was measured, how many KV blocks fit, and how long each phase took.
"""

from __future__ import annotations

import atexit
import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from llmrt.backends import select_backend
from llmrt.config import EngineConfig
from llmrt.engine.async_scheduling import needs_real_tokens
from llmrt.engine.beam_search import BeamSearchManager
from llmrt.engine.kv_sizing import plan_kv_cache
from llmrt.engine.model_runner import RunnerOutput
from llmrt.engine.output_processor import OutputProcessor, ParentState
from llmrt.engine.pending_step import PendingStep
from llmrt.engine.request import Request, RequestStatus
from llmrt.engine.validation import RequestValidator
from llmrt.kv.host_swap import HostSwapSpace
from llmrt.kv.kv_cache_manager import KVCacheManager
from llmrt.model.hf_config import load_generation_defaults, max_model_len_from_config
from llmrt.model.hub import resolve_model_dir
from llmrt.outputs import RequestOutput
from llmrt.plugins import get_plugin_host
from llmrt.plugins.host import PluginHost
from llmrt.sampling_params import SamplingParams
from llmrt.sched.output import SchedulerOutput

logger = logging.getLogger("llmrt.engine")

FULL_COLLECTION_FACTORS = (1000, 1000)
"""gc thresholds 1 and 2 after :func:`freeze_startup_heap` (Python's defaults are 10 and 10): a
middle-generation collection every 1,000 young ones (about 700k allocations, ~3,000 steps of 256
sequences) instead of every 100; each took 14-32 ms on the nano workload, an idle GPU meanwhile."""


class LLMEngine:
    """One model on one backend, serving many requests with continuous batching."""

    def __init__(self, config: EngineConfig, host: PluginHost | None = None) -> None:
        self.config = config
        self.host = host or get_plugin_host()
        self.timings: dict[str, float] = {}
        self._shut_down = False
        with self._phase("select backend"):
            choice = select_backend(self.host, config.backend)
            self.backend = choice.backend
            if config.cache.block_size is None:
                config = replace(config, cache=replace(config.cache, block_size=self.backend.default_block_size()))
                self.config = config
            self.backend.configure(config)
        logger.info("backend %r: %s", self.backend.name, choice.reason)
        with self._phase("resolve model"):
            self.model_dir = str(resolve_model_dir(config.model.model, config.model.revision))
        with self._phase("load tokenizer"):
            self.tokenizer = _load_tokenizer(config.model.tokenizer or self.model_dir)
        with self._phase("load weights"):
            self.runner = self.backend.create_model_runner(config, self.host, self.model_dir)
            self.runner.load_model()
        self._set_limits()
        with self._phase("profile and allocate KV cache"):
            self.num_blocks = plan_kv_cache(self.runner, self.backend, config)
            self.num_host_blocks = config.cache.swap_space_bytes // self.runner.kv_bytes_per_block()
            self.runner.allocate_kv_cache(self.num_blocks, self.num_host_blocks)
        self._build_scheduler()
        self.generation_defaults = _generation_defaults(config, self.model_dir)
        self.runner.logits_processors = {str(e.key): e.value(self.runner.hf_config)
                                         for e in self.host.logits_processors()}
        self.validator = RequestValidator(self.tokenizer, self.runner.hf_config, self.max_model_len,
                                          self.generation_defaults, self.tokenizer_eos(),
                                          set(self.runner.logits_processors), config.scheduler.max_num_seqs)
        self.output_processor = OutputProcessor(self.tokenizer)
        self.beam_search = BeamSearchManager(self.tokenizer)
        self._counter = 0
        self.async_scheduling = self._choose_async_scheduling()
        self._pending: tuple[SchedulerOutput, PendingStep] | None = None
        """The launched step whose tokens are not recorded yet (asynchronous scheduling)."""
        logger.info("ready in %.2f s (%s)", sum(self.timings.values()),
                    ", ".join(f"{k} {v:.2f} s" for k, v in self.timings.items()))

    # -- startup -----------------------------------------------------------------------------

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start

    def _set_limits(self) -> None:
        model_limit = max_model_len_from_config(self.runner.hf_config)
        requested = self.config.model.max_model_len
        if requested is not None and requested > model_limit:
            raise ValueError(f"max_model_len {requested} exceeds the model's limit of {model_limit} tokens")
        self.max_model_len = requested or model_limit
        self.config.scheduler.max_model_len = self.max_model_len

    def _build_scheduler(self) -> None:
        cache = self.config.cache
        pool_factory = self.host.block_allocators().get(cache.block_allocator).value
        self.block_pool = pool_factory(self.num_blocks, cache.enable_prefix_caching)
        host_swap = HostSwapSpace(self.num_host_blocks) if self.num_host_blocks else None
        self.kv_cache_manager = KVCacheManager(self.block_pool, cache.block_size, cache.enable_prefix_caching,
                                               host_swap=host_swap)
        scheduler_factory = self.host.schedulers().get(self.config.scheduler.scheduler).value
        self.scheduler = scheduler_factory(self.config.scheduler, self.kv_cache_manager)

    def _choose_async_scheduling(self) -> bool:
        """The config's choice, else the backend's; only with a scheduler that supports it."""
        wanted = self.config.async_scheduling
        if wanted is None:
            wanted = self.backend.overlaps_host_and_device()
        supported = hasattr(self.scheduler, "expect_tokens")
        if wanted and not supported:
            logger.info("asynchronous scheduling off: scheduler %r does not support it",
                        self.config.scheduler.scheduler)
        logger.info("asynchronous scheduling %s", "on" if wanted and supported else "off")
        return bool(wanted and supported)

    def tokenizer_eos(self) -> int | None:
        """The tokenizer's end-of-sequence id, if it has one."""
        return getattr(self.tokenizer, "eos_token_id", None) if self.tokenizer is not None else None

    # -- requests ----------------------------------------------------------------------------

    def next_request_id(self) -> str:
        """A fresh request id, unique within this engine."""
        self._counter += 1
        return str(self._counter - 1)

    def add_request(
        self,
        request_id: str,
        prompt: str | list[int] | dict[str, Any],
        params: SamplingParams | None = None,
        priority: int = 0,
        cache_salt: str | None = None,
    ) -> None:
        """Validate and queue a request; raises ``ValueError`` naming the problem if invalid."""
        self._check_running()
        if request_id in self.output_processor.parents:
            raise ValueError(f"request id {request_id!r} is already in use")
        if request_id in self.beam_search.groups:
            raise ValueError(f"request id {request_id!r} is already in use")
        prompt_text, token_ids = self.validator.tokenize(prompt)
        params = self.validator.prepare_params(params or SamplingParams.from_optional(), token_ids)
        token_ids = self.validator.truncate(token_ids, params)
        max_tokens = self.validator.max_tokens(token_ids, params)
        if params.use_beam_search:
            root = self.beam_search.create(request_id, prompt_text, token_ids, params, max_tokens, priority,
                                           cache_salt)
            self.scheduler.add_request(root)
            return
        children = self._children(request_id, token_ids, params, max_tokens, priority, cache_salt)
        self.output_processor.add(ParentState(request_id, prompt_text, token_ids), children)
        children[0].pending_siblings = children[1:]
        self.scheduler.add_request(children[0])

    def _children(self, request_id, token_ids, params, max_tokens, priority, cache_salt) -> list[Request]:
        """One request per sample; samples after the first are forked from it once its prompt is in
        the KV cache (they share its blocks), and draw their first token from the same logits."""
        if params.n == 1:
            return [Request(request_id, token_ids, params, priority=priority, cache_salt=cache_salt,
                            max_tokens=max_tokens)]
        children = []
        for index in range(params.n):
            child_params = params.clone()
            child_params.n = 1
            if params.seed is not None:
                child_params.seed = params.seed + index
            children.append(Request(f"{request_id}#{index}", list(token_ids), child_params, priority=priority,
                                    cache_salt=cache_salt, max_tokens=max_tokens))
        return children

    def abort_request(self, request_ids: str | list[str]) -> None:
        """Abort user requests by id; their KV blocks are freed at once. Unknown ids are ignored."""
        ids = [request_ids] if isinstance(request_ids, str) else list(request_ids)
        for request_id in ids:
            if self.beam_search.abort(request_id, self.scheduler):
                continue
            children = self.output_processor.abort(request_id)
            self.scheduler.finish_requests(children, RequestStatus.FINISHED_ABORTED)

    def has_unfinished_requests(self) -> bool:
        """True while any request is waiting or running, or a launched step is not recorded."""
        return self.scheduler.has_unfinished_requests() or self._pending is not None

    # -- the loop ----------------------------------------------------------------------------

    def step(self, *, finished_only: bool = False) -> list[RequestOutput]:
        """Run one scheduling step; return outputs of requests that progressed or finished.

        With asynchronous scheduling the outputs are those of the step launched by the previous
        call (see ``engine/async_scheduling.py``). ``finished_only`` leaves out the outputs of
        requests still running (cheaper for callers that only keep final outputs).
        """
        self._check_running()
        scheduler_output = self.scheduler.schedule()
        pending = self.runner.launch(scheduler_output)
        outputs = self._record_pending(finished_only)
        if self.async_scheduling and not self._must_record_now(scheduler_output):
            self.scheduler.expect_tokens(scheduler_output)
            self._pending = (scheduler_output, pending)
            return outputs
        return outputs + self._record(scheduler_output, pending.resolve(), finished_only)

    def _record_pending(self, finished_only: bool) -> list[RequestOutput]:
        """Record the step launched by the previous call, if it is still pending."""
        if self._pending is None:
            return []
        scheduler_output, pending = self._pending
        self._pending = None
        return self._record(scheduler_output, pending.resolve(), finished_only)

    def _must_record_now(self, output: SchedulerOutput) -> bool:
        """Whether a step's tokens must be recorded before the next step is scheduled."""
        if output.is_empty or self.beam_search.groups:
            return True
        return any(needs_real_tokens(c.request) for c in output.scheduled if c.samples)

    def _record(self, scheduler_output: SchedulerOutput, runner_output: RunnerOutput,
                finished_only: bool) -> list[RequestOutput]:
        """Record one step's tokens: forks, logprobs, stops, text; the outputs that changed."""
        sampled = runner_output.sampled_token_ids
        self.beam_search.intercept(sampled, runner_output.logprobs)
        forked = self._fork_siblings(scheduler_output, sampled)
        self._record_logprobs(runner_output)
        for sibling, tokens in forked:
            self.scheduler.append_output_tokens(sibling, tokens)
        updated = self.scheduler.update_from_output(scheduler_output, sampled)
        updated += self._finish_orphaned_siblings(updated)
        outputs, stopped = self.output_processor.update(updated, finished_only)
        if stopped:
            self.scheduler.finish_requests(stopped, RequestStatus.FINISHED_STOPPED)
        return outputs + self.beam_search.advance(self.scheduler)

    def _fork_siblings(self, output: SchedulerOutput, sampled: dict[str, list[int]]) -> list[tuple[Request, list[int]]]:
        """Fork the pending samples of requests that just sampled their first token."""
        forked = []
        for chunk in output.scheduled:
            leader = chunk.request
            if not leader.pending_siblings or leader.request_id not in sampled:
                continue
            for sibling in leader.pending_siblings:
                self.scheduler.fork_request(leader, sibling)
                forked.append((sibling, sampled.pop(sibling.request_id)))
            leader.pending_siblings = []
        return forked

    @staticmethod
    def _finish_orphaned_siblings(updated: list[Request]) -> list[Request]:
        """Samples whose leader finished before they were forked (an error) finish with it."""
        orphans = []
        for request in updated:
            if request.is_finished and request.pending_siblings:
                for sibling in request.pending_siblings:
                    sibling.status, sibling.stop_reason = request.status, request.stop_reason
                orphans += request.pending_siblings
                request.pending_siblings = []
        return orphans

    def _record_logprobs(self, output: RunnerOutput) -> None:
        """Attach this step's logprobs to their requests (before finished ones are dropped).

        A request finished since the step was scheduled (asynchronous scheduling) gets none.
        """
        for request_id, entry in output.logprobs.items():
            request = self.scheduler.get_request(request_id)
            if request is not None and not request.is_finished:
                request.output_logprobs.append(entry)
        for request_id, (first, entries) in output.prompt_logprobs.items():
            request = self.scheduler.get_request(request_id)
            if request is None or request.is_finished:
                continue
            recorded = request.prompt_logprobs
            if not recorded:
                recorded.append(None)
            # After a preemption the prompt is recomputed: keep only positions not yet recorded.
            recorded += entries[max(0, len(recorded) - 1 - first) :]

    def shutdown(self, reason: str = "finished") -> None:
        """Tell plugins the engine stops, then free the runner's memory (``runner.release()``).

        Later ``add_request`` and ``step`` calls raise; a second shutdown does nothing. Freeing is
        best effort: after a device error it may fail too, and is then logged rather than raised
        over the error being reported.
        """
        if self._shut_down:
            return
        self._shut_down = True
        self.host.engine_shutdown(reason)
        try:
            self.runner.release()
        except Exception:  # noqa: BLE001 - shutdown must not hide the error that caused it
            logger.warning("freeing the engine's memory failed", exc_info=True)

    def _check_running(self) -> None:
        if self._shut_down:
            raise RuntimeError("the engine is shut down")


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, trust_remote_code=False)


def _generation_defaults(config: EngineConfig, model_dir: str) -> dict[str, Any]:
    source = config.model.generation_config
    if source == "none":
        return {}
    return load_generation_defaults(model_dir if source == "auto" else source)


def freeze_startup_heap() -> None:
    """Keep the garbage collector's long pauses out of a process's one engine.

    A full collection walks every tracked object: after startup (torch, transformers, the model)
    hundreds of thousands, 50-70 ms during which no step is launched and an accelerator idles
    (measured on the nano workload: 3 full collections, 171 ms of pauses in 7 s). This exempts
    every object alive now from collection and makes collections of the older generations
    rare; young ones are still collected as usual. Long-lived engine processes (the server's
    engine process, ``llmrt bench``) call it once their engine is ready; ``LLM`` does not, since
    its callers may build and drop several engines in one process.
    The frozen objects are handed back to the collector at exit: objects still frozen then are
    never finalized, and extension libraries that count their live objects at shutdown (Triton's
    nanobind bindings) print pages of "leaked" warnings.
    """
    gc.freeze()
    atexit.register(gc.unfreeze)
    young, _, _ = gc.get_threshold()
    gc.set_threshold(young, FULL_COLLECTION_FACTORS[0], FULL_COLLECTION_FACTORS[1])
