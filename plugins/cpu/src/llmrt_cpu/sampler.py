"""CpuSampler: core's sampler with a cheaper draw for random rows without a seed.

Core samples by racing the distribution against exponential noise, one draw per vocabulary
entry (``argmax(p / E)``). On the CPUs measured, ``Tensor.exponential_`` takes about 10 ms for
32 rows of a 16k vocabulary, a fifth of a decode step of a small model. Inverse-CDF sampling
draws the same distribution from one uniform number per row (a cumulative sum and a binary
search: about 0.3 ms). Rows with their own seed keep core's exact draw, so seeded requests
give the same tokens as on any other backend; unseeded rows use PyTorch's global generator,
as before, so a global seed still makes runs repeatable.
"""

from __future__ import annotations

import torch

from llmrt.sample.sampler import Sampler, SamplingBatch


def inverse_cdf_sample(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Token ``i`` of each row with ``cdf[i-1] <= u * total < cdf[i]`` (``uniform`` in [0, 1))."""
    cdf = probs.cumsum(dim=-1)
    target = uniform.view(-1, 1) * cdf[:, -1:]
    return torch.searchsorted(cdf, target, right=True).clamp_(max=probs.shape[-1] - 1).view(-1)


class CpuSampler(Sampler):
    """:class:`Sampler` whose unseeded random rows draw by inverse CDF."""

    @staticmethod
    def _race(probs: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
        tokens = inverse_cdf_sample(probs, torch.rand(probs.shape[0], device=probs.device))
        for row, generator in batch.generators.items():  # seeded rows: core's draw, bit for bit
            noise = torch.empty_like(probs[row]).exponential_(generator=generator)
            tokens[row] = (probs[row] / noise).argmax()
        return tokens
