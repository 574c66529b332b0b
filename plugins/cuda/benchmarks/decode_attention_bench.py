"""Decode attention kernel alone: time and achieved bandwidth per launch configuration.

    python decode_attention_bench.py

Three shapes (bf16, head size 128, 16-token blocks scattered at random over the cache):
Qwen3-0.6B (16 query / 8 kv heads) with 256 sequences of 100-1500 tokens, Llama-3-8B (32 / 8)
with 256 sequences of 256-512 tokens, and Llama-3-8B with one sequence of 384 tokens. Bytes
counted: every cached key and value read once. Each configuration's output is checked against
the default's.
"""

from __future__ import annotations

import random

import torch
import triton
from llmrt.attention.interface import AttentionConfig
from llmrt.attention.metadata import AttentionMetadata
from llmrt_triton import attention_plan as plan
from llmrt_triton.paged_attention import TritonPagedAttention

CONFIGS = [
    (64, 4, 2),
    (64, 4, 3),
    (64, 4, 4),
    (64, 8, 3),
    (128, 4, 3),
    (128, 4, 4),
    (128, 4, 5),
    (128, 8, 3),
    (32, 4, 4),
    (128, 8, 4),
    (256, 4, 3),
    (256, 8, 3),
]
SHAPES = [
    ("qwen3-0.6b x256", 256, 16, 8, 100, 1500),
    ("llama3-8b x256", 256, 32, 8, 256, 512),
    ("llama3-8b x1", 1, 32, 8, 384, 384),
]
BLOCK = 16
HEAD = 128


def _batch(seqs: int, lo: int, hi: int, device: torch.device) -> tuple[AttentionMetadata, int]:
    rng = random.Random(0)
    context = [rng.randint(lo, hi) for _ in range(seqs)]
    need = [-(-(c + 1) // BLOCK) for c in context]
    ids = list(range(sum(need) + 8))
    rng.shuffle(ids)
    tables, start = [], 0
    for n in need:
        tables.append(ids[start : start + n])
        start += n
    return AttentionMetadata.build([1] * seqs, context, tables, BLOCK, device), len(ids)


def _with_config(config: tuple[int, int, int]):
    block_n, warps, stages = config
    return lambda group, head_size: plan.LaunchConfig(
        max(16, triton.next_power_of_2(group)), block_n, warps, stages
    )


def run_shape(name: str, seqs: int, heads: int, kv_heads: int, lo: int, hi: int) -> None:
    device = torch.device("cuda")
    metadata, blocks = _batch(seqs, lo, hi, device)
    cache = torch.randn(2, blocks, BLOCK, kv_heads, HEAD, dtype=torch.bfloat16, device=device)
    qkv = torch.randn(seqs, (heads + 2 * kv_heads) * HEAD, dtype=torch.bfloat16, device=device)
    q, k, v = qkv.split([heads * HEAD, kv_heads * HEAD, kv_heads * HEAD], -1)
    impl = TritonPagedAttention(
        AttentionConfig(heads, kv_heads, HEAD, HEAD**-0.5, dtype=torch.bfloat16)
    )
    nbytes = sum(metadata.seq_lens_cpu) * kv_heads * HEAD * 2 * 2
    reference = impl.forward(q, k, v, cache, metadata).float()
    default = plan.decode_config
    for config in CONFIGS:
        plan.decode_config = _with_config(config)
        try:
            same = (
                impl.forward(q, k, v, cache, metadata).float() - reference
            ).abs().max().item() < 2e-2
            ms = triton.testing.do_bench(
                lambda: impl.forward(q, k, v, cache, metadata), warmup=25, rep=100
            )
            print(f"| {name} | {config} | {ms * 1000:.1f} | {nbytes / ms / 1e6:.0f} | {same} |")
        finally:
            plan.decode_config = default


def main() -> None:
    print("| shape | (block_n, warps, stages) | us | GB/s | same output |\n|---|---|---|---|---|")
    for shape in SHAPES:
        run_shape(*shape)


if __name__ == "__main__":
    main()
