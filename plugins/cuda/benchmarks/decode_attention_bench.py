"""Decode attention kernel alone: time and achieved bandwidth per launch configuration.

    python decode_attention_bench.py            # launch configurations
    python decode_attention_bench.py --splits   # KV splits by batch size (the end of a run)
    python decode_attention_bench.py --spread   # blocks spread over a large cache (TLB reach)
    python decode_attention_bench.py --layout   # token- against head-major blocks, 16 and 64 tokens
    python decode_attention_bench.py --native   # the CUDA C++ kernel (llmrt_cuda._C) against Triton
    python decode_attention_bench.py --prompt   # prompt attention (a nano prompt step) by launch

Three shapes (bf16, head size 128, 16-token blocks scattered at random over the cache):
Qwen3-0.6B (16 query / 8 kv heads) with 256 sequences of 100-1500 tokens, Llama-3-8B (32 / 8)
with 256 sequences of 256-512 tokens, and Llama-3-8B with one sequence of 384 tokens. Bytes
counted: every cached key and value read once. Each configuration's output is checked against
the default's.
"""

from __future__ import annotations

import itertools
import random
import sys

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
    (32, 2, 3),
    (64, 2, 3),
    (64, 2, 4),
    (128, 2, 3),
    (32, 1, 3),
    (64, 1, 3),
]
SHAPES = [
    ("qwen3-0.6b x256", 256, 16, 8, 100, 1500),
    ("llama3-8b x256", 256, 32, 8, 256, 512),
    ("llama3-8b x1", 1, 32, 8, 384, 384),
]
BLOCK = 16
HEAD = 128


def _batch(
    seqs: int, lo: int, hi: int, device: torch.device, pool: int = 0, block: int = BLOCK
) -> tuple[AttentionMetadata, int]:
    """Metadata of ``seqs`` decodes; blocks of ``block`` tokens drawn at random from a pool of
    ``pool`` (default: just enough) blocks. Returns it with the pool size."""
    rng = random.Random(0)
    context = [rng.randint(lo, hi) for _ in range(seqs)]
    need = [-(-(c + 1) // block) for c in context]
    ids = list(range(max(pool, sum(need) + 8)))
    rng.shuffle(ids)
    tables, start = [], 0
    for n in need:
        tables.append(ids[start : start + n])
        start += n
    return AttentionMetadata.build([1] * seqs, context, tables, block, device), len(ids)


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


def _time_step(seqs: int, lo: int, hi: int, pool: int = 0) -> tuple[float, float, int]:
    """(us per call, GB/s, splits) of Qwen3-0.6B's decode attention with the default launch."""
    device = torch.device("cuda")
    metadata, blocks = _batch(seqs, lo, hi, device, pool)
    cache = torch.empty(2, blocks, BLOCK, 8, HEAD, dtype=torch.bfloat16, device=device)
    cache.view(-1)[:: 1 << 20].normal_()  # touch every page without writing 2 x blocks tokens
    qkv = torch.randn(seqs, 32 * HEAD, dtype=torch.bfloat16, device=device)
    q, k, v = qkv.split([16 * HEAD, 8 * HEAD, 8 * HEAD], -1)
    impl = TritonPagedAttention(AttentionConfig(16, 8, HEAD, HEAD**-0.5, dtype=torch.bfloat16))
    nbytes = sum(metadata.seq_lens_cpu) * 8 * HEAD * 2 * 2
    ms = triton.testing.do_bench(lambda: impl.forward(q, k, v, cache, metadata), warmup=25, rep=100)
    splits = plan.decode_splits(seqs, 8, metadata.max_seq_len, device)
    del cache
    torch.cuda.empty_cache()
    return ms * 1000, nbytes / ms / 1e6, splits


def splits_table() -> None:
    """Fewer sequences (the end of a nano run), each split count forced."""
    print("| sequences (600-1600 tokens) | splits | us | GB/s |\n|---|---|---|---|")
    heuristic = plan.decode_splits
    for seqs in (256, 128, 64, 32, 16):
        for forced in (None, 1, 2, 4, 8):
            if forced is not None:
                plan.decode_splits = lambda *args, n=forced: n
            try:
                us, gbs, splits = _time_step(seqs, 600, 1600)
            finally:
                plan.decode_splits = heuristic
            label = f"{splits} (heuristic)" if forced is None else str(splits)
            print(f"| {seqs} | {label} | {us:.1f} | {gbs:.0f} |")


def spread_table() -> None:
    """256 sequences' blocks packed into just enough memory, or spread over a large cache."""
    print("| cache size | us | GB/s |\n|---|---|---|")
    block_bytes = 2 * BLOCK * 8 * HEAD * 2
    for gib in (0, 8, 32, 64):
        us, gbs, _ = _time_step(256, 100, 1500, pool=(gib << 30) // block_bytes)
        print(f"| {gib or 'just enough'} GiB | {us:.1f} | {gbs:.0f} |")


def layout_table() -> None:
    """The same decode batches over the default cache layout (a token's heads side by side) and
    over one where each (block, head) holds its 16 tokens contiguously (the kernel reads the
    cache through strides; the step's own keys are not written, for the permuted view)."""
    import llmrt_triton.paged_attention as paged

    device = torch.device("cuda")
    print("| shape | layout | us | GB/s | same output |\n|---|---|---|---|---|")
    write = paged.write_kv_cache
    paged.write_kv_cache = lambda *args: None
    try:
        for (name, seqs, heads, kv_heads, lo, hi), block in itertools.product(SHAPES[:2], (16, 64)):
            name = f"{name}, blocks of {block}"
            metadata, blocks = _batch(seqs, lo, hi, device, block=block)
            default = torch.randn(2, blocks, block, kv_heads, HEAD, dtype=torch.bfloat16, device=device)
            per_head = default.permute(0, 1, 3, 2, 4).contiguous().permute(0, 1, 3, 2, 4)
            qkv = torch.randn(seqs, (heads + 2 * kv_heads) * HEAD, dtype=torch.bfloat16, device=device)
            q, k, v = qkv.split([heads * HEAD, kv_heads * HEAD, kv_heads * HEAD], -1)
            impl = TritonPagedAttention(AttentionConfig(heads, kv_heads, HEAD, HEAD**-0.5, dtype=torch.bfloat16))
            nbytes = sum(metadata.seq_lens_cpu) * kv_heads * HEAD * 2 * 2
            reference = impl.forward(q, k, v, default, metadata).float()
            for label, cache in (("token-major (default)", default), ("head-major", per_head)):
                same = (impl.forward(q, k, v, cache, metadata).float() - reference).abs().max().item() < 2e-2
                ms = triton.testing.do_bench(lambda c=cache: impl.forward(q, k, v, c, metadata), warmup=25, rep=100)
                print(f"| {name} | {label} | {ms * 1000:.1f} | {nbytes / ms / 1e6:.0f} | {same} |")
    finally:
        paged.write_kv_cache = write


def native_table() -> None:
    """Triton's decode kernel against the CUDA C++ one (``llmrt_cuda.attention``), same batches;
    then the card's read bandwidth (a sum over 4 GiB) as the ceiling."""
    from llmrt_cuda.attention import CudaPagedAttention

    device = torch.device("cuda")
    shapes = SHAPES + [
        ("qwen3-0.6b x256, 600-2000", 256, 16, 8, 600, 2000),
        ("qwen3-0.6b x64", 64, 16, 8, 100, 1500),
        ("llama3-8b x1, 4000", 1, 32, 8, 4000, 4000),
    ]
    print("| shape | kernel | us | GB/s | max diff vs Triton |\n|---|---|---|---|---|")
    for name, seqs, heads, kv_heads, lo, hi in shapes:
        metadata, blocks = _batch(seqs, lo, hi, device)
        cache = torch.randn(2, blocks, BLOCK, kv_heads, HEAD, dtype=torch.bfloat16, device=device)
        qkv = torch.randn(seqs, (heads + 2 * kv_heads) * HEAD, dtype=torch.bfloat16, device=device)
        q, k, v = qkv.split([heads * HEAD, kv_heads * HEAD, kv_heads * HEAD], -1)
        config = AttentionConfig(heads, kv_heads, HEAD, HEAD**-0.5, dtype=torch.bfloat16)
        nbytes = sum(metadata.seq_lens_cpu) * kv_heads * HEAD * 2 * 2
        reference = TritonPagedAttention(config).forward(q, k, v, cache, metadata).float()
        for label, impl in (("triton", TritonPagedAttention(config)), ("cuda", CudaPagedAttention(config))):
            diff = (impl.forward(q, k, v, cache, metadata).float() - reference).abs().max().item()
            ms = triton.testing.do_bench(
                lambda i=impl: i.forward(q, k, v, cache, metadata), warmup=25, rep=200
            )
            print(f"| {name} | {label} | {ms * 1000:.1f} | {nbytes / ms / 1e6:.0f} | {diff:.2e} |")
        del cache
        torch.cuda.empty_cache()
    data = torch.ones(1 << 31, dtype=torch.bfloat16, device=device)
    ms = triton.testing.do_bench(lambda: data.sum(dtype=torch.float32), warmup=10, rep=100)
    print(f"| read ceiling | torch sum of 4 GiB | {ms * 1000:.1f} | {data.numel() * 2 / ms / 1e6:.0f} | |")


PROMPT_CONFIGS = [  # (block_m, block_n, warps, stages); (64, 64, 4, 2) was the default
    (64, 64, 4, 2),
    (64, 64, 4, 3),
    (64, 128, 4, 2),
    (128, 64, 4, 2),
    (128, 64, 8, 2),
    (128, 64, 8, 3),
    (128, 128, 8, 2),
    (128, 32, 4, 3),
    (256, 64, 8, 2),
]


def _prompt_batch(tokens: int, lo: int, hi: int, device: torch.device) -> tuple[AttentionMetadata, int]:
    """Metadata of whole prompts (no cached prefix) of lengths uniform in [lo, hi] filling a
    step of ``tokens``, blocks drawn at random; returns it with the number of blocks."""
    rng = random.Random(0)
    lens: list[int] = []
    while sum(lens) < tokens:
        lens.append(min(rng.randint(lo, hi), tokens - sum(lens)))
    need = [-(-n // BLOCK) for n in lens]
    ids = list(range(sum(need) + 8))
    rng.shuffle(ids)
    tables, start = [], 0
    for n in need:
        tables.append(ids[start : start + n])
        start += n
    return AttentionMetadata.build(lens, [0] * len(lens), tables, BLOCK, device), len(ids)


def prompt_table() -> None:
    """A nano prompt step (8,192 tokens of prompts of 100-1,024, Qwen3-0.6B heads) by launch
    configuration and tile order; TFLOP/s counts the causal work (QK and PV) once."""
    device = torch.device("cuda")
    metadata, blocks = _prompt_batch(8192, 100, 1024, device)
    cache = torch.randn(2, blocks, BLOCK, 8, HEAD, dtype=torch.bfloat16, device=device)
    n = metadata.num_tokens
    qkv = torch.randn(n, 32 * HEAD, dtype=torch.bfloat16, device=device)
    q, k, v = qkv.split([16 * HEAD, 8 * HEAD, 8 * HEAD], -1)
    impl = TritonPagedAttention(AttentionConfig(16, 8, HEAD, HEAD**-0.5, dtype=torch.bfloat16))
    lens = [b - a for a, b in zip(metadata.query_start_loc_cpu, metadata.query_start_loc_cpu[1:])]
    flops = sum(length * (length + 1) / 2 for length in lens) * 16 * HEAD * 4
    reference = impl.forward(q, k, v, cache, metadata).float()
    default_config, default_tiles = plan.prompt_config, plan.prompt_tiles
    print(f"prompt step: {len(lens)} prompts, {n} tokens, {flops / 1e9:.0f} GFLOP")
    print("| (block_m, block_n, warps, stages) | tiles | us | TFLOP/s | max diff |\n|---|---|---|---|---|")
    for config, order in itertools.product(PROMPT_CONFIGS, ("in order", "last first")):
        plan.prompt_config = lambda group, head_size, c=config: plan.LaunchConfig(*c)
        if order == "last first":
            plan.prompt_tiles = lambda *args: tuple(t.flip(0) for t in default_tiles(*args))
        try:
            metadata.scratch.clear()
            diff = (impl.forward(q, k, v, cache, metadata).float() - reference).abs().max().item()
            ms = triton.testing.do_bench(lambda: impl.forward(q, k, v, cache, metadata), warmup=25, rep=100)
            print(f"| {config} | {order} | {ms * 1000:.1f} | {flops / ms / 1e9:.1f} | {diff:.2e} |")
        except Exception as error:  # a configuration that does not fit (shared memory, registers)
            print(f"| {config} | {order} | failed: {str(error)[:80]} | | |")
        finally:
            plan.prompt_config, plan.prompt_tiles = default_config, default_tiles


def main() -> None:
    if "--prompt" in sys.argv:
        prompt_table()
        return
    if "--native" in sys.argv:
        native_table()
        return
    if "--layout" in sys.argv:
        layout_table()
        return
    if "--splits" in sys.argv:
        splits_table()
        return
    if "--spread" in sys.argv:
        spread_table()
        return
    print("| shape | (block_n, warps, stages) | us | GB/s | same output |\n|---|---|---|---|---|")
    for shape in SHAPES:
        run_shape(*shape)


if __name__ == "__main__":
    main()
