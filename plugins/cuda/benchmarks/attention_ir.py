"""The decode attention kernel's compiled form at the nano shape: async copies, shared memory,
registers, and the TTGIR written to ``$OUT/decode_attention.ttgir``.

    python attention_ir.py
"""

from __future__ import annotations

import os
import re
import sys

import torch
from llmrt.attention.interface import AttentionConfig
from llmrt_triton import attention_kernel
from llmrt_triton.paged_attention import TritonPagedAttention

sys.path.insert(0, os.path.dirname(__file__))
from decode_attention_bench import _batch  # noqa: E402

PATTERNS = ["async_copy_global_to_local", "async_wait", "tt.load", "local_load", "local_alloc",
            "tt.dot", "warp_group_dot"]


def main() -> None:
    device = torch.device("cuda")
    metadata, blocks = _batch(256, 100, 1500, device)
    cache = torch.randn(2, blocks, 16, 8, 128, dtype=torch.bfloat16, device=device)
    qkv = torch.randn(256, 32 * 128, dtype=torch.bfloat16, device=device)
    q, k, v = qkv.split([16 * 128, 8 * 128, 8 * 128], -1)
    impl = TritonPagedAttention(AttentionConfig(16, 8, 128, 128**-0.5, dtype=torch.bfloat16))
    impl.forward(q, k, v, cache, metadata)
    torch.cuda.synchronize()
    for compiled in attention_kernel._paged_attention_kernel.device_caches[0][0].values():
        ttgir = compiled.asm.get("ttgir", "")
        counts = {p: len(re.findall(p, ttgir)) for p in PATTERNS}
        print(counts, "shared", compiled.metadata.shared, "registers", compiled.n_regs,
              "spills", compiled.n_spills)
        with open(os.path.join(os.environ.get("OUT", "/tmp"), "decode_attention.ttgir"), "w") as f:
            f.write(ttgir)


if __name__ == "__main__":
    main()
