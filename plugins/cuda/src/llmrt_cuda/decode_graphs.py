"""CUDA graphs of the decode forward pass: one per batch size, captured at startup, padded.

Decode steps (one new token per sequence) are many and small: launching ~10 kernels per layer
from Python costs more than running them. :class:`DecodeGraphs` captures the model's forward
pass for a fixed set of batch sizes into CUDA graphs that share one memory pool (largest first,
so smaller graphs reuse its blocks). A step of ``n`` sequences replays the smallest graph of at
least ``n`` rows; the padding rows write no keys (slot ``-1``) and attend to nothing
(``seq_len 0``). Logits and sampling stay outside the graph.

Graphs bake in the addresses of their inputs, so every input lives in a persistent buffer here
and each step copies its values in. They also bake in each layer's KV cache tensor: capture
after the cache is allocated, and capture again if it is reallocated. Attention implementations
must launch decode batches without host-side tensors; those that can say so with a class
attribute ``cuda_graph_safe = True``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from llmrt.attention.metadata import AttentionMetadata

logger = logging.getLogger("llmrt.cuda")

MIB = float(1 << 20)


def capture_sizes(max_num_seqs: int) -> list[int]:
    """Batch sizes to capture: 1, 2, 4, 8, then steps of 16 to 64, 32 to 256, 64 beyond."""
    sizes = [1, 2, 4, 8, *range(16, 65, 16), *range(96, 257, 32), *range(320, 1025, 64)]
    kept = [s for s in sizes if s < max_num_seqs]
    return kept + [max_num_seqs] if max_num_seqs <= 1024 else kept


def graph_safe(model: Any) -> bool:
    """True when every attention layer's implementation declares itself capturable."""
    return all(getattr(layer.impl, "cuda_graph_safe", False) for layer in model.attention_layers())


class DecodeGraphs:
    """Captured decode graphs of one model runner, and the persistent buffers they read."""

    def __init__(self, runner: Any) -> None:
        self.model = runner.model
        self.device = runner.device
        self.block_size = runner.block_size
        self.max_model_len = runner.config.scheduler.max_model_len
        self.sizes = capture_sizes(runner.config.scheduler.max_num_seqs)
        rows, width = self.sizes[-1], -(-self.max_model_len // self.block_size) + 1
        make = lambda *shape, dtype: torch.zeros(shape, dtype=dtype, device=self.device)  # noqa: E731
        self.input_ids = make(rows, dtype=torch.long)
        self.positions = make(rows, dtype=torch.long)
        self.slot_mapping = torch.full((rows,), -1, dtype=torch.long, device=self.device)
        self.seq_lens = make(rows, dtype=torch.int32)
        self.context_lens = make(rows, dtype=torch.int32)
        self.block_tables = make(rows, width, dtype=torch.int32)
        self.query_start_loc = torch.arange(rows + 1, dtype=torch.int32, device=self.device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.outputs: dict[int, torch.Tensor] = {}

    @property
    def max_batch(self) -> int:
        """The largest captured batch size."""
        return self.sizes[-1]

    def _metadata(self, size: int) -> AttentionMetadata:
        """Metadata over the buffers' first ``size`` rows; ``max_seq_len`` is the model's limit."""
        return AttentionMetadata(
            num_tokens=size,
            num_seqs=size,
            slot_mapping=self.slot_mapping[:size],
            query_start_loc=self.query_start_loc[: size + 1],
            seq_lens=self.seq_lens[:size],
            context_lens=self.context_lens[:size],
            block_tables=self.block_tables[:size],
            max_query_len=1,
            max_seq_len=self.max_model_len,
            block_size=self.block_size,
            query_start_loc_cpu=list(range(size + 1)),
            seq_lens_cpu=[1] * size,
        )

    @torch.inference_mode()
    def capture(self) -> None:
        """Capture every size (largest first) into one pool; log the time and memory it took."""
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()  # capture empties the allocator's cache: measure from there
        start, reserved0 = time.perf_counter(), torch.cuda.memory_reserved(self.device)
        free0 = torch.cuda.mem_get_info(self.device)[0]
        pool = torch.cuda.graph_pool_handle()
        for size in reversed(self.sizes):
            metadata = self._metadata(size)
            self.model(
                self.input_ids[:size], self.positions[:size], metadata
            )  # compiles kernels, warms cuBLAS
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                self.outputs[size] = self.model(
                    self.input_ids[:size], self.positions[:size], metadata
                )
            self.graphs[size] = graph
        for graph in self.graphs.values():
            # A graph's first replay uploads it to the device, several ms with the host stalled: in
            # a run that is an idle GPU each time the batch shrinks onto a smaller graph. The
            # buffers hold padding (no keys written or read), so these replays change nothing.
            graph.replay()
        torch.cuda.synchronize(self.device)
        pool_bytes = torch.cuda.memory_reserved(self.device) - reserved0
        device_bytes = free0 - torch.cuda.mem_get_info(self.device)[0]
        logger.info(
            "CUDA graphs: captured %d decode batch sizes (%d..%d) in %.2f s; they hold %.1f MiB "
            "(%.1f MiB in the allocator's pool)",
            len(self.sizes),
            self.sizes[0],
            self.sizes[-1],
            time.perf_counter() - start,
            device_bytes / MIB,
            pool_bytes / MIB,
        )

    def can_run(self, metadata: AttentionMetadata) -> bool:
        """Whether a step is a decode batch that a captured graph covers."""
        return (
            metadata.max_query_len == 1
            and metadata.num_tokens == metadata.num_seqs <= self.max_batch
            and metadata.block_tables.shape[1] <= self.block_tables.shape[1]
        )

    def run(
        self, input_ids: torch.Tensor, positions: torch.Tensor, metadata: AttentionMetadata
    ) -> torch.Tensor:
        """Copy the step in, replay the smallest fitting graph; hidden states ``[n, H]``."""
        n = metadata.num_seqs
        size = next(s for s in self.sizes if s >= n)
        width = metadata.block_tables.shape[1]
        self.input_ids[:n].copy_(input_ids)
        self.positions[:n].copy_(positions)
        self.slot_mapping[:n].copy_(metadata.slot_mapping)
        self.seq_lens[:n].copy_(metadata.seq_lens)
        self.block_tables[:n, :width].copy_(metadata.block_tables)
        if size > n:
            self.slot_mapping[n:size].fill_(-1)
            self.seq_lens[n:size].zero_()
        self.graphs[size].replay()
        return self.outputs[size][:n]
