"""The small kernels of a decode step (norms, q/k norm + rotary, gated activation, sampling) by
launch configuration, timed as a decode graph runs them: 50 launches captured in one CUDA graph,
replayed, so the gaps between dependent kernels count. Shapes default to nano's (Qwen3-0.6B,
256 sequences). Prints a table per op; the fastest configuration is what to set.

    python3 plugins/cuda/benchmarks/small_kernels_bench.py [--rows 256]
"""

from __future__ import annotations

import argparse

import torch

CALLS = 50


def graph_time_us(fn) -> float:
    """Microseconds per call of ``fn`` when ``CALLS`` calls replay from one CUDA graph."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(CALLS):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(5):
        start.record()
        for _ in range(10):
            graph.replay()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) * 1e3 / (10 * CALLS))
    return best


def main() -> None:
    from llmrt_triton import activation, norm, rotary, sampling

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--head-size", type=int, default=128)
    parser.add_argument("--intermediate", type=int, default=3072)
    parser.add_argument("--vocab", type=int, default=151936)
    args = parser.parse_args()
    device, dtype, rows, d = torch.device("cuda"), torch.bfloat16, args.rows, args.head_size
    x = torch.randn(rows, args.hidden, device=device, dtype=dtype)
    residual = torch.randn_like(x)
    weight = torch.rand(args.hidden, device=device, dtype=dtype)
    qkv = torch.randn(rows, (args.heads + 2 * args.kv_heads) * d, device=device, dtype=dtype)
    q, k, _ = qkv.split([args.heads * d, args.kv_heads * d, args.kv_heads * d], -1)
    head_weight = torch.rand(d, device=device, dtype=dtype)
    positions = torch.randint(0, 2000, (rows,), device=device)
    angles = torch.randn(4096, d, device=device, dtype=dtype)
    gate_up = torch.randn(rows, 2 * args.intermediate, device=device, dtype=dtype)
    logits = torch.randn(rows, args.vocab, device=device)
    temperature = torch.full((rows,), 0.6, device=device)

    ops = {
        "fused_add_rms_norm": (lambda: norm.fused_add_rms_norm(x, residual, weight, 1e-6), norm, "num_warps_for"),
        "qk_norm_rotary": (lambda: rotary.qk_norm_rotary_embedding(
            positions, q, k, head_weight, head_weight, 1e-6, 0.0, True, angles, d, True), rotary, "ROTARY_WARPS"),
        "silu_and_mul": (lambda: activation.silu_and_mul(gate_up), activation, "GATED_WARPS"),
        "sample_categorical": (lambda: sampling.sample_categorical(logits, temperature), sampling, "WARPS"),
    }
    for name, (fn, module, knob) in ops.items():
        default = getattr(module, knob)
        print(f"| {name} ({rows} rows) | warps | us per call |")
        for warps in (1, 2, 4, 8, 16):
            setattr(module, knob, (lambda width, w=warps: w) if callable(default) else warps)
            try:
                print(f"| | {warps} | {graph_time_us(fn):.2f} |", flush=True)
            except Exception as error:  # a configuration Triton rejects
                print(f"| | {warps} | {type(error).__name__} |", flush=True)
        setattr(module, knob, default)
        if name == "sample_categorical":
            for chunk, block in ((2048, 512), (4096, 512), (8192, 1024), (8192, 2048), (16384, 1024)):
                sampling.CHUNK, sampling.BLOCK = chunk, block
                print(f"| | chunk {chunk}, block {block}, 4 warps | {graph_time_us(fn):.2f} |", flush=True)
            sampling.CHUNK, sampling.BLOCK = 4096, 1024
        if name == "silu_and_mul":
            for block in (256, 512, 2048, 4096):
                activation.BLOCK = block
                print(f"| | block {block}, 4 warps | {graph_time_us(fn):.2f} |", flush=True)
            activation.BLOCK = 1024


if __name__ == "__main__":
    main()
