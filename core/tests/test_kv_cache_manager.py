"""KVCacheManager: block tables, prefix-cache hits, incremental caching, fork and copy-on-write."""

from __future__ import annotations

import pytest

from llmrt.engine.request import Request
from llmrt.kv import BlockPool, KVCacheManager
from llmrt.sampling_params import SamplingParams

BS = 4


def make_manager(num_blocks: int = 8, caching: bool = True) -> KVCacheManager:
    return KVCacheManager(BlockPool(num_blocks, caching), BS, caching)


def make_request(rid: str, tokens: list[int], **kwargs) -> Request:
    return Request(rid, list(tokens), SamplingParams(**kwargs.pop("params", {})), **kwargs)


def run_prefill(kv: KVCacheManager, request: Request) -> list[int]:
    """Admit ``request`` as the scheduler does and compute its whole prompt."""
    blocks, hit = kv.get_computed_blocks(request)
    ids = kv.allocate_slots(request, request.num_tokens - hit, blocks)
    assert ids is not None
    request.num_computed_tokens = request.num_tokens
    return ids


def test_allocates_enough_blocks_and_grows_by_block():
    kv = make_manager()
    request = make_request("a", range(6))
    assert run_prefill(kv, request) == [0, 1]
    request.append_output_token(100)
    request.append_output_token(101)  # 8 tokens, 6 computed
    assert kv.allocate_slots(request, 2) == [0, 1]
    request.num_computed_tokens = 8
    request.append_output_token(102)
    assert kv.allocate_slots(request, 1) == [0, 1, 2]
    assert kv.get_block_ids("a") == [0, 1, 2]
    assert kv.num_free_blocks == 5


def test_allocation_failure_changes_nothing():
    kv = make_manager(num_blocks=2)
    other = make_request("o", range(100, 104))
    run_prefill(kv, other)
    request = make_request("a", range(9))
    blocks, hit = kv.get_computed_blocks(request)
    assert kv.allocate_slots(request, 9, blocks) is None
    assert kv.get_block_ids("a") == [] and kv.num_free_blocks == 1
    assert kv.stats.requests == 1  # only the successful admission counted


def test_prefix_hit_shares_blocks_and_leaves_last_token():
    kv = make_manager()
    first = make_request("a", range(10))
    first_ids = run_prefill(kv, first)
    second = make_request("b", list(range(8)) + [50, 51])
    blocks, hit = kv.get_computed_blocks(second)
    assert hit == 8 and [b.block_id for b in blocks] == first_ids[:2]
    ids = kv.allocate_slots(second, second.num_tokens - hit, blocks)
    assert ids[:2] == first_ids[:2] and ids[2] not in first_ids
    assert [kv.block_pool.blocks[i].ref_cnt for i in first_ids] == [2, 2, 1]
    assert kv.stats.hits == 8 and kv.stats.queries == 20

    # an exact repeat of an 8-token prompt reuses only 4: its last token must be computed
    repeat = make_request("c", range(8))
    assert kv.get_computed_blocks(repeat)[1] == 4


def test_hits_survive_free_and_salt_separates():
    kv = make_manager()
    first = make_request("a", range(9))
    ids = run_prefill(kv, first)
    kv.free(first)
    assert kv.num_free_blocks == 8
    again = make_request("b", range(9))
    blocks, hit = kv.get_computed_blocks(again)
    assert hit == 8 and [b.block_id for b in blocks] == ids[:2]
    salted = make_request("c", range(9), cache_salt="tenant-2")
    assert kv.get_computed_blocks(salted) == ([], 0)


def test_no_hits_with_caching_off_or_prompt_logprobs():
    kv = make_manager(caching=False)
    run_prefill(kv, make_request("a", range(9)))
    assert kv.get_computed_blocks(make_request("b", range(9))) == ([], 0)
    kv = make_manager()
    run_prefill(kv, make_request("a", range(9)))
    wants_logprobs = make_request("b", range(9), params={"prompt_logprobs": 1})
    assert kv.get_computed_blocks(wants_logprobs) == ([], 0)


def test_blocks_are_cached_as_they_fill_during_decode():
    kv = make_manager()
    request = make_request("a", range(3))
    run_prefill(kv, request)
    for token in (10, 11):
        request.append_output_token(token)
        kv.allocate_slots(request, 1)
        request.num_computed_tokens += 1
    # 5 tokens known, 5 computed: the first block (0, 1, 2, 10) is full and cached
    probe = make_request("p", [0, 1, 2, 10, 11])
    assert kv.get_computed_blocks(probe)[1] == 4


def test_free_reverse_order_and_exact_accounting():
    kv = make_manager()
    request = make_request("a", range(10))
    run_prefill(kv, request)
    kv.free(request)
    kv.free(request)  # idempotent
    assert kv.num_free_blocks == 8 and kv.usage == 0.0
    assert all(b.ref_cnt == 0 for b in kv.block_pool.blocks)
    # the partial block (no hash) is reused first; of the cached ones the tail goes first
    assert kv.block_pool.free_block_ids()[:1] == [2]
    assert kv.block_pool.free_block_ids()[-2:] == [1, 0]


def test_free_uncaches_blocks_that_were_never_computed():
    kv = make_manager()
    request = make_request("a", range(8))
    assert kv.allocate_slots(request, 8) == [0, 1]  # scheduled, cached, not yet computed
    assert kv.block_pool.num_cached_blocks == 2
    kv.free(request)  # e.g. preempted before the step ran: num_computed_tokens is still 0
    assert kv.block_pool.num_cached_blocks == 0


def test_computed_blocks_only_for_new_requests():
    kv = make_manager()
    first = make_request("a", range(9))
    run_prefill(kv, first)
    second = make_request("b", range(9))
    blocks, _ = kv.get_computed_blocks(second)
    kv.allocate_slots(second, 1, blocks)
    with pytest.raises(ValueError):
        kv.allocate_slots(second, 1, blocks)


def test_revived_cached_blocks_count_against_free_blocks():
    kv = make_manager(num_blocks=3)
    first = make_request("a", range(9))
    run_prefill(kv, first)
    kv.free(first)  # blocks 0, 1 cached and free; 2 free
    second = make_request("b", list(range(8)) + [99, 98, 97, 96, 95])
    blocks, hit = kv.get_computed_blocks(second)
    assert hit == 8
    # needs 2 hit blocks (taken off the free queue) + 2 new = 4 > 3
    assert kv.allocate_slots(second, 5, blocks) is None
    assert kv.allocate_slots(second, 4, blocks) == [0, 1, 2]


def test_fork_shares_blocks_and_copies_on_write():
    kv = make_manager()
    parent = make_request("p", range(6))
    parent.append_output_token(7)  # 7 tokens, 6 computed: block 1 is partially filled
    ids = kv.allocate_slots(parent, 6)
    parent.num_computed_tokens = 6
    child = make_request("c", range(6))
    child.append_output_token(8)  # a different continuation
    kv.fork(parent, child)
    assert child.num_computed_tokens == 6
    assert kv.get_block_ids("c") == ids
    assert [kv.block_pool.blocks[i].ref_cnt for i in ids] == [2, 2]

    parent_ids = kv.allocate_slots(parent, 1)  # writes position 6 into shared block 1
    assert parent_ids[0] == ids[0] and parent_ids[1] != ids[1]
    assert kv.take_pending_copies() == [(ids[1], parent_ids[1])]
    assert kv.take_pending_copies() == []
    child_ids = kv.allocate_slots(child, 1)  # block 1 is the child's alone now: no copy
    assert child_ids == ids and kv.take_pending_copies() == []
    assert kv.block_pool.blocks[ids[0]].ref_cnt == 2

    kv.free(parent)
    kv.free(child)
    assert kv.num_free_blocks == 8 and all(b.ref_cnt == 0 for b in kv.block_pool.blocks)


def test_fork_of_a_swapped_out_parent_computes_its_own_kv():
    """A beam forked from a source whose KV waits in host memory shares no device blocks and
    starts from token 0 (it must not count the parent's swapped tokens as computed)."""
    from llmrt.kv import HostSwapSpace

    kv = KVCacheManager(BlockPool(8, False), BS, False, host_swap=HostSwapSpace(8))
    parent = make_request("p", range(6))
    kv.allocate_slots(parent, 6)
    parent.num_computed_tokens = 6
    assert kv.swap_out(parent) is not None and kv.is_swapped(parent)
    child = make_request("c", range(6))
    kv.fork(parent, child)
    assert child.num_computed_tokens == 0 and kv.get_block_ids("c") == []
    assert len(kv.allocate_slots(child, 6)) == 2


def test_copy_on_write_needs_a_free_block():
    kv = make_manager(num_blocks=2)
    parent = make_request("p", range(6))
    kv.allocate_slots(parent, 6)
    parent.num_computed_tokens = 6
    parent.append_output_token(1)
    child = make_request("c", range(6))
    child.append_output_token(2)
    kv.fork(parent, child)
    assert kv.allocate_slots(parent, 1) is None  # pool full: no room for the copy
    assert kv.take_pending_copies() == []


def test_free_drops_pending_copies_into_its_blocks():
    kv = make_manager()
    parent = make_request("p", range(6))
    kv.allocate_slots(parent, 6)
    parent.num_computed_tokens = 6
    parent.append_output_token(1)
    child = make_request("c", range(6))
    child.append_output_token(2)
    kv.fork(parent, child)
    kv.allocate_slots(child, 1)
    child.num_computed_tokens = 7
    kv.free(child)  # preempted or aborted before the copy was taken
    assert kv.take_pending_copies() == []
    kv.free(parent)
    assert kv.num_free_blocks == 8
