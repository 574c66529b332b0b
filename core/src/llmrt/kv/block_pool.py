"""BlockPool: the fixed set of KV cache blocks, their reference counts and the prefix cache map.

Registered as the ``"lru"`` block allocator. The pool knows nothing about requests or token
positions; :class:`llmrt.kv.KVCacheManager` builds per-request block tables on top of it.

Free blocks wait in a queue in eviction order. A freed block that holds a cached full block
(it has a hash) goes to the back, so cached content is evicted least-recently-used; a freed
block without cached content goes to the *front*, so it is reused before any cached block.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

from llmrt.kv.block_hash import BlockHash


class KVCacheBlock:
    """One block of KV slots: its id (index into the device cache), users and cached content."""

    __slots__ = ("block_id", "ref_cnt", "block_hash")

    def __init__(self, block_id: int) -> None:
        self.block_id = block_id
        self.ref_cnt = 0
        """Number of block tables holding this block; 0 while it sits in the free queue."""
        self.block_hash: BlockHash | None = None
        """Set while the block is full and findable in the prefix cache, else ``None``."""

    def __repr__(self) -> str:
        cached = "" if self.block_hash is None else f", hash={self.block_hash[:4].hex()}"
        return f"KVCacheBlock(id={self.block_id}, ref_cnt={self.ref_cnt}{cached})"


class BlockPool:
    """``num_blocks`` KV blocks (ids ``0 .. num_blocks-1``, none reserved) with LRU prefix caching.

    :param num_blocks: how many blocks the device KV cache has.
    :param enable_caching: keep full blocks findable by content hash after they are freed.
    """

    def __init__(self, num_blocks: int, enable_caching: bool) -> None:
        if num_blocks < 1:
            raise ValueError(f"the KV cache needs at least one block, got num_blocks={num_blocks}")
        self.num_blocks = num_blocks
        self.enable_caching = enable_caching
        self.blocks = [KVCacheBlock(i) for i in range(num_blocks)]
        self._free: OrderedDict[int, KVCacheBlock] = OrderedDict(
            (block.block_id, block) for block in self.blocks
        )
        self._cached: dict[BlockHash, KVCacheBlock] = {}

    # -- state -----------------------------------------------------------------------------

    @property
    def num_free_blocks(self) -> int:
        """Blocks that can be handed out now (free, possibly holding evictable cached content)."""
        return len(self._free)

    @property
    def usage(self) -> float:
        """Fraction of blocks held by requests (0.0 .. 1.0)."""
        return 1.0 - len(self._free) / self.num_blocks

    @property
    def num_cached_blocks(self) -> int:
        """Blocks currently findable in the prefix cache (in use or free)."""
        return len(self._cached)

    def free_block_ids(self) -> list[int]:
        """Ids of the free blocks in eviction order (first is evicted first)."""
        return list(self._free)

    # -- allocation ------------------------------------------------------------------------

    def get_new_blocks(self, num_blocks: int) -> list[KVCacheBlock]:
        """Take ``num_blocks`` blocks from the front of the free queue, each with ``ref_cnt`` 1.

        Cached content of a taken block is evicted (its hash leaves the cache map).
        Raises ``ValueError`` if fewer blocks are free.
        """
        if num_blocks > len(self._free):
            raise ValueError(f"asked for {num_blocks} KV blocks, only {len(self._free)} are free")
        taken = []
        for _ in range(num_blocks):
            _, block = self._free.popitem(last=False)
            self.uncache_block(block)
            block.ref_cnt = 1
            taken.append(block)
        return taken

    def touch(self, blocks: Iterable[KVCacheBlock]) -> None:
        """Add a user to each block (a prefix hit or a fork), taking free ones off the queue."""
        for block in blocks:
            if block.ref_cnt == 0:
                del self._free[block.block_id]
            block.ref_cnt += 1

    def free_blocks(self, blocks: Iterable[KVCacheBlock]) -> None:
        """Drop a user from each block; a block nobody uses joins the free queue.

        Pass a request's table in reverse so that its tail blocks are evicted before its head
        (the head is the part other requests are likely to share).
        """
        for block in blocks:
            if block.ref_cnt <= 0:
                raise RuntimeError(f"KV block {block.block_id} freed more often than it was taken")
            block.ref_cnt -= 1
            if block.ref_cnt == 0:
                self._free[block.block_id] = block
                if block.block_hash is None:
                    self._free.move_to_end(block.block_id, last=False)

    # -- prefix cache ----------------------------------------------------------------------

    def cache_full_blocks(
        self, blocks: Sequence[KVCacheBlock], block_hashes: Sequence[BlockHash]
    ) -> None:
        """Make full blocks findable by chained hash (``blocks[i]`` under ``block_hashes[i]``).

        A block already cached keeps its hash; a hash already owned by another block is left
        to that block (the new block stays uncached: same content, one copy is enough).
        """
        if not self.enable_caching:
            return
        for block, block_hash in zip(blocks, block_hashes, strict=True):
            if block.block_hash is None and block_hash not in self._cached:
                block.block_hash = block_hash
                self._cached[block_hash] = block

    def get_cached_block(self, block_hash: BlockHash) -> KVCacheBlock | None:
        """The block caching ``block_hash``, or ``None`` (always ``None`` with caching off)."""
        return self._cached.get(block_hash)

    def uncache_block(self, block: KVCacheBlock) -> None:
        """Forget a block's cached content (it stays allocated or free as it was)."""
        if block.block_hash is not None:
            if self._cached.get(block.block_hash) is block:
                del self._cached[block.block_hash]
            block.block_hash = None

    def reset_prefix_cache(self) -> bool:
        """Forget every cached block (for example after new weights are loaded).

        Blocks in use stay with their requests but are no longer findable.
        :return: ``True`` (the cache is empty afterwards).
        """
        for block in self._cached.values():
            block.block_hash = None
        self._cached.clear()
        return True
