"""How one attention call is launched: tile sizes, KV splits and the prompt tile table.

Everything here is decided on the host from numbers the step already has on the host, and
for decode batches from the batch size and ``max_seq_len`` alone, so that a CUDA graph
captured for a batch size replays the same launch for any later batch of that size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import triton

MAX_SPLITS = 16
"""Most KV splits of one decode tile (its partial results are combined by a second kernel)."""

MIN_KEYS_PER_SPLIT = 128
"""A split shorter than this costs more in the combine step than it gains."""


@dataclass(frozen=True)
class LaunchConfig:
    """Compile-time shape of one launch of the attention kernel."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


def decode_config(group: int, head_size: int) -> LaunchConfig:
    """Tiles of one token (all ``group`` query heads of a kv head): at least 16 rows for ``tl.dot``.

    128 keys per step, 4 warps, 3 stages: the fastest or within 1% of it of twelve
    configurations measured alone on an H100 (plugins/cuda/benchmarks/NOTES.md) at the shapes of
    Qwen3-0.6B (group 2) with 256 sequences of 100-1500 tokens and Llama-3-8B (group 4) with 256
    of 256-512, and 2.8% faster than 8 warps on the nano workload end to end. Heads over 128
    take 32 keys per step, so that three stages fit in shared memory.
    """
    block_m = max(16, triton.next_power_of_2(group))
    if head_size > 128:
        return LaunchConfig(block_m, 32, 4, 3)
    return LaunchConfig(block_m, 128, 4, 3)


def prompt_config(group: int, head_size: int) -> LaunchConfig:
    """Tiles of several tokens for prompts; smaller key blocks for large heads (registers)."""
    block_m = max(64, triton.next_power_of_2(group))
    if head_size > 128:
        return LaunchConfig(block_m, 32, 8, 1)
    return LaunchConfig(block_m, 64, 4, 2)


@lru_cache(maxsize=16)
def _multiprocessors(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def decode_splits(num_seqs: int, num_kv_heads: int, max_seq_len: int, device: torch.device) -> int:
    """KV splits per decode tile: enough programs for two waves over the GPU, none when unneeded."""
    programs = max(1, num_seqs * num_kv_heads)
    wanted = -(-2 * _multiprocessors(device) // programs)
    by_length = max(1, max_seq_len // MIN_KEYS_PER_SPLIT)
    return max(1, min(MAX_SPLITS, wanted, by_length))


def prompt_tiles(
    query_start_loc: list[int], tokens_per_tile: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tile_seq, tile_start)`` int32 tensors: each tile's sequence and first query index."""
    starts = np.asarray(query_start_loc, dtype=np.int64)
    lens = starts[1:] - starts[:-1]
    counts = -(-lens // tokens_per_tile)
    tile_seq = np.repeat(np.arange(len(lens), dtype=np.int32), counts)
    first_tile = np.cumsum(counts) - counts
    tile_start = (np.arange(int(counts.sum())) - np.repeat(first_tile, counts)) * tokens_per_tile
    table = torch.from_numpy(np.stack([tile_seq, tile_start.astype(np.int32)]))
    if device.type != "cpu":  # a pageable copy would wait for every kernel already queued
        table = table.pin_memory()
    table = table.to(device, non_blocking=True)
    return table[0], table[1]
