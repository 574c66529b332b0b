"""Few-row products alone: cuBLAS (``F.linear``) against ``llmrt_triton.gemv`` configurations.

    python gemv_bench.py [--rows 1,2,4,8] [--quick]

The weight shapes of Llama-3-8B's and Qwen3-0.6B's layers (bf16). Each measurement is a CUDA
graph of calls over enough copies of the weight (>= 512 MB together) that none is served from
the L2 cache, replayed; time per call and the weight bytes streamed per second. Every
configuration's output is checked against float32 ``F.linear``.
"""

from __future__ import annotations

import argparse
import itertools

import torch
import torch.nn.functional as F
from llmrt_triton.gemv import GemvConfig, default_config, gemv

SHAPES = {  # name: (N, K)
    "8b qkv": (6144, 4096),
    "8b o": (4096, 4096),
    "8b gate_up": (28672, 4096),
    "8b down": (4096, 14336),
    "8b lm_head": (128256, 4096),
    "0.6b qkv": (4096, 1024),
    "0.6b o": (1024, 2048),
    "0.6b gate_up": (6144, 1024),
    "0.6b down": (1024, 3072),
}
LAYERS = {"8b": 32, "0.6b": 28}
COPY_BYTES = 512 << 20


def one_row_configs(quick: bool) -> list[GemvConfig]:
    if quick:
        return [GemvConfig(8, 512, 4, 3), GemvConfig(16, 256, 4, 3), GemvConfig(4, 1024, 4, 3)]
    grid = itertools.product((4, 8, 16), (256, 512, 1024), (4, 8), (2, 3, 4))
    return [GemvConfig(*c) for c in grid if c[0] * c[1] <= 8192]


def rows_configs(quick: bool) -> list[GemvConfig]:
    if quick:
        return [GemvConfig(32, 256, 4, 3), GemvConfig(16, 512, 4, 3)]
    grid = itertools.product((16, 32, 64), (128, 256, 512), (4, 8), (3, 4))
    return [GemvConfig(*c) for c in grid if c[0] * c[1] <= 16384]


def time_calls(fn, weights: list[torch.Tensor], x: torch.Tensor, replays: int = 20) -> float:
    """Seconds per call: a graph of one call per weight copy, replayed."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for w in weights[:2]:
            fn(x, w)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for w in weights:
            fn(x, w)
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / (replays * len(weights))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="1,2,4,8")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device("cuda")
    totals: dict[tuple[str, int], list[float]] = {}
    print("| shape | rows | kernel | us | GB/s | max rel err |\n|---|---|---|---|---|---|")
    for name, (n, k) in SHAPES.items():
        nbytes = n * k * 2
        copies = max(2, -(-COPY_BYTES // nbytes))
        weights = [torch.randn(n, k, device=device, dtype=torch.bfloat16) * 0.02 for _ in range(copies)]
        for rows in (int(r) for r in args.rows.split(",")):
            x = torch.randn(rows, k, device=device, dtype=torch.bfloat16)
            ref = F.linear(x.float(), weights[0].float())
            scale = ref.abs().max().item()
            results = [("cublas", time_calls(lambda a, w: F.linear(a, w), weights, x), 0.0)]
            configs = one_row_configs(args.quick) if rows == 1 else rows_configs(args.quick)
            for cfg in configs:
                try:
                    err = (gemv(x, weights[0], config=cfg).float() - ref).abs().max().item() / scale
                    seconds = time_calls(lambda a, w, c=cfg: gemv(a, w, config=c), weights, x)
                except Exception as error:  # a configuration out of resources
                    print(f"| {name} | {rows} | {tuple(cfg)} | failed: {type(error).__name__} | | |")
                    continue
                results.append((tuple(cfg), seconds, err))
            default = tuple(default_config(rows, n, k))
            best = min(results[1:], key=lambda r: r[1])
            for label, seconds, err in results:
                if label in ("cublas", default, best[0]):
                    tag = " (default)" if label == default else ""
                    tag += " (best)" if label == best[0] else ""
                    print(f"| {name} | {rows} | {label}{tag} | {seconds * 1e6:.1f} | "
                          f"{nbytes / seconds / 1e9:.0f} | {err:.1e} |")
            model = name.split()[0]
            layers = 1 if "lm_head" in name else LAYERS[model]
            entry = totals.setdefault((model, rows), [0.0, 0.0, 0.0])
            entry[0] += layers * results[0][1]
            entry[1] += layers * next(s for label, s, _ in results if label == default)
            entry[2] += layers * best[1]
        del weights
        torch.cuda.empty_cache()
    print("\n| model | rows | cuBLAS ms/token | gemv default | gemv best per shape |\n|---|---|---|---|---|")
    for (model, rows), (cublas, default, best) in totals.items():
        print(f"| {model} | {rows} | {cublas * 1e3:.3f} | {default * 1e3:.3f} | {best * 1e3:.3f} |")


if __name__ == "__main__":
    main()
