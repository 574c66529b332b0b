"""AttentionMetadata: where one step's tokens sit in the paged KV cache.

The model runner builds one per step (with :meth:`AttentionMetadata.build`) and every
attention layer of the model reads it. The batch is *flattened*: ``T`` tokens from ``S``
sequences, sequences in batch order, sequence ``s`` contributing ``query_len_s``
consecutive tokens (a whole prompt, a prompt chunk, or one decode token). Query token ``i``
of sequence ``s`` is at absolute position ``context_len_s + i``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import torch


@dataclass
class AttentionMetadata:
    """One flattened batch of ``num_tokens`` tokens from ``num_seqs`` sequences.

    Device tensors live on the model's device:

    - ``slot_mapping: LongTensor[T]``: cache slot where token ``t``'s key/value is written,
      ``block_id * block_size + offset_in_block``.
    - ``query_start_loc: IntTensor[S+1]``: cumulative query lengths (``[0, q0, q0+q1, ...]``).
    - ``seq_lens: IntTensor[S]``: tokens of each sequence in the cache after this step
      (``context_len + query_len``).
    - ``context_lens: IntTensor[S]``: tokens already cached before this step.
    - ``block_tables: IntTensor[S, max_blocks_per_seq]``: each sequence's block ids in
      order, padded with 0.

    Host-side copies for implementations that loop on the host: ``query_start_loc_cpu``,
    ``seq_lens_cpu`` (plain lists). ``scratch`` is a per-step memo that attention
    implementations may fill with derived tensors so that all layers share them.
    """

    num_tokens: int
    num_seqs: int
    slot_mapping: torch.Tensor
    query_start_loc: torch.Tensor
    seq_lens: torch.Tensor
    context_lens: torch.Tensor
    block_tables: torch.Tensor
    max_query_len: int
    max_seq_len: int
    block_size: int
    query_start_loc_cpu: list[int]
    seq_lens_cpu: list[int]
    scratch: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def query_lens_cpu(self) -> list[int]:
        """Tokens each sequence contributes to this step (host list)."""
        starts = self.query_start_loc_cpu
        return [starts[i + 1] - starts[i] for i in range(self.num_seqs)]

    @property
    def context_lens_cpu(self) -> list[int]:
        """Tokens of each sequence cached before this step (host list)."""
        return [s - q for s, q in zip(self.seq_lens_cpu, self.query_lens_cpu, strict=True)]

    @classmethod
    def build(
        cls,
        query_lens: list[int],
        context_lens: list[int],
        block_tables: list[list[int]],
        block_size: int,
        device: torch.device | str,
        to_device: Callable[[np.ndarray], torch.Tensor] | None = None,
    ) -> AttentionMetadata:
        """Compute every field from plain lists or arrays (one tensor creation per field).

        ``block_tables[s]`` must cover positions ``0 .. context_lens[s] + query_lens[s] - 1``.
        ``to_device`` copies a host array to ``device`` (default ``torch.from_numpy(a).to(device)``;
        the model runner passes one that does not wait for queued device work).
        Raises ``ValueError`` on inconsistent input.
        """
        if to_device is None:
            to_device = lambda array: torch.from_numpy(array).to(device)  # noqa: E731
        metadata, _ = cls.build_with(query_lens, context_lens, block_tables, block_size,
                                     lambda arrays: [to_device(a) for a in arrays])
        return metadata

    @classmethod
    def build_with(
        cls,
        query_lens: list[int],
        context_lens: list[int],
        block_tables: list[list[int]],
        block_size: int,
        to_device_many: Callable[[list[np.ndarray]], list[torch.Tensor]],
        extra: Sequence[np.ndarray] = (),
    ) -> tuple[AttentionMetadata, list[torch.Tensor]]:
        """:meth:`build`, with every device tensor made by one call of ``to_device_many`` (host
        arrays in, device tensors out, in order), which also carries the caller's ``extra``
        arrays: the model runner sends a step's inputs to the device in one copy. Returns the
        metadata and the device tensors of ``extra``."""
        q = np.asarray(query_lens, dtype=np.int64)
        ctx = np.asarray(context_lens, dtype=np.int64)
        table_lens = np.fromiter(map(len, block_tables), dtype=np.int64, count=len(block_tables))
        _check_lengths(q, ctx, table_lens, block_size)
        seq = ctx + q
        starts = np.zeros(len(q) + 1, dtype=np.int64)
        np.cumsum(q, out=starts[1:])
        table = _pad_tables(block_tables, table_lens)
        slots = _slot_mapping(q, ctx, starts, table, block_size)
        fields = [slots, starts.astype(np.int32), seq.astype(np.int32), ctx.astype(np.int32), table]
        tensors = to_device_many(fields + list(extra))
        metadata = cls(
            num_tokens=int(starts[-1]),
            num_seqs=len(q),
            slot_mapping=tensors[0],
            query_start_loc=tensors[1],
            seq_lens=tensors[2],
            context_lens=tensors[3],
            block_tables=tensors[4],
            max_query_len=int(q.max(initial=0)),
            max_seq_len=int(seq.max(initial=0)),
            block_size=block_size,
            query_start_loc_cpu=starts.tolist(),
            seq_lens_cpu=seq.tolist(),
        )
        return metadata, tensors[len(fields):]


def _check_lengths(q: np.ndarray, ctx: np.ndarray, table_lens: np.ndarray, block_size: int) -> None:
    """Reject mismatched list lengths, empty queries and block tables too short."""
    if not (len(q) == len(ctx) == len(table_lens)):
        raise ValueError(
            f"query_lens ({len(q)}), context_lens ({len(ctx)}) and block_tables ({len(table_lens)}) "
            "must have one entry per sequence"
        )
    if len(q) and (q.min() < 1 or ctx.min() < 0):
        raise ValueError("every query_len must be >= 1 and every context_len >= 0")
    needed = -(-(ctx + q) // block_size)
    short = np.flatnonzero(table_lens < needed)
    if len(short):
        s = int(short[0])
        raise ValueError(
            f"sequence {s} needs {needed[s]} blocks of {block_size} for {ctx[s] + q[s]} tokens "
            f"but its block table has {table_lens[s]}"
        )


def _pad_tables(tables: list[list[int]], lengths: np.ndarray) -> np.ndarray:
    """Block tables as one int32 array, rows padded with 0 (at least one column)."""
    width = int(lengths.max(initial=0)) or 1
    out = np.zeros((len(tables), width), dtype=np.int32)
    flat = np.fromiter(chain.from_iterable(tables), dtype=np.int32, count=int(lengths.sum()))
    out[np.arange(width) < lengths[:, None]] = flat
    return out


def _slot_mapping(
    q: np.ndarray, ctx: np.ndarray, starts: np.ndarray, table: np.ndarray, block_size: int
) -> np.ndarray:
    """Cache slot of every token: ``table[s, pos // bs] * bs + pos % bs``."""
    seq_of_token = np.repeat(np.arange(len(q)), q)
    pos = np.arange(int(starts[-1]), dtype=np.int64) - starts[seq_of_token] + ctx[seq_of_token]
    blocks = table[seq_of_token, pos // block_size].astype(np.int64)
    return blocks * block_size + pos % block_size
