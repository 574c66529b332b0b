"""Logprobs of chosen tokens and their top-k alternatives, gathered for a batch at once."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenLogprobs:
    """One position: the chosen token first, then the ``k`` most likely tokens, with ranks.

    Ranks count from 1 (the most likely token); the chosen token's rank is its place in the
    distribution, so a greedy choice has rank 1.
    """

    token_ids: list[int]
    logprobs: list[float]
    ranks: list[int]


def gather_logprobs(logprobs: torch.Tensor, chosen: torch.Tensor, num_top: list[int]) -> list[TokenLogprobs]:
    """For each row of ``logprobs [rows, vocab]``: ``chosen[row]`` and its top ``num_top[row]``.

    One top-k over the batch (at the largest ``k``) and one transfer to the host.
    """
    k = max(num_top, default=0)
    chosen_lp = logprobs.gather(1, chosen.unsqueeze(1))
    chosen_rank = (logprobs > chosen_lp).sum(dim=1) + 1
    top_lp, top_ids = logprobs.topk(k, dim=1) if k > 0 else (chosen_lp[:, :0], chosen.unsqueeze(1)[:, :0])
    rows = zip(chosen.tolist(), chosen_lp.squeeze(1).tolist(), chosen_rank.tolist(), top_ids.tolist(),
               top_lp.tolist(), num_top)
    return [
        TokenLogprobs([token] + ids[:n], [lp] + lps[:n], [rank] + list(range(1, n + 1)))
        for token, lp, rank, ids, lps, n in rows
    ]
