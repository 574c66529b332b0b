"""Prometheus metrics under vLLM's names (``vllm:...``) and llmrt's own (``llmrt:...``).

Engine state (running and waiting requests, KV cache use, prefix-cache counters) comes from
the latest stats snapshot the engine process sent and is read at scrape time by a collector.
Per-request latencies and token counts are measured in the front end as deltas arrive.
Each metric is exported twice, once per prefix, with the same value, so dashboards written
for vLLM work unchanged.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from llmrt.server.messages import EngineStats, RequestDelta

PREFIXES = ("vllm", "llmrt")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.25,
    2.5,
    5.0,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    320.0,
    640.0,
)
_E2E_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    320.0,
    640.0,
    1280.0,
)
_TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)


class _Twin:
    """The same metric under both prefixes."""

    def __init__(
        self, kind: type, name: str, doc: str, registry: CollectorRegistry, **kwargs: Any
    ) -> None:
        self.metrics = [
            kind(f"{prefix}:{name}", doc, registry=registry, **kwargs) for prefix in PREFIXES
        ]

    def labels(self, *values: str) -> _TwinChild:
        """The child of each metric with these label values."""
        return _TwinChild([metric.labels(*values) for metric in self.metrics])


@dataclass
class _TwinChild:
    children: list[Any]

    def inc(self, amount: float = 1.0) -> None:
        for child in self.children:
            child.inc(amount)

    def observe(self, value: float) -> None:
        for child in self.children:
            child.observe(value)


class EngineStatsCollector(Collector):
    """Gauges and cumulative counters read from the engine's latest stats snapshot."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.stats: EngineStats | None = None

    def collect(self) -> Iterator[Metric]:
        stats = self.stats or EngineStats(0, 0, 0.0, 0, 0, 0, 0)
        for prefix in PREFIXES:
            yield from self._families(prefix, stats)

    def _families(self, prefix: str, s: EngineStats) -> Iterator[Metric]:
        gauges = [
            ("num_requests_running", "Sequences running in the engine.", s.num_running),
            ("num_requests_waiting", "Sequences waiting to be scheduled.", s.num_waiting),
            (
                "kv_cache_usage_perc",
                "Fraction of KV cache blocks in use (1 means full).",
                s.kv_cache_usage,
            ),
            ("kv_cache_free_blocks", "KV cache blocks free to allocate.", s.num_free_blocks),
            ("kv_cache_num_blocks", "KV cache blocks in total.", s.num_blocks),
        ]
        for name, doc, value in gauges:
            family = GaugeMetricFamily(f"{prefix}:{name}", doc, labels=["model_name"])
            family.add_metric([self.model_name], value)
            yield family
        counters = [
            (
                "prefix_cache_queries",
                "Prompt tokens looked up in the prefix cache.",
                s.prefix_cache_queries,
            ),
            ("prefix_cache_hits", "Prompt tokens found in the prefix cache.", s.prefix_cache_hits),
        ]
        for name, doc, value in counters:
            family = CounterMetricFamily(f"{prefix}:{name}", doc, labels=["model_name"])
            family.add_metric([self.model_name], value)
            yield family


@dataclass
class _SequenceClock:
    last: float
    first_token_seen: bool = False
    tokens: int = 0


@dataclass
class RequestObserver:
    """Times the sequences of one request as their deltas arrive."""

    metrics: ServerMetrics
    arrival: float
    clocks: dict[tuple[int, int], _SequenceClock] = field(default_factory=dict)
    prompts_counted: set[int] = field(default_factory=set)

    def on_delta(self, prompt_index: int, delta: RequestDelta) -> None:
        """Record one delta of sequence ``delta.index`` of prompt ``prompt_index``."""
        now = time.monotonic()
        metrics = self.metrics
        if prompt_index not in self.prompts_counted:
            self.prompts_counted.add(prompt_index)
            metrics.prompt_tokens.inc(delta.num_prompt_tokens)
            metrics.request_prompt_tokens.observe(delta.num_prompt_tokens)
        clock = self.clocks.setdefault((prompt_index, delta.index), _SequenceClock(self.arrival))
        if delta.token_ids:
            metrics.generation_tokens.inc(len(delta.token_ids))
            clock.tokens += len(delta.token_ids)
            if clock.first_token_seen:
                metrics.inter_token_latency.observe((now - clock.last) / len(delta.token_ids))
            else:
                metrics.time_to_first_token.observe(now - self.arrival)
                clock.first_token_seen = True
            clock.last = now
        if delta.finish_reason is not None:
            metrics.e2e_latency.observe(now - self.arrival)
            metrics.request_generation_tokens.observe(clock.tokens)
            metrics.request_success.labels(self.metrics.model_name, delta.finish_reason).inc()


class ServerMetrics:
    """Every metric of one server, in a registry of its own."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.registry = CollectorRegistry(auto_describe=True)
        self.engine = EngineStatsCollector(model_name)
        self.registry.register(self.engine)
        self.prompt_tokens = self._per_model(Counter, "prompt_tokens", "Prefill tokens processed.")
        self.generation_tokens = self._per_model(Counter, "generation_tokens", "Generated tokens.")
        self.time_to_first_token = self._per_model(
            Histogram, "time_to_first_token_seconds", "Time to first token.", buckets=_LATENCY_BUCKETS)
        self.inter_token_latency = self._per_model(
            Histogram, "inter_token_latency_seconds", "Time between tokens.", buckets=_LATENCY_BUCKETS)
        self.e2e_latency = self._per_model(
            Histogram, "e2e_request_latency_seconds", "Arrival to last token.", buckets=_E2E_BUCKETS)
        self.request_prompt_tokens = self._per_model(
            Histogram, "request_prompt_tokens", "Prompt tokens per request.", buckets=_TOKEN_BUCKETS)
        self.request_generation_tokens = self._per_model(
            Histogram, "request_generation_tokens", "Generated tokens per sequence.", buckets=_TOKEN_BUCKETS)
        self.request_success = _Twin(
            Counter,
            "request_success",
            "Finished sequences by finish reason.",
            self.registry,
            labelnames=["model_name", "finished_reason"],
        )

    def _per_model(self, kind: Any, name: str, documentation: str, **kwargs: Any) -> Any:
        """A metric (under both prefixes) labelled with this server's model name."""
        return _Twin(kind, name, documentation, self.registry, labelnames=["model_name"], **kwargs).labels(
            self.model_name)

    def count_aborted(self, sequences: int) -> None:
        """Count sequences aborted before they finished (client gone, or shutdown)."""
        self.request_success.labels(self.model_name, "abort").inc(sequences)

    def update_engine_stats(self, stats: EngineStats) -> None:
        """Keep the engine's latest snapshot for the next scrape."""
        self.engine.stats = stats

    def observer(self, arrival: float | None = None) -> RequestObserver:
        """A per-request observer (``arrival`` from ``time.monotonic()``; default now)."""
        return RequestObserver(self, time.monotonic() if arrival is None else arrival)

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)


async def observed(
    items: AsyncIterator[tuple[int, RequestDelta]], observer: RequestObserver
) -> AsyncIterator[tuple[int, RequestDelta]]:
    """Pass ``items`` through, recording each delta's metrics."""
    async for prompt_index, delta in items:
        observer.on_delta(prompt_index, delta)
        yield prompt_index, delta
