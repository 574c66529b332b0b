"""CudaModelRunner: core's ModelRunner plus CUDA graphs for decode and graph-aware memory profiling.

Startup order (driven by the engine): ``load_model`` -> ``profile_run`` (the engine's KV sizing:
this runner also measures a decode batch of the largest graph size, whose activations the graph
pool will hold, and reports it to the backend's KV budget) -> ``allocate_kv_cache`` (then the
graphs are captured, since they bake in the cache's address, and one eager step of a mixed batch
warms up the kernels the first requests would otherwise compile). ``--enforce-eager`` skips graphs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from llmrt.attention.metadata import AttentionMetadata
from llmrt.engine.model_runner import ModelRunner

from llmrt_cuda.decode_graphs import DecodeGraphs, capture_sizes, graph_safe

logger = logging.getLogger("llmrt.cuda")

GRAPH_BOOKKEEPING_BYTES = 8 << 20
"""Device memory per captured graph beyond its activations (the driver's copy of the graph; about
6 MiB per graph of a 28- or 32-layer model was measured on an H200)."""


class CudaModelRunner(ModelRunner):
    """Replays captured decode graphs where a step allows it; runs eagerly otherwise."""

    def __init__(self, config: Any, backend: Any, host: Any, model_dir: str) -> None:
        super().__init__(config, backend, host, model_dir)
        self.graphs: DecodeGraphs | None = None
        self._profiling = False
        self._pads_rows = False  # set once the model is loaded: every attention layer takes padding

    def load_model(self) -> None:
        """Core's loading, then whether eager steps may be padded (:data:`EAGER_ROW_BUCKET`)."""
        super().load_model()
        self._pads_rows = all(getattr(layer.impl, "accepts_padded_rows", False)
                              for layer in self.model.attention_layers())

    def _use_graphs(self) -> bool:
        if self.config.enforce_eager:
            return False
        if not graph_safe(self.model):
            logger.info("CUDA graphs off: the attention implementation cannot be captured")
            return False
        return True

    @torch.inference_mode()
    def profile_run(self, num_tokens: int) -> None:
        """Profile a decode batch of the largest graph size, then the engine's prompt batch."""
        self._profiling = True
        try:
            self.backend.graph_memory_bytes = self._profile_decode() if self._use_graphs() else 0
            super().profile_run(num_tokens)
        finally:
            self._profiling = False

    def _profile_decode(self) -> int:
        """Bytes a decode forward pass of the largest captured batch allocates, plus bookkeeping.

        Its logits (float32, every row) and their softmax are computed too, eagerly, so that the
        engine's peak covers the sampling of a full decode batch.
        """
        sizes = capture_sizes(self.config.scheduler.max_num_seqs)
        rows = sizes[-1]
        self.allocate_kv_cache(rows)
        metadata = AttentionMetadata.build(
            [1] * rows, [0] * rows, [[i] for i in range(rows)], self.block_size, self.device
        )
        ids = torch.zeros(rows, dtype=torch.long, device=self.device)
        base = torch.cuda.memory_allocated(self.device)
        hidden = self.model(ids, ids, metadata)
        activations = torch.cuda.max_memory_allocated(self.device) - base
        torch.softmax(self.model.compute_logits(hidden), dim=-1)
        self.backend.synchronize()
        self.free_kv_cache()
        return activations + GRAPH_BOOKKEEPING_BYTES * len(sizes)

    def allocate_kv_cache(self, num_blocks: int, num_host_blocks: int = 0) -> None:
        """Allocate the caches; outside profiling, capture the decode graphs over them and warm up."""
        super().allocate_kv_cache(num_blocks, num_host_blocks)
        if self._profiling or num_blocks == 0:
            return
        if self._use_graphs():
            entry = self.host.graph_capture().find(self.backend.name)
            factory = entry.value if entry is not None else DecodeGraphs
            self.graphs = factory(self)
            self.graphs.capture()
        self._warm_up(num_blocks)

    def release(self) -> None:
        """Also drop the decode graphs (and with them their memory pool), then hand the freed
        memory back to the driver."""
        super().release()
        self.graphs = None
        torch.cuda.empty_cache()

    @torch.inference_mode()
    def _warm_up(self, num_blocks: int) -> None:
        """One eager step of the kinds startup has not run, so that the first requests do not wait.

        The profiling pass runs one prompt and graph capture pure decode batches (and empties
        the allocator's cache). The first real steps would otherwise compile (Triton) or load
        the kernels of a prompt chunk over a cached prefix mixed with decode rows and of random
        sampling, and allocate their activations afresh: on an H100, 2.8 s and then 0.4 s of
        the first nano run. So: a chunk of the step's token budget over a 21-token prefix, three
        decode rows, both sampling paths. The blocks it writes hold nothing yet.

        No position reaches ``max_model_len``, so the chunk is shorter than the budget when the
        budget exceeds the model's length: past it, the model's position tables (the rotary
        angles, learned position embeddings) may have no rows, and the GPU kernels do not check
        their indices.
        """
        from llmrt.sample.sampler import SamplingBatch
        from llmrt.sampling_params import SamplingParams

        max_len = self.config.scheduler.max_model_len
        context_lens = [min(c, max_len // 2) for c in (21, 5, 40, 100)]
        decode_blocks = sum(-(-(c + 1) // self.block_size) for c in context_lens[1:])
        room = (num_blocks - decode_blocks) * self.block_size - context_lens[0]
        chunk = min(self.config.scheduler.max_num_batched_tokens - 3, room, max_len - context_lens[0])
        if chunk < 2:
            return
        query_lens = [chunk, 1, 1, 1]
        tables, next_block = [], 0
        for total in map(sum, zip(query_lens, context_lens)):
            count = -(-total // self.block_size)
            tables.append(list(range(next_block, next_block + count)))
            next_block += count
        metadata = AttentionMetadata.build(query_lens, context_lens, tables, self.block_size, self.device)
        ids = torch.zeros(metadata.num_tokens, dtype=torch.long, device=self.device)
        positions = torch.cat([torch.arange(c, c + q) for q, c in zip(query_lens, context_lens)]).to(self.device)
        hidden = self.model(ids, positions, metadata)
        last = torch.tensor(metadata.query_start_loc_cpu[1:], device=self.device) - 1
        logits = self.model.compute_logits(hidden[last])
        params = [SamplingParams(temperature=0.0), SamplingParams(temperature=0.7),
                  SamplingParams(temperature=0.7, top_p=0.9, top_k=20), SamplingParams(temperature=1.0)]
        for rows in (params[:2], params):  # the direct draw, then the filtered one
            batch = SamplingBatch.build(rows, [None] * len(rows), self.device)
            self.sampler(logits[: len(rows)], batch)
        if self.graphs is not None:  # its largest batch is in the memory profile only with graphs
            _warm_up_logits(self.model, hidden[last[:1]], self.config.scheduler.max_num_seqs)
        if self._pads_rows:
            _warm_up_linear(self.model, eager_row_buckets(self.config.scheduler.max_num_batched_tokens),
                            self.dtype, self.device)
        self.backend.synchronize()

    def _run_model(
        self, input_ids: torch.Tensor, positions: torch.Tensor, metadata: AttentionMetadata,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Replay a decode graph when one covers the step, else run the model eagerly.

        With ``rows``, the whole pass still runs and its rows are selected after: a last layer
        limited to the sampling rows would multiply at any row count up to ``max_num_seqs``,
        which the eager row buckets below exist to avoid.
        """
        n = input_ids.shape[0]
        padded = padded_rows(n, self.config.scheduler.max_num_batched_tokens)
        if self.graphs is not None and self.graphs.can_run(metadata):
            hidden = self.graphs.run(input_ids, positions, metadata)
        elif padded == n or metadata.max_query_len == 1 or not self._pads_rows:
            # decode-only steps (graphs cover them unless --enforce-eager) keep their exact rows:
            # one-row products take the GEMV path
            hidden = self.model(input_ids, positions, metadata)
        else:
            pad = padded - n  # rows of token 0 at position 0: no key is stored for them (past num_tokens)
            input_ids = torch.cat([input_ids, input_ids.new_zeros(pad)])
            positions = torch.cat([positions, positions.new_zeros(pad)])
            hidden = self.model(input_ids, positions, metadata)[:n]
        return hidden if rows is None else hidden[rows]


EAGER_ROW_BUCKET = 256
"""Eager prompt and mixed steps run on a multiple of this many rows (padded; decode-only steps,
which graphs cover unless ``--enforce-eager``, keep their rows). cuBLAS picks a kernel per row count
and loads it on its first use, 5-9 ms of host time each (in a traced H100 nano run the odd-sized
last prompt chunk left the GPU idle for 72 ms); padded, every row count an eager step can have is
one of a few dozen, all run once at startup (:func:`_warm_up_linear`). The padding costs little:
matrix products of up to 256 rows take about as long as one row (the weights' bytes dominate),
and larger steps grow by under 256 rows."""


def padded_rows(num_tokens: int, max_tokens: int) -> int:
    """Rows an eager step of ``num_tokens`` runs on: the next multiple of
    :data:`EAGER_ROW_BUCKET`, or the step budget ``max_tokens`` where that is smaller."""
    bucket = -(-num_tokens // EAGER_ROW_BUCKET) * EAGER_ROW_BUCKET
    return max(num_tokens, min(bucket, max_tokens))


def eager_row_buckets(max_tokens: int) -> list[int]:
    """Every row count :func:`padded_rows` can return under the budget ``max_tokens``."""
    return sorted({padded_rows(n, max_tokens) for n in range(1, max_tokens + 1, EAGER_ROW_BUCKET)}
                  | {max_tokens})


def _warm_up_linear(model: Any, row_counts: list[int], dtype: torch.dtype, device: torch.device) -> None:
    """Each distinct linear layer's product once at every row count in ``row_counts``.

    Layers of the same shape and quantization share their kernels, so one of each is run: for a
    dense model, four (qkv, o, gate-up, down) times the few dozen eager row counts, well under a
    second. Products only: no layer's output is used, and no collective runs (the tensor-parallel
    reduction is left out).
    """
    start, seen = time.perf_counter(), set()
    for module in model.modules():
        method = getattr(module, "quant_method", None)
        if method is None or not hasattr(module, "in_features"):
            continue
        key = (type(method), module.in_features, module.out_features,
               tuple((n, p.dtype, tuple(p.shape)) for n, p in module.named_parameters(recurse=False)))
        if key in seen:
            continue
        seen.add(key)
        x = torch.zeros(max(row_counts), module.in_features, dtype=dtype, device=device)
        for rows in sorted(row_counts, reverse=True):
            method.apply(module, x[:rows], None)
    logger.info("Linear layers warmed at %d row counts (%d shapes) in %.2f s",
                len(row_counts), len(seen), time.perf_counter() - start)


def _warm_up_logits(model: Any, row: torch.Tensor, max_rows: int) -> None:
    """The LM head once at every row count a step can sample (1 to ``max_rows``).

    It runs eagerly, outside the graphs, on exactly the rows that sample, so the row count
    changes whenever a request joins or finishes; cuBLAS picks a kernel per shape and loads
    each kernel's module on its first use. Unwarmed, that cost 4-20 ms of host time in the
    steps that met a new count (an H100 nano run: ~0.27 s, the GPU idle meanwhile). Largest
    first: each smaller logits tensor then reuses a piece of the first one's cached block,
    where rising sizes would each take a new block and leave them all cached (gigabytes).
    """
    start, reserved = time.perf_counter(), torch.cuda.memory_reserved(row.device)
    rows = row.expand(max_rows, -1).contiguous()
    for count in range(max_rows, 0, -1):
        model.compute_logits(rows[:count])
    grown = (torch.cuda.memory_reserved(row.device) - reserved) / 2**20
    logger.info("LM head warmed at 1..%d rows in %.2f s (allocator cache grew %.0f MiB)",
                max_rows, time.perf_counter() - start, grown)
