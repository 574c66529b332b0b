"""ModelRunner: turns a SchedulerOutput into one forward pass and one sampled token per row.

It is device-agnostic: tensors go to ``backend.device()``, ops and attention come from the
plugin registries. A backend that needs more (graph capture, persistent buffers) subclasses it
and returns its subclass from ``Backend.create_model_runner``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llmrt.attention.metadata import AttentionMetadata
from llmrt.backends import Backend
from llmrt.config import EngineConfig
from llmrt.engine.pending_step import PendingStep
from llmrt.engine.transfers import DeviceTransfers
from llmrt.engine.model_setup import build_layer_context, choose_dtype, resolve_architecture
from llmrt.model.hf_config import load_hf_config
from llmrt.model.loader import load_model
from llmrt.plugins.host import PluginHost
from llmrt.engine.request import Request
from llmrt.sample.logits_processing import build_logits_processing
from llmrt.sample.logprobs import TokenLogprobs, gather_logprobs
from llmrt.sample.sampler import Sampler
from llmrt.sample.sampling_setup import SamplingSetup, SamplingSetupCache, build_sampling_setup
from llmrt.sampling_params import LogprobsMode
from llmrt.sched.output import ScheduledRequest, SchedulerOutput

logger = logging.getLogger("llmrt.engine")


PROMPT_LOGPROBS_CHUNK = 512
"""Prompt positions whose full-vocabulary logits are materialized at once."""


@dataclass
class RunnerOutput:
    """What one step produced, by request id.

    ``sampled_token_ids``: the new token of each request whose chunk reached its end.
    ``logprobs``: that token's logprobs, for requests that asked.
    ``prompt_logprobs``: ``(first_position, entries)``: entry ``i`` scores prompt token
    ``first_position + i + 1`` given the tokens before it.
    """

    sampled_token_ids: dict[str, list[int]]
    logprobs: dict[str, TokenLogprobs] = field(default_factory=dict)
    prompt_logprobs: dict[str, tuple[int, list[TokenLogprobs]]] = field(default_factory=dict)


class ModelRunner:
    """Owns the model and its KV cache on one device, and executes scheduled steps."""

    def __init__(self, config: EngineConfig, backend: Backend, host: PluginHost, model_dir: str) -> None:
        self.config = config
        self.backend = backend
        self.host = host
        self.model_dir = model_dir
        self.device = backend.device()
        self.hf_config = load_hf_config(model_dir)
        self.dtype = choose_dtype(self.hf_config, config.model.dtype, backend)
        self.block_size = config.cache.block_size
        self.sampler = Sampler()
        self.transfers = DeviceTransfers(self.device, backend.overlaps_host_and_device())
        self._setup_cache = SamplingSetupCache()
        self._last_tokens: torch.Tensor | None = None
        """The previous step's sampled tokens, on the device (inputs of tokens in flight)."""
        self._last_rows: dict[str, int] = {}
        """Row of each request in :attr:`_last_tokens`."""
        self.generators: dict[str, torch.Generator] = {}
        self.logits_processors: dict[str, Any] = {}
        """Plugin logits processors by name, set by the engine."""
        self.model: Any = None

    # -- startup -----------------------------------------------------------------------------

    def load_model(self) -> None:
        """Build the architecture's model on the device and load its weights."""
        factory = resolve_architecture(self.host, self.hf_config)
        ctx = build_layer_context(self.host, self.config, self.backend, self.hf_config, self.dtype)
        self.model = load_model(self.model_dir, self.hf_config, ctx, factory)
        self.sampler = Sampler(ctx.ops.sample_categorical)

    def weight_bytes(self) -> int:
        """Bytes taken by the model's parameters and buffers."""
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        return sum(t.numel() * t.element_size() for t in tensors)

    def kv_bytes_per_block(self) -> int:
        """Bytes one KV block takes across every attention layer."""
        total = 0
        for layer in self.model.attention_layers():
            shape = type(layer.impl).kv_cache_shape(1, self.block_size, layer.impl.config.num_kv_heads,
                                                    layer.impl.config.head_size)
            numel = 1
            for dim in shape:
                numel *= dim
            total += numel * torch.tensor([], dtype=self.dtype).element_size()
        return total

    def allocate_kv_cache(self, num_blocks: int, num_host_blocks: int = 0) -> None:
        """Create each attention layer's paged KV cache, and its host swap space if asked."""
        for layer in self.model.attention_layers():
            layer.kv_cache = self._kv_tensor(layer, num_blocks, self.device)
            layer.host_kv_cache = self._kv_tensor(layer, num_host_blocks, torch.device("cpu")) if num_host_blocks else None

    def free_kv_cache(self) -> None:
        """Unbind every attention layer's cache and swap space (freed once unreferenced)."""
        for layer in self.model.attention_layers():
            layer.kv_cache = None
            layer.host_kv_cache = None

    def release(self) -> None:
        """Free the KV caches and the last step's tensors once the engine stops.

        Called by :meth:`LLMEngine.shutdown` after queued device work has finished; a backend's
        runner also frees what it captured (graphs, their memory pools). Without it, that memory
        lives until Python's garbage collector reaches the dropped engine. The runner cannot run
        steps afterwards.
        """
        self.backend.synchronize()
        self.free_kv_cache()
        self._last_tokens = None
        self._last_rows = {}
        self._setup_cache.clear()
        self.generators.clear()

    def _kv_tensor(self, layer: Any, num_blocks: int, device: torch.device) -> torch.Tensor:
        cfg = layer.impl.config
        shape = type(layer.impl).kv_cache_shape(num_blocks, self.block_size, cfg.num_kv_heads, cfg.head_size)
        return torch.zeros(shape, dtype=self.dtype, device=device)

    @torch.inference_mode()
    def profile_run(self, num_tokens: int) -> None:
        """Run one forward pass of ``num_tokens`` prompt tokens to find peak activation memory."""
        num_blocks = -(-num_tokens // self.block_size)
        self.allocate_kv_cache(num_blocks)
        scheduled = _dummy_prompt(num_tokens, list(range(num_blocks)))
        input_ids, positions, metadata, _, _ = self._prepare(scheduled)
        hidden = self.model(input_ids, positions, metadata)
        self.model.compute_logits(hidden[-1:])
        self.backend.synchronize()
        self.free_kv_cache()

    # -- steps -------------------------------------------------------------------------------

    def _move_blocks(self, output: SchedulerOutput) -> None:
        """Swap out, swap in, then copy-on-write copies, before the forward pass."""
        if not (output.swap_out or output.swap_in or output.copy_blocks):
            return  # the common step: no need to walk the model's layers
        layers = self.model.attention_layers()
        for pairs, source, target in ((output.swap_out, "kv_cache", "host_kv_cache"),
                                      (output.swap_in, "host_kv_cache", "kv_cache"),
                                      (output.copy_blocks, "kv_cache", "kv_cache")):
            if not pairs:
                continue
            src = torch.tensor([p[0] for p in pairs])
            dst = torch.tensor([p[1] for p in pairs])
            for layer in layers:
                from_cache, to_cache = getattr(layer, source), getattr(layer, target)
                to_cache[:, dst.to(to_cache.device)] = from_cache[:, src.to(from_cache.device)].to(to_cache.device)

    def _prepare(self, scheduled: list[ScheduledRequest]):
        """Flatten the batch into input ids, positions and attention metadata.

        Returns them with the flat index of each sampling chunk's last token (a host list, and on
        the device). Everything goes to the device in one copy. A chunk's token still in flight
        (asynchronous scheduling: it starts at the request's known length) is read from the
        previous step's sampled tokens on the device.
        """
        tokens: list[int] = []
        query_lens, context_lens, block_tables = [], [], []
        sample_rows: list[int] = []
        in_flight: list[tuple[int, int]] = []
        for s in scheduled:
            request, start, num_new = s.request, s.start, s.num_new_tokens
            known = request.num_tokens
            end = start + num_new
            if end <= known:
                tokens += request.token_ids_slice(start, end)
            else:  # the last token was sampled by the previous step and is still in flight
                tokens += request.token_ids_slice(start, known)
                in_flight.append((len(tokens), self._last_rows[request.request_id]))
                tokens.append(0)
            query_lens.append(num_new)
            context_lens.append(start)
            block_tables.append(s.block_ids)
            if end >= known:
                sample_rows.append(len(tokens) - 1)
        extra = [np.asarray(tokens, dtype=np.int64), _positions(query_lens, context_lens, len(tokens)),
                 np.asarray(sample_rows, dtype=np.int64)]
        if in_flight:
            extra.append(np.asarray(in_flight, dtype=np.int64).T.copy())  # [flat indices, previous rows]
        metadata, (ids, positions, sample_index, *patch) = AttentionMetadata.build_with(
            query_lens, context_lens, block_tables, self.block_size, self.transfers.to_device_many, extra)
        if patch:
            flat_index, previous_rows = patch[0]
            ids[flat_index] = self._last_tokens[previous_rows]
        return ids, positions, metadata, sample_rows, sample_index

    def _generator_for(self, request: Request) -> torch.Generator | None:
        seed = request.sampling_params.seed
        if seed is None or request.sampling_params.temperature < 1e-5:
            return None
        generator = self.generators.get(request.request_id)
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed)
            self.generators[request.request_id] = generator
        return generator

    def execute(self, output: SchedulerOutput) -> RunnerOutput:
        """Run one step and wait for its tokens: :meth:`launch` then :meth:`PendingStep.resolve`."""
        return self.launch(output).resolve()

    @torch.inference_mode()
    def launch(self, output: SchedulerOutput) -> PendingStep:
        """Queue one step: block moves, the forward pass, prompt logprobs, sampling.

        Returns without waiting for the device (where it runs asynchronously); the sampled
        tokens arrive with :meth:`PendingStep.resolve`. Logprobs, when asked for, are gathered
        here (that waits for the device).
        """
        for request_id in output.finished_request_ids:
            self.generators.pop(request_id, None)
        self._move_blocks(output)
        result = RunnerOutput({})
        if output.is_empty:
            return PendingStep(result)
        input_ids, positions, metadata, sample_rows, sample_index = self._prepare(output.scheduled)
        prompt_logprobs = any(s.request.sampling_params.prompt_logprobs is not None for s in output.scheduled)
        # Only the sampling rows' hidden states are needed, unless prompt logprobs read every row;
        # when every row samples (decode) there is nothing to spare.
        spare_rows = not prompt_logprobs and len(sample_rows) < metadata.num_tokens
        hidden = self._run_model(input_ids, positions, metadata, sample_index if spare_rows else None)
        if prompt_logprobs:
            self._prompt_logprobs(output.scheduled, hidden, metadata.query_start_loc_cpu, result)
            hidden = hidden[sample_index]
        if not sample_rows:
            return PendingStep(result)
        sampling = [s.request for s in output.scheduled if s.samples]
        requests, rows = _with_pending_siblings(sampling)
        logits = self.model.compute_logits(hidden)
        if len(rows) != len(sampling):
            logits = logits[self.transfers.to_device(rows, torch.long)]
        tokens = self._sample(requests, logits, result)
        self._last_tokens = tokens
        self._last_rows = {r.request_id: i for i, r in enumerate(requests)}
        return PendingStep(result, [r.request_id for r in requests], self.transfers.to_host(tokens))

    def _run_model(self, input_ids: torch.Tensor, positions: torch.Tensor, metadata: AttentionMetadata,
                   rows: torch.Tensor | None = None) -> torch.Tensor:
        """The forward pass of one prepared batch: hidden states ``[T, H]``, or ``[N, H]`` of the
        token rows ``rows`` only (through :meth:`CausalLM.forward_rows`).

        The seam for backends that replay captured graphs (a subclass overrides it).
        """
        if rows is None:
            return self.model(input_ids, positions, metadata)
        return self.model.forward_rows(input_ids, positions, metadata, rows)

    def _sampling_setup(self, requests: list[Request]) -> SamplingSetup:
        return build_sampling_setup(requests, [self._generator_for(r) for r in requests],
                                    self.transfers.to_device)

    def _sample(self, requests: list[Request], logits: torch.Tensor, result: RunnerOutput) -> torch.Tensor:
        """Process logits, sample one token per request (a device tensor, returned), and gather
        logprobs into ``result`` where asked."""
        setup = self._setup_cache.get(requests, self._sampling_setup)
        raw = torch.log_softmax(logits, dim=-1) if setup.raw_logprobs else None
        if setup.needs_processing:
            processing = build_logits_processing(requests, logits.shape[-1], self.device)
            if not processing.is_empty:
                logits = processing.apply(logits)
        if setup.plugin_processors:
            logits = self._apply_plugin_processors(requests, logits, setup.plugin_processors)
        tokens, probs = self.sampler(logits, setup.batch, need_probs=setup.processed_logprobs)
        if setup.logprob_rows:
            self._gather_logprobs(requests, setup.logprob_rows, tokens, raw, probs, result)
        return tokens

    def _gather_logprobs(self, requests: list[Request], wanted: list[int], tokens: torch.Tensor,
                         raw: torch.Tensor | None, probs: torch.Tensor | None, result: RunnerOutput) -> None:
        """Logprobs of the chosen tokens (and the top ones) of the rows in ``wanted``."""
        params = [requests[i].sampling_params for i in wanted]
        index = torch.tensor(wanted, device=self.device)
        if raw is not None and probs is not None:
            use_raw = torch.tensor([p.logprobs_mode == LogprobsMode.RAW for p in params], device=self.device)
            source = torch.where(use_raw.unsqueeze(1), raw[index], torch.log(probs[index]))
        else:
            source = raw[index] if raw is not None else torch.log(probs[index])
        entries = gather_logprobs(source, tokens[index], [p.logprobs for p in params])
        for i, entry in zip(wanted, entries):
            result.logprobs[requests[i].request_id] = entry

    def _apply_plugin_processors(self, requests: list[Request], logits: torch.Tensor,
                                 names: list[str]) -> torch.Tensor:
        """Run each named plugin processor on the rows of the requests that enabled it."""
        for name in names:
            rows = [i for i, r in enumerate(requests) if name in (r.sampling_params.logits_processors or ())]
            index = torch.tensor(rows, device=self.device)
            logits[index] = self.logits_processors[name](logits[index], [requests[i] for i in rows])
        return logits

    def _prompt_logprobs(self, scheduled: list[ScheduledRequest], hidden: torch.Tensor,
                         query_start: list[int], result: RunnerOutput) -> None:
        """Logprobs of each prompt token given the tokens before it, for requests that ask."""
        for index, s in enumerate(scheduled):
            k = s.request.sampling_params.prompt_logprobs
            if k is None:
                continue
            last = min(s.start + s.num_new_tokens, s.request.num_prompt_tokens - 1)
            if s.start >= last:
                continue
            rows = torch.arange(query_start[index], query_start[index] + last - s.start, device=self.device)
            targets = torch.tensor(s.request.prompt_token_ids[s.start + 1 : last + 1], device=self.device)
            entries: list[TokenLogprobs] = []
            for chunk in range(0, len(rows), PROMPT_LOGPROBS_CHUNK):
                logits = self.model.compute_logits(hidden[rows[chunk : chunk + PROMPT_LOGPROBS_CHUNK]])
                part = targets[chunk : chunk + PROMPT_LOGPROBS_CHUNK]
                entries += gather_logprobs(torch.log_softmax(logits, dim=-1), part, [k] * len(part))
            result.prompt_logprobs[s.request.request_id] = (s.start, entries)


def _positions(query_lens: list[int], context_lens: list[int], num_tokens: int) -> np.ndarray:
    """Absolute position of every flattened token: ``context_len + i`` within each sequence."""
    q = np.asarray(query_lens, dtype=np.int64)
    first = np.cumsum(q) - q
    offsets = np.asarray(context_lens, dtype=np.int64) - first
    return np.arange(num_tokens, dtype=np.int64) + np.repeat(offsets, q)


def _with_pending_siblings(requests: list[Request]) -> tuple[list[Request], list[int]]:
    """Requests to sample for, with the pending samples (``n > 1``) of requests sampling their
    first token, and for each the index of the logits row it samples from."""
    expanded, logits_rows = [], []
    for index, request in enumerate(requests):
        expanded.append(request)
        logits_rows.append(index)
        if request.pending_siblings and request.num_output_tokens == 0:
            expanded += request.pending_siblings
            logits_rows += [index] * len(request.pending_siblings)
    return expanded, logits_rows


def _dummy_prompt(num_tokens: int, block_ids: list[int]) -> list[ScheduledRequest]:
    from llmrt.sampling_params import SamplingParams

    request = Request("profile", [0] * num_tokens, SamplingParams(max_tokens=1))
    return [ScheduledRequest(request, 0, num_tokens, block_ids)]
