"""ModelRunner: turns a SchedulerOutput into one forward pass and one sampled token per row.

It is device-agnostic: tensors go to ``backend.device()``, ops and attention come from the
plugin registries. A backend that needs more (graph capture, persistent buffers) subclasses it
and returns its subclass from ``Backend.create_model_runner``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from llmrt.attention.metadata import AttentionMetadata
from llmrt.backends import Backend
from llmrt.config import EngineConfig
from llmrt.engine.model_setup import build_layer_context, choose_dtype, resolve_architecture
from llmrt.model.hf_config import load_hf_config
from llmrt.model.loader import load_model
from llmrt.plugins.host import PluginHost
from llmrt.sample.sampler import Sampler, SamplingBatch
from llmrt.sched.output import ScheduledRequest, SchedulerOutput

logger = logging.getLogger("llmrt.engine")


@dataclass
class RunnerOutput:
    """Sampled token ids per request id (only requests whose chunk reached their end)."""

    sampled_token_ids: dict[str, list[int]]


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
        self.generators: dict[str, torch.Generator] = {}
        self.model: Any = None

    # -- startup -----------------------------------------------------------------------------

    def load_model(self) -> None:
        """Build the architecture's model on the device and load its weights."""
        factory = resolve_architecture(self.host, self.hf_config)
        ctx = build_layer_context(self.host, self.config, self.backend, self.hf_config, self.dtype)
        self.model = load_model(self.model_dir, self.hf_config, ctx, factory)

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

    def allocate_kv_cache(self, num_blocks: int) -> None:
        """Create each attention layer's paged KV cache with ``num_blocks`` blocks."""
        for layer in self.model.attention_layers():
            cfg = layer.impl.config
            shape = type(layer.impl).kv_cache_shape(num_blocks, self.block_size, cfg.num_kv_heads, cfg.head_size)
            layer.kv_cache = torch.zeros(shape, dtype=self.dtype, device=self.device)

    @torch.inference_mode()
    def profile_run(self, num_tokens: int) -> None:
        """Run one forward pass of ``num_tokens`` prompt tokens to find peak activation memory."""
        num_blocks = -(-num_tokens // self.block_size)
        self.allocate_kv_cache(num_blocks)
        scheduled = _dummy_prompt(num_tokens, list(range(num_blocks)))
        input_ids, positions, metadata, _ = self._prepare(scheduled)
        hidden = self.model(input_ids, positions, metadata)
        self.model.compute_logits(hidden[-1:])
        self.backend.synchronize()
        for layer in self.model.attention_layers():
            layer.kv_cache = None

    # -- steps -------------------------------------------------------------------------------

    def _copy_blocks(self, pairs: list[tuple[int, int]]) -> None:
        if not pairs:
            return
        src = torch.tensor([p[0] for p in pairs], device=self.device)
        dst = torch.tensor([p[1] for p in pairs], device=self.device)
        for layer in self.model.attention_layers():
            layer.kv_cache[:, dst] = layer.kv_cache[:, src]

    def _prepare(self, scheduled: list[ScheduledRequest]):
        """Flatten the batch into input ids, positions and attention metadata."""
        input_ids: list[int] = []
        positions: list[int] = []
        query_lens, context_lens, block_tables, sample_rows = [], [], [], []
        for s in scheduled:
            input_ids += s.request.token_ids_slice(s.start, s.start + s.num_new_tokens)
            positions += range(s.start, s.start + s.num_new_tokens)
            query_lens.append(s.num_new_tokens)
            context_lens.append(s.start)
            block_tables.append(s.block_ids)
            if s.samples:
                sample_rows.append(len(input_ids) - 1)
        metadata = AttentionMetadata.build(query_lens, context_lens, block_tables, self.block_size, self.device)
        ids = torch.tensor(input_ids, dtype=torch.long, device=self.device)
        pos = torch.tensor(positions, dtype=torch.long, device=self.device)
        return ids, pos, metadata, sample_rows

    def _generator_for(self, request: Any) -> torch.Generator | None:
        seed = request.sampling_params.seed
        if seed is None or request.sampling_params.temperature < 1e-5:
            return None
        generator = self.generators.get(request.request_id)
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed)
            self.generators[request.request_id] = generator
        return generator

    @torch.inference_mode()
    def execute(self, output: SchedulerOutput) -> RunnerOutput:
        """Run one step: block copies, the forward pass, logits of sampling rows, sampling."""
        for request_id in output.finished_request_ids + output.preempted_request_ids:
            self.generators.pop(request_id, None)
        self._copy_blocks(output.copy_blocks)
        if output.is_empty:
            return RunnerOutput({})
        input_ids, positions, metadata, sample_rows = self._prepare(output.scheduled)
        hidden = self.model(input_ids, positions, metadata)
        sampling = [s.request for s in output.scheduled if s.samples]
        if not sampling:
            return RunnerOutput({})
        logits = self.model.compute_logits(hidden[torch.tensor(sample_rows, device=self.device)])
        batch = SamplingBatch.build([r.sampling_params for r in sampling],
                                    [self._generator_for(r) for r in sampling], self.device)
        tokens = self.sampler(logits, batch).tolist()
        return RunnerOutput({r.request_id: [t] for r, t in zip(sampling, tokens)})


def _dummy_prompt(num_tokens: int, block_ids: list[int]) -> list[ScheduledRequest]:
    from llmrt.engine.request import Request
    from llmrt.sampling_params import SamplingParams

    request = Request("profile", [0] * num_tokens, SamplingParams(max_tokens=1))
    return [ScheduledRequest(request, 0, num_tokens, block_ids)]
