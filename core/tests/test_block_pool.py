"""BlockPool and block hashes: allocation, reference counts, eviction order, prefix-cache map."""

from __future__ import annotations

import pytest

from llmrt.engine.request import Request
from llmrt.kv import BlockPool, extend_block_hashes, hash_block_tokens
from llmrt.sampling_params import SamplingParams


def h(*tokens: int) -> bytes:
    return hash_block_tokens(None, list(tokens))


def test_new_pool_is_all_free_in_id_order():
    pool = BlockPool(4, enable_caching=True)
    assert pool.num_free_blocks == 4
    assert pool.usage == 0.0
    assert pool.free_block_ids() == [0, 1, 2, 3]
    assert [b.block_id for b in pool.get_new_blocks(2)] == [0, 1]
    assert pool.usage == 0.5


def test_rejects_empty_pool_and_overdraw():
    with pytest.raises(ValueError):
        BlockPool(0, enable_caching=True)
    pool = BlockPool(2, enable_caching=False)
    with pytest.raises(ValueError, match="only 2 are free"):
        pool.get_new_blocks(3)
    assert pool.num_free_blocks == 2


def test_touch_and_free_count_references():
    pool = BlockPool(3, enable_caching=True)
    (block,) = pool.get_new_blocks(1)
    pool.touch([block])
    assert block.ref_cnt == 2
    pool.free_blocks([block])
    assert block.ref_cnt == 1 and pool.num_free_blocks == 2
    pool.free_blocks([block])
    assert block.ref_cnt == 0 and pool.num_free_blocks == 3
    with pytest.raises(RuntimeError, match="freed more often"):
        pool.free_blocks([block])


def test_touch_revives_a_free_cached_block():
    pool = BlockPool(3, enable_caching=True)
    a, b = pool.get_new_blocks(2)
    pool.cache_full_blocks([a], [h(1)])
    pool.free_blocks([a, b])
    assert pool.get_cached_block(h(1)) is a
    pool.touch([a])
    assert a.ref_cnt == 1 and a.block_id not in pool.free_block_ids()
    assert pool.num_free_blocks == 2


def test_eviction_is_lru_and_uncached_blocks_go_first():
    pool = BlockPool(4, enable_caching=True)
    blocks = pool.get_new_blocks(4)
    pool.cache_full_blocks(blocks[:3], [h(0), h(1), h(2)])
    pool.free_blocks(reversed(blocks))  # a request's table, tail first
    # block 3 has no content: reused first; then cached blocks, tail of the table first
    assert pool.free_block_ids() == [3, 2, 1, 0]
    taken = pool.get_new_blocks(2)
    assert [b.block_id for b in taken] == [3, 2]
    assert taken[1].block_hash is None
    assert pool.get_cached_block(h(2)) is None  # evicted
    assert pool.get_cached_block(h(0)) is blocks[0]
    assert pool.num_cached_blocks == 2


def test_duplicate_hash_keeps_first_block():
    pool = BlockPool(2, enable_caching=True)
    a, b = pool.get_new_blocks(2)
    pool.cache_full_blocks([a], [h(7)])
    pool.cache_full_blocks([b], [h(7)])
    assert pool.get_cached_block(h(7)) is a
    assert b.block_hash is None


def test_caching_disabled_never_caches():
    pool = BlockPool(2, enable_caching=False)
    (a,) = pool.get_new_blocks(1)
    pool.cache_full_blocks([a], [h(1)])
    assert a.block_hash is None and pool.get_cached_block(h(1)) is None


def test_reset_prefix_cache_and_uncache():
    pool = BlockPool(3, enable_caching=True)
    a, b = pool.get_new_blocks(2)
    pool.cache_full_blocks([a, b], [h(1), h(2)])
    pool.uncache_block(b)
    assert pool.get_cached_block(h(2)) is None and b.block_hash is None
    pool.free_blocks([a])
    assert pool.reset_prefix_cache() is True
    assert pool.num_cached_blocks == 0 and a.block_hash is None
    assert pool.get_cached_block(h(1)) is None


def test_hash_is_chained_salted_and_stable():
    assert h(1, 2) == h(1, 2)
    assert h(1, 2) != h(2, 1)
    child = hash_block_tokens(h(1, 2), [3, 4])
    assert child != hash_block_tokens(h(9, 9), [3, 4])
    assert hash_block_tokens(None, [1, 2], ("salt",)) != h(1, 2)
    assert h(1, 2) != h(1, 2, 0)
    assert len(h(5)) == 32


def test_extend_block_hashes_is_incremental_and_salts_first_block():
    request = Request("r", list(range(10)), SamplingParams(), cache_salt="s")
    hashes: list[bytes] = []
    extend_block_hashes(hashes, request, 4, 1)
    first = hashes[0]
    extend_block_hashes(hashes, request, 4, 2)
    assert hashes[0] is first and len(hashes) == 2
    assert hashes[0] == hash_block_tokens(None, [0, 1, 2, 3], ("s",))
    assert hashes[1] == hash_block_tokens(hashes[0], [4, 5, 6, 7])
