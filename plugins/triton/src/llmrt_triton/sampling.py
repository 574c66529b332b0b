"""``sample_categorical`` in one pass over the logits: the Gumbel-max trick.

``argmax_i(logits_i / t + G_i)`` with ``G_i = -log(-log(U_i))`` i.i.d. Gumbel noise is a draw
from ``softmax(logits / t)`` (the same race as core's ``argmax(p / E)``, taken in log space),
so no softmax, no normalizer and no noise tensor is ever materialized: each program reads one
chunk of one row once, makes its uniform numbers with Philox from a per-call seed (four per
Philox call), and keeps the best score; a tiny reduction over chunks picks the row's token.
Rows with ``t == 0`` add no noise (argmax; the lowest index on ties, as ``torch.argmax``).

The seed is drawn from PyTorch's default CPU generator, so ``torch.manual_seed`` makes runs
repeatable and nothing waits for the device.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

CHUNK = 4096
"""Vocabulary entries per program (a 152k vocabulary gives 38 programs per row)."""
BLOCK = 1024
"""Lanes of a program's running best (four BLOCK-wide slices per Philox call)."""
WARPS = 4
"""Warps per program."""


@triton.jit
def _race(base, cols, vocab, u, greedy, inv_t, best, best_index):
    """Each lane keeps the better of its best so far and column ``cols``'s noisy score."""
    valid = cols < vocab
    x = tl.load(base + cols, mask=valid, other=float("-inf")).to(tl.float32)
    score = tl.where(greedy, x, x * inv_t - tl.log(-tl.log(u)))
    score = tl.where(valid, score, float("-inf"))
    better = score > best  # strict: each lane keeps its first (lowest) index on ties
    return tl.where(better, score, best), tl.where(better, cols, best_index)


@triton.jit(do_not_specialize=["seed"])  # else a seed divisible by 16 compiles a second kernel
def _gumbel_max_kernel(
    logits_ptr, temperature_ptr, best_ptr, index_ptr, vocab, stride_row, num_chunks, seed,
    CHUNK: tl.constexpr, BLOCK: tl.constexpr,
):
    """Program ``(row, chunk)``: the best noisy score of ``CHUNK`` entries and its index."""
    row = tl.program_id(0)
    chunk = tl.program_id(1)
    t = tl.load(temperature_ptr + row)
    greedy = t == 0.0
    inv_t = 1.0 / tl.where(greedy, 1.0, t)
    best = tl.full((BLOCK,), float("-inf"), tl.float32)
    best_index = tl.zeros((BLOCK,), tl.int32)
    base = logits_ptr + row.to(tl.int64) * stride_row
    lanes = tl.arange(0, BLOCK)
    for start in range(chunk * CHUNK, tl.minimum(chunk * CHUNK + CHUNK, vocab), 4 * BLOCK):
        # One Philox call gives four independent uniforms: one for each of four BLOCK-wide
        # slices. Its counter, row * vocab + start + lane, is unique to (row, column) for every
        # column inside the vocabulary (columns beyond it are masked).
        u0, u1, u2, u3 = tl.rand4x(seed, row * vocab + start + lanes)
        cols = start + lanes
        best, best_index = _race(base, cols, vocab, u0, greedy, inv_t, best, best_index)
        cols += BLOCK
        best, best_index = _race(base, cols, vocab, u1, greedy, inv_t, best, best_index)
        cols += BLOCK
        best, best_index = _race(base, cols, vocab, u2, greedy, inv_t, best, best_index)
        cols += BLOCK
        best, best_index = _race(base, cols, vocab, u3, greedy, inv_t, best, best_index)
    top = tl.max(best, axis=0)
    first = tl.min(tl.where(best == top, best_index, vocab), axis=0)
    tl.store(best_ptr + row * num_chunks + chunk, top)
    tl.store(index_ptr + row * num_chunks + chunk, first)


def sample_categorical(logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """See ``sample_categorical`` in :class:`llmrt.ops.Ops`."""
    rows, vocab = logits.shape
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    num_chunks = triton.cdiv(vocab, CHUNK)
    best = torch.empty((rows, num_chunks), dtype=torch.float32, device=logits.device)
    index = torch.empty((rows, num_chunks), dtype=torch.int32, device=logits.device)
    if rows == 0:
        return torch.empty(0, dtype=torch.long, device=logits.device)
    seed = int(torch.randint(0, 2**31 - 1, (1,)))
    _gumbel_max_kernel[(rows, num_chunks)](
        logits, temperature.to(torch.float32), best, index, vocab, logits.stride(0), num_chunks, seed,
        CHUNK=CHUNK, BLOCK=BLOCK, num_warps=WARPS,
    )
    # argmax over chunks takes the first best chunk, so ties still resolve to the lowest index
    return index.gather(1, best.argmax(dim=1, keepdim=True)).squeeze(1).long()
