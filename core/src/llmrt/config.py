"""Engine configuration: plain dataclasses grouped by the part of the engine they steer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelConfig:
    """Which model to load and how."""

    model: str
    tokenizer: str | None = None
    revision: str | None = None
    dtype: str = "auto"
    max_model_len: int | None = None
    seed: int = 0
    trust_remote_code: bool = False
    quantization: str | None = None
    served_model_name: str | None = None
    generation_config: str = "auto"
    """``"auto"`` reads generation_config.json from the model; ``"none"`` ignores it; else a folder."""


@dataclass
class CacheConfig:
    """The paged KV cache: block size, prefix caching and how much memory it gets."""

    block_size: int | None = None
    """Tokens per KV block; ``None`` takes the backend's :meth:`Backend.default_block_size`."""
    enable_prefix_caching: bool = True
    kv_cache_bytes: int | None = None
    """Exact KV cache size in bytes; when ``None`` it comes from ``memory_fraction``."""
    memory_fraction: float = 0.9
    """Share of device memory llmrt may use in total (weights + activations + KV cache)."""
    num_blocks_override: int | None = None
    """Force this many KV blocks (tests use it to provoke preemption)."""
    swap_space_bytes: int = 0
    """Host memory for swapped-out KV blocks when ``preemption_mode == "swap"``."""
    block_allocator: str = "lru"


@dataclass
class SchedulerConfig:
    """The per-step token budget and the policy that fills it."""

    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 256
    max_model_len: int = 2048
    """Filled from the model at engine start; the scheduler refuses longer requests."""
    policy: str = "fcfs"
    """``"fcfs"`` (arrival order) or ``"priority"`` (lower ``priority`` value first, then arrival)."""
    preemption_mode: str = "recompute"
    """``"recompute"`` frees a preempted request's blocks; ``"swap"`` copies them to host memory."""
    scheduler: str = "fcfs"
    """Name of the registered scheduler implementation."""


@dataclass
class ParallelConfig:
    """How the model is split across devices (world size 1 until distributed inference lands)."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1


@dataclass
class EngineConfig:
    """Everything an engine needs; built by the ``LLM`` class or the CLI from user options."""

    model: ModelConfig
    cache: CacheConfig = field(default_factory=CacheConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    backend: str | None = None
    attention_backend: str | None = None
    num_threads: int | None = None
    enforce_eager: bool = False
    async_scheduling: bool | None = None
    """Schedule step N+1 while the device computes step N (``engine/async_scheduling.py``);
    ``None`` lets the backend decide (on where ``Backend.overlaps_host_and_device()``)."""
    plugin_options: dict[str, Any] = field(default_factory=dict)
