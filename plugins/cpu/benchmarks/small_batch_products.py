"""How long one decode step's matrix products take at each batch size, weights from memory.

The products of the CPU side-by-side model (8 layers: QKV, output, gate/up and down projections,
then the LM head; distinct weights per layer, 134 MB in float32, so each step reads them from
DRAM as a real decode step does) through oneDNN on prepacked weights, at 1 to ``--max-rows``
rows. The sizes are visited in turn, round after round, and the median of the rounds is printed,
as ``raw`` (the product on exactly that many rows) and ``engine`` (``PackedWeight``, which on
oneDNN's op pads short float32 inputs on AVX-512 CPUs; see ``FLOAT32_MIN_ROWS_AVX512``). Float32
runs on the brgemm panels unless ``LLMRT_CPU_PANEL_LINEAR=0``.

    .venv/bin/python plugins/cpu/benchmarks/small_batch_products.py --dtype float32 bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from llmrt_cpu import native
from llmrt_cpu.linear_packing import PACK_ROWS_HINT, PackedWeight


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dtype", choices=("float32", "bfloat16"), nargs="+", default=["float32"])
    p.add_argument("--max-rows", type=int, default=12)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--intermediate", type=int, default=1536)
    p.add_argument("--qkv", type=int, default=1024, help="output width of the fused QKV projection")
    p.add_argument("--vocab", type=int, default=16384)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=6, help="steps timed per size and round")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def step_shapes(args: argparse.Namespace) -> list[tuple[int, int]]:
    """``(out, in)`` of each product of one decode step, in order."""
    h, i = args.hidden, args.intermediate
    return [(args.qkv, h), (h, h), (2 * i, h), (h, i)] * args.layers + [(args.vocab, h)]


def time_step(products: list, inputs: dict[int, torch.Tensor], steps: int) -> float:
    """Milliseconds per step (after one untimed step)."""
    for product, width in products:
        product(inputs[width])
    start = time.perf_counter()
    for _ in range(steps):
        for product, width in products:
            product(inputs[width])
    return (time.perf_counter() - start) / steps * 1e3


def raw_product(kernel: PackedWeight):
    """The kernel's product on exactly the rows given: the brgemm panels, or oneDNN's op unpadded."""
    if kernel.panels is not None:
        return lambda x: native.kernels().panel_linear(x, kernel.panels, kernel.out_features)
    linear = torch.ops.mkldnn._linear_pointwise.default
    return lambda x: linear(x, kernel.packed, None, "none", (), "")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    for name in args.dtype:
        dtype = getattr(torch, name)
        weights = [torch.randn(out, inp).to(dtype) for out, inp in step_shapes(args)]
        kernels = [PackedWeight(w) for w in weights]
        raw = [(raw_product(k), k.weight.shape[1]) for k in kernels]
        engine = [(k, k.weight.shape[1]) for k in kernels]
        widths = {w.shape[1] for w in weights}
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for rows in range(1, args.max_rows + 1):
                inputs = {width: torch.randn(rows, width).to(dtype) for width in widths}
                for kind, products in (("raw", raw), ("engine", engine)):
                    times.setdefault((kind, rows), []).append(time_step(products, inputs, args.steps))
        megabytes = sum(w.numel() * w.element_size() for w in weights) / 1e6
        path = ("brgemm panels" if kernels[0].panels is not None
                else f"oneDNN's op, packed for {PACK_ROWS_HINT} rows, min_rows {kernels[0].min_rows}")
        print(f"{name}: {megabytes:.0f} MB of weights a step on {path}; ms a step (median of {args.rounds} rounds)")
        print("rows   raw  engine")
        for rows in range(1, args.max_rows + 1):
            raw_ms, engine_ms = (statistics.median(times[(kind, rows)]) for kind in ("raw", "engine"))
            print(f"{rows:4d} {raw_ms:5.2f}  {engine_ms:6.2f}")


if __name__ == "__main__":
    main()
