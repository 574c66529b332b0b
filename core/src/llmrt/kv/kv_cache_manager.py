"""KVCacheManager: per-request block tables over a block pool, prefix caching and copy-on-write.

The scheduler asks two questions per request and step: which leading blocks are already cached
(:meth:`KVCacheManager.get_computed_blocks`, new requests only) and "give this request room for
``n`` more tokens" (:meth:`KVCacheManager.allocate_slots`, ``None`` when the pool is short).

Caching follows vLLM v1: the blocks that a step fills are registered in the prefix cache when
the step is *scheduled*, so a request admitted later in the same step can already share them.
A model runner must therefore write a layer's KV for the batch before attention of later
requests in the batch reads it (writing each layer's KV for the whole batch before its
attention does this). If a request is freed before its scheduled KV was written,
:meth:`KVCacheManager.free` withdraws those blocks from the cache.

Shared blocks are never written in place: a request about to write into a block whose
``ref_cnt`` > 1 (after :meth:`KVCacheManager.fork`) gets a private copy; the ``(src, dst)`` pair
waits in :meth:`KVCacheManager.take_pending_copies` for the next ``SchedulerOutput``. The
runner applies the pairs in list order or as one gather-then-scatter (``cache[dst] = cache[src]``).

With a :class:`~llmrt.kv.host_swap.HostSwapSpace`, a preempted request's KV can be moved to host
memory (:meth:`KVCacheManager.swap_out`) and back (:meth:`KVCacheManager.swap_in`) instead of
being recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from llmrt.engine.request import Request
from llmrt.kv.block_hash import BlockHash, extend_block_hashes
from llmrt.kv.block_pool import BlockPool, KVCacheBlock
from llmrt.kv.host_swap import HostSwapSpace


@dataclass
class PrefixCacheStats:
    """Cumulative prefix-cache counters, counted once per admission of a request."""

    requests: int = 0
    """Admissions that looked up the cache (re-admissions after preemption included)."""
    queries: int = 0
    """Tokens looked up (the request's length at admission)."""
    hits: int = 0
    """Tokens found in the cache."""

    @property
    def hit_rate(self) -> float:
        """``hits / queries`` (0.0 before any query)."""
        return self.hits / self.queries if self.queries else 0.0


@dataclass(slots=True)
class _RequestBlocks:
    """What the manager keeps per request."""

    blocks: list[KVCacheBlock] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    """``block_id`` of each entry of ``blocks``."""
    hashes: list[BlockHash] = field(default_factory=list)
    """Chained hashes of the request's leading full blocks, computed as needed."""
    num_cached: int = 0
    """Leading blocks already offered to the prefix cache."""

    def append(self, blocks: Sequence[KVCacheBlock]) -> None:
        self.blocks.extend(blocks)
        self.ids.extend(block.block_id for block in blocks)


class KVCacheManager:
    """Block tables of live requests, built from a :class:`BlockPool`.

    :param block_pool: the allocator (any object with :class:`BlockPool`'s interface).
    :param block_size: tokens per block.
    :param enable_caching: reuse cached full blocks across requests (automatic prefix caching).
    :param host_swap: host blocks for swap preemption; ``None`` when swapping is off.
    """

    def __init__(
        self,
        block_pool: BlockPool,
        block_size: int,
        enable_caching: bool,
        host_swap: HostSwapSpace | None = None,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, got {block_size}")
        self.block_pool = block_pool
        self.block_size = block_size
        self.enable_caching = enable_caching
        self.host_swap = host_swap
        self.stats = PrefixCacheStats()
        self._requests: dict[str, _RequestBlocks] = {}
        self._pending_copies: list[tuple[int, int]] = []

    # -- state -----------------------------------------------------------------------------

    @property
    def num_blocks(self) -> int:
        """Size of the pool in blocks."""
        return self.block_pool.num_blocks

    @property
    def num_free_blocks(self) -> int:
        """Blocks free to allocate now (cached free blocks included: they are evictable)."""
        return self.block_pool.num_free_blocks

    @property
    def usage(self) -> float:
        """Fraction of the pool held by requests."""
        return self.block_pool.usage

    def get_block_ids(self, request_id: str) -> list[int]:
        """The request's block table (a copy; empty when it holds no blocks)."""
        entry = self._requests.get(request_id)
        return entry.ids.copy() if entry is not None else []

    # -- prefix cache ----------------------------------------------------------------------

    def get_computed_blocks(self, request: Request) -> tuple[list[KVCacheBlock], int]:
        """The longest cached prefix of ``request``'s full blocks, and its length in tokens.

        Never the whole request: at most ``num_tokens - 1`` tokens (block-aligned), so the last
        token is always computed (its logits are needed) and no shared block is written.
        Returns ``([], 0)`` with caching off or when prompt logprobs are requested (they need
        every prompt position computed). Takes no blocks from the pool.
        """
        if not self.enable_caching or request.sampling_params.prompt_logprobs is not None:
            return [], 0
        hashes = self._entry(request.request_id).hashes
        blocks: list[KVCacheBlock] = []
        for index in range((request.num_tokens - 1) // self.block_size):
            if index == len(hashes):
                extend_block_hashes(hashes, request, self.block_size, index + 1)
            block = self.block_pool.get_cached_block(hashes[index])
            if block is None:
                break
            blocks.append(block)
        return blocks, len(blocks) * self.block_size

    def reset_prefix_cache(self) -> bool:
        """Forget all cached blocks; see :meth:`BlockPool.reset_prefix_cache`."""
        return self.block_pool.reset_prefix_cache()

    # -- allocation ------------------------------------------------------------------------

    def allocate_slots(
        self,
        request: Request,
        num_new_tokens: int,
        new_computed_blocks: Sequence[KVCacheBlock] = (),
    ) -> list[int] | None:
        """Give ``request`` room for ``num_new_tokens`` more tokens; return its whole block table.

        :param request: the request; ``request.num_computed_tokens`` tokens already have KV.
        :param num_new_tokens: tokens to compute this step (positions right after the computed
            ones and after ``new_computed_blocks``).
        :param new_computed_blocks: prefix-cache hits from :meth:`get_computed_blocks`, only for
            a request that holds no blocks yet; they are added to its table.
        :return: the block ids (a new list), or ``None`` (nothing changed) if the pool is short.
        """
        entry = self._entry(request.request_id)
        first_allocation = not entry.blocks
        if new_computed_blocks and not first_allocation:
            raise ValueError(f"request {request.request_id!r} already holds blocks")
        num_computed = request.num_computed_tokens + len(new_computed_blocks) * self.block_size
        num_total = num_computed + num_new_tokens
        num_needed = -(-num_total // self.block_size)
        num_new_blocks = max(0, num_needed - len(entry.blocks) - len(new_computed_blocks))
        copy_on_write = self._shared_blocks_to_write(entry.blocks, num_computed, num_needed)
        num_revived = sum(1 for block in new_computed_blocks if block.ref_cnt == 0)
        if num_new_blocks + len(copy_on_write) + num_revived > self.block_pool.num_free_blocks:
            return None

        if first_allocation:
            self._record_lookup(request, len(new_computed_blocks))
        self.block_pool.touch(new_computed_blocks)
        entry.append(new_computed_blocks)
        for index in copy_on_write:
            self._copy_on_write(entry, index)
        if num_new_blocks:
            entry.append(self.block_pool.get_new_blocks(num_new_blocks))
        if self.enable_caching:
            self._cache_full_blocks(request, entry, num_total)
        return entry.ids.copy()

    def free(self, request: Request) -> None:
        """Return all of ``request``'s blocks to the pool (finish, abort or preemption).

        Call it *before* resetting ``request.num_computed_tokens``: blocks past the computed
        tokens were cached when scheduled but may never have been written, so they are
        withdrawn from the prefix cache first. Pending copies into its blocks are dropped, and
        host blocks of a swapped-out request are released. Safe for requests holding nothing.
        """
        if self.host_swap is not None:
            self.host_swap.free(request.request_id)
        self._free_device_blocks(request)

    # -- swap ------------------------------------------------------------------------------

    def is_swapped(self, request: Request) -> bool:
        """True while the request's KV waits in host memory."""
        return self.host_swap is not None and request.request_id in self.host_swap

    def swap_out(self, request: Request) -> list[tuple[int, int]] | None:
        """Move a request's KV to host memory and free its device blocks.

        :return: ``(device_block, host_block)`` copies for the runner to do before the next
            forward pass, or ``None`` (nothing changed) without swap space or room in it.
        """
        entry = self._requests.get(request.request_id)
        if self.host_swap is None or entry is None or not entry.blocks:
            return None
        host_ids = self.host_swap.store(request.request_id, len(entry.blocks))
        if host_ids is None:
            return None
        pairs = list(zip(entry.ids, host_ids, strict=True))
        self._free_device_blocks(request)
        return pairs

    def swap_in(
        self, request: Request, num_new_tokens: int
    ) -> tuple[list[int], list[tuple[int, int]]] | None:
        """Bring a swapped-out request's KV back and make room for ``num_new_tokens`` more.

        :return: the new block table and the ``(host_block, device_block)`` copies, or ``None``
            (nothing changed) if the pool is short.
        """
        assert self.host_swap is not None
        host_ids = self.host_swap.table(request.request_id)
        num_total = request.num_computed_tokens + num_new_tokens
        if max(len(host_ids), -(-num_total // self.block_size)) > self.block_pool.num_free_blocks:
            return None
        entry = self._entry(request.request_id)
        entry.append(self.block_pool.get_new_blocks(len(host_ids)))
        pairs = list(zip(host_ids, entry.ids, strict=True))
        self.host_swap.free(request.request_id)
        block_ids = self.allocate_slots(request, num_new_tokens)
        assert block_ids is not None
        return block_ids, pairs

    # -- fork and copy-on-write ------------------------------------------------------------

    def fork(self, parent: Request, child: Request) -> None:
        """Let ``child`` share all of ``parent``'s blocks (for beam search or parallel sampling).

        Sets ``child.num_computed_tokens`` to the parent's; the child's tokens up to there must
        equal the parent's. Whichever of them next writes into a still-shared block gets a copy.
        """
        if child.request_id in self._requests:
            raise ValueError(f"request {child.request_id!r} already has KV cache state")
        if self.is_swapped(parent):  # its KV is in host memory: the child computes its own
            self._requests[child.request_id] = _RequestBlocks()
            child.num_computed_tokens = 0
            return
        source = self._requests.get(parent.request_id, _RequestBlocks())
        num_full = parent.num_computed_tokens // self.block_size
        entry = _RequestBlocks(
            hashes=source.hashes[:num_full], num_cached=min(source.num_cached, num_full)
        )
        self.block_pool.touch(source.blocks)
        entry.append(source.blocks)
        self._requests[child.request_id] = entry
        child.num_computed_tokens = parent.num_computed_tokens

    def take_pending_copies(self) -> list[tuple[int, int]]:
        """The ``(src, dst)`` block copies made necessary since the last call (and forget them)."""
        copies, self._pending_copies = self._pending_copies, []
        return copies

    # -- helpers ---------------------------------------------------------------------------

    def _entry(self, request_id: str) -> _RequestBlocks:
        entry = self._requests.get(request_id)
        if entry is None:
            entry = self._requests[request_id] = _RequestBlocks()
        return entry

    def _free_device_blocks(self, request: Request) -> None:
        entry = self._requests.pop(request.request_id, None)
        if entry is None or not entry.blocks:
            return
        for block in entry.blocks[request.num_computed_tokens // self.block_size :]:
            if block.ref_cnt == 1:
                self.block_pool.uncache_block(block)
        if self._pending_copies:
            mine = set(entry.ids)
            self._pending_copies = [pair for pair in self._pending_copies if pair[1] not in mine]
        self.block_pool.free_blocks(reversed(entry.blocks))

    def _shared_blocks_to_write(
        self, blocks: list[KVCacheBlock], num_computed: int, num_needed: int
    ) -> list[int]:
        first = num_computed // self.block_size
        return [i for i in range(first, min(len(blocks), num_needed)) if blocks[i].ref_cnt > 1]

    def _copy_on_write(self, entry: _RequestBlocks, index: int) -> None:
        shared = entry.blocks[index]
        (private,) = self.block_pool.get_new_blocks(1)
        self._pending_copies.append((shared.block_id, private.block_id))
        entry.blocks[index] = private
        entry.ids[index] = private.block_id
        self.block_pool.free_blocks([shared])

    def _cache_full_blocks(self, request: Request, entry: _RequestBlocks, num_total: int) -> None:
        num_full = min(num_total, request.num_tokens) // self.block_size
        start = entry.num_cached
        if num_full <= start:
            return
        extend_block_hashes(entry.hashes, request, self.block_size, num_full)
        new_full = slice(start, num_full)
        self.block_pool.cache_full_blocks(entry.blocks[new_full], entry.hashes[new_full])
        entry.num_cached = num_full

    def _record_lookup(self, request: Request, num_hit_blocks: int) -> None:
        if not self.enable_caching or request.sampling_params.prompt_logprobs is not None:
            return
        self.stats.requests += 1
        self.stats.queries += request.num_tokens
        self.stats.hits += num_hit_blocks * self.block_size
