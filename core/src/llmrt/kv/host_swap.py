"""HostSwapSpace: host-memory blocks that hold the KV of requests preempted in swap mode.

Only ids live here; the model runner owns the host buffer (``CacheConfig.swap_space_bytes``
divided by the size of one block gives ``num_blocks``) and performs the copies listed in
``SchedulerOutput.swap_out`` and ``swap_in``.
"""

from __future__ import annotations


class HostSwapSpace:
    """``num_blocks`` host blocks (ids ``0 .. num_blocks-1``) and which request holds which.

    :param num_blocks: how many KV blocks fit in the host swap buffer.
    """

    def __init__(self, num_blocks: int) -> None:
        if num_blocks < 0:
            raise ValueError(f"num_blocks must be >= 0, got {num_blocks}")
        self.num_blocks = num_blocks
        self._free = list(range(num_blocks - 1, -1, -1))
        self._tables: dict[str, list[int]] = {}

    @property
    def num_free_blocks(self) -> int:
        """Host blocks not holding any request's KV."""
        return len(self._free)

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._tables

    def store(self, request_id: str, num_blocks: int) -> list[int] | None:
        """Reserve ``num_blocks`` host blocks for a request; ``None`` if there is no room."""
        if request_id in self._tables:
            raise ValueError(f"request {request_id!r} is already swapped out")
        if num_blocks > len(self._free):
            return None
        ids = [self._free.pop() for _ in range(num_blocks)]
        self._tables[request_id] = ids
        return ids

    def table(self, request_id: str) -> list[int]:
        """The host blocks of a swapped-out request, in block-table order."""
        return self._tables[request_id]

    def free(self, request_id: str) -> None:
        """Release a request's host blocks (after swap-in, or when it finishes); idempotent."""
        ids = self._tables.pop(request_id, None)
        if ids:
            self._free.extend(reversed(ids))
