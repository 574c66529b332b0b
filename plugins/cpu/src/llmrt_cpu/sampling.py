"""The CPU backend's ``sample_categorical`` op: inverse-CDF draws, one uniform number per row.

Core's reference races the distribution against exponential noise, one draw per vocabulary
entry (``argmax(p / E)``). On the CPUs measured, ``Tensor.exponential_`` takes about 10 ms for
32 rows of a 16k vocabulary, a fifth of a decode step of a small model. Inverse-CDF sampling
draws the same distribution from one uniform number per row. The native kernel
(``csrc/sample.h``) does it in one call: the row's maximum, the weights' sums per block, and the
running sum only inside the block the draw lands in (about 0.1 ms for 32 rows of a 16k
vocabulary, against 0.9 ms for the same steps in PyTorch ops, :func:`inverse_cdf_sample`, which
remains the path without the kernels or for other dtypes). The uniform numbers come from
PyTorch's global generator, so a global seed still makes runs repeatable; rows with their own
seed never reach this op (core draws them from their generator, identically on every backend).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmrt_cpu import native

CDF_BLOCK = 1024
_C = native.kernels()  # None without the kernels: draws then take PyTorch ops


def inverse_cdf_sample(weights: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Token ``i`` of each row with ``cdf[i-1] <= u * total < cdf[i]`` (``uniform`` in [0, 1)).

    ``weights`` are non-negative and need not sum to 1; entries of weight 0 are never drawn.
    """
    rows, vocab = weights.shape
    blocks = F.pad(weights, (0, -vocab % CDF_BLOCK)).view(rows, -1, CDF_BLOCK)
    block_cdf = blocks.sum(dim=-1).cumsum(dim=-1)
    target = uniform.view(-1, 1) * block_cdf[:, -1:]
    block = torch.searchsorted(block_cdf, target, right=True).clamp_(max=block_cdf.shape[1] - 1)
    before = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp_(min=0)), 0.0)
    inner = blocks[torch.arange(rows), block.view(-1)].cumsum(dim=-1)
    index = torch.searchsorted(inner, target - before, right=True)
    # Rounding may put the target past the block's own total: take its last entry of weight > 0.
    last = (inner < inner[:, -1:]).sum(dim=-1, keepdim=True)
    return (block * CDF_BLOCK + torch.minimum(index, last)).view(-1)


def sample_categorical(logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """See :class:`llmrt.ops.Ops`: a draw from ``softmax(logits / t)`` per row, argmax at ``t == 0``."""
    uniform = torch.rand(logits.shape[0], device=logits.device)
    if (_C is not None and logits.dtype == torch.float32 and logits.dim() == 2 and logits.is_cpu
            and logits.stride(-1) == 1 and temperature.dtype == torch.float32):
        return _C.sample_categorical(logits, temperature.contiguous(), uniform)
    greedy = temperature == 0
    probs = torch.softmax(logits / torch.where(greedy, 1.0, temperature).unsqueeze(1), dim=-1)
    tokens = inverse_cdf_sample(probs, uniform)
    if bool(greedy.any()):  # a host tensor on this backend: no device wait
        tokens = torch.where(greedy, logits.argmax(dim=-1), tokens)
    return tokens
