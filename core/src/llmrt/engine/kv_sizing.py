"""How many KV blocks fit: the arithmetic is logged so the user can see and change it."""

from __future__ import annotations

import logging

from llmrt.backends import Backend
from llmrt.config import EngineConfig

logger = logging.getLogger("llmrt.engine")
MIB = 1 << 20


class KVCacheTooSmallError(RuntimeError):
    """Not even one maximum-length request fits in the KV cache budget."""


def plan_kv_cache(runner, backend: Backend, config: EngineConfig) -> int:
    """Profile a forward pass of the largest batch, then size the KV cache; returns blocks."""
    block_size = config.cache.block_size
    weights = runner.weight_bytes()
    profile_tokens = min(config.scheduler.max_num_batched_tokens, config.scheduler.max_model_len)
    backend.reset_peak_memory()
    runner.profile_run(profile_tokens)
    peak = backend.peak_memory_bytes()
    used = max(peak or 0, weights)
    per_block = runner.kv_bytes_per_block()
    if config.cache.num_blocks_override is not None:
        num_blocks = config.cache.num_blocks_override
        logger.info("KV cache: %d blocks forced by configuration", num_blocks)
    else:
        budget = backend.kv_cache_budget_bytes(config, used)
        num_blocks = max(0, budget // per_block)
        useful = _max_useful_blocks(config)
        if num_blocks > useful:
            logger.info("KV cache: the budget holds %d blocks; %d are enough for max_num_seqs=%d requests "
                        "of max_model_len=%d tokens", num_blocks, useful, config.scheduler.max_num_seqs,
                        config.scheduler.max_model_len)
            num_blocks = useful
        logger.info(
            "KV cache: weights %.1f MiB, peak during profiling %s, budget %.1f MiB / %.3f MiB per "
            "block of %d tokens = %d blocks", weights / MIB,
            f"{peak / MIB:.1f} MiB" if peak is not None else "not tracked on this device",
            budget / MIB, per_block / MIB, block_size, num_blocks)
        needed = -(-config.scheduler.max_model_len // block_size)
        if num_blocks < needed:
            raise KVCacheTooSmallError(
                f"the KV cache budget ({budget / MIB:.1f} MiB) holds {num_blocks} blocks of {block_size} "
                f"tokens, fewer than one request of max_model_len {config.scheduler.max_model_len} needs "
                f"({needed}); lower --max-model-len or give the KV cache more memory "
                "(--kv-cache-memory / --gpu-memory-utilization)")
    logger.info("KV cache: %d blocks x %d tokens = %d tokens (%.1f MiB)", num_blocks, block_size,
                num_blocks * block_size, num_blocks * per_block / MIB)
    return num_blocks


def _max_useful_blocks(config: EngineConfig) -> int:
    """Blocks needed when every running request has the longest allowed context."""
    per_request = -(-config.scheduler.max_model_len // config.cache.block_size) + 1
    return config.scheduler.max_num_seqs * per_request
