"""Scheduler: token budget, chunked prefill, prefix hits, preemption, policies, stops, aborts."""

from __future__ import annotations

import pytest

from llmrt.config import SchedulerConfig
from llmrt.engine.request import Request, RequestStatus
from llmrt.kv import BlockPool, HostSwapSpace, KVCacheManager
from llmrt.sampling_params import SamplingParams
from llmrt.sched import Scheduler, SchedulerOutput, check_stop

BS = 4


def make_scheduler(num_blocks=64, budget=64, max_seqs=16, max_len=256, policy="fcfs", caching=True):
    kv = KVCacheManager(BlockPool(num_blocks, caching), BS, caching)
    config = SchedulerConfig(max_num_batched_tokens=budget, max_num_seqs=max_seqs,
                             max_model_len=max_len, policy=policy)
    return Scheduler(config, kv)


def make_request(rid, prompt, max_tokens=4, **params) -> Request:
    priority = params.pop("priority", 0)
    arrival = params.pop("arrival_time", 0.0)
    return Request(rid, list(prompt), SamplingParams(**params), max_tokens=max_tokens,
                   priority=priority, arrival_time=arrival)


def step(sched: Scheduler, token: int = 1) -> tuple[SchedulerOutput, list[Request]]:
    out = sched.schedule()
    sampled = {s.request.request_id: [token] for s in out.scheduled if s.samples}
    return out, sched.update_from_output(out, sampled)


def run_all(sched: Scheduler, max_steps: int = 1000) -> list[SchedulerOutput]:
    outs = []
    while sched.has_unfinished_requests():
        outs.append(step(sched)[0])
        assert len(outs) < max_steps
    return outs


def chunks(out: SchedulerOutput) -> list[tuple[str, int, int]]:
    return [(s.request.request_id, s.start, s.num_new_tokens) for s in out.scheduled]


def assert_pool_empty(sched: Scheduler) -> None:
    kv = sched.kv_cache_manager
    assert kv.num_free_blocks == kv.num_blocks
    assert all(b.ref_cnt == 0 for b in kv.block_pool.blocks)


# -- admission -------------------------------------------------------------------------------


def test_add_request_rejects_bad_prompts():
    sched = make_scheduler(max_len=8)
    with pytest.raises(ValueError, match="empty"):
        sched.add_request(make_request("a", []))
    with pytest.raises(ValueError, match="maximum context length is 8"):
        sched.add_request(make_request("a", range(8)))
    sched.add_request(make_request("a", range(7)))
    with pytest.raises(ValueError, match="already in use"):
        sched.add_request(make_request("a", range(3)))
    assert sched.num_waiting == 1


def test_swap_needs_host_space_and_unknown_modes_are_refused():
    kv = KVCacheManager(BlockPool(4, True), BS, True)
    with pytest.raises(ValueError, match="swap_space_bytes"):
        Scheduler(SchedulerConfig(preemption_mode="swap"), kv)
    with pytest.raises(ValueError, match="preemption_mode"):
        Scheduler(SchedulerConfig(preemption_mode="drop"), kv)
    with pytest.raises(ValueError):
        Scheduler(SchedulerConfig(policy="random"), kv)


# -- the step --------------------------------------------------------------------------------


def test_prefill_then_decode_until_max_tokens():
    sched = make_scheduler()
    sched.add_request(make_request("a", range(5), max_tokens=3))
    out, updated = step(sched, token=7)
    assert chunks(out) == [("a", 0, 5)] and out.num_batched_tokens == 5
    assert out.scheduled[0].block_ids == [0, 1]
    assert updated[0].output_token_ids == [7]
    out, _ = step(sched, token=8)
    assert chunks(out) == [("a", 5, 1)]
    out, updated = step(sched, token=9)
    request = updated[0]
    assert request.output_token_ids == [7, 8, 9]
    assert request.status == RequestStatus.FINISHED_LENGTH
    assert not sched.has_unfinished_requests() and sched.get_request("a") is None
    assert_pool_empty(sched)
    assert sched.schedule().finished_request_ids == ["a"]


def test_chunked_prefill_mixes_with_decode():
    sched = make_scheduler(budget=4)
    sched.add_request(make_request("short", range(2), max_tokens=5))
    sched.add_request(make_request("long", range(100, 110), max_tokens=1))
    out = sched.schedule()
    assert chunks(out) == [("short", 0, 2), ("long", 0, 2)]
    assert [s.samples for s in out.scheduled] == [True, False]  # read before the update
    sched.update_from_output(out, {"short": [1]})
    out, _ = step(sched)
    assert chunks(out) == [("short", 2, 1), ("long", 2, 3)]
    out, _ = step(sched)
    assert chunks(out) == [("short", 3, 1), ("long", 5, 3)]
    out, updated = step(sched)
    assert chunks(out) == [("short", 4, 1), ("long", 8, 2)]
    long = next(r for r in updated if r.request_id == "long")
    assert long.num_output_tokens == 1 and long.status == RequestStatus.FINISHED_LENGTH
    run_all(sched)
    assert_pool_empty(sched)


def test_max_num_seqs_limits_running():
    sched = make_scheduler(max_seqs=2)
    for i in range(3):
        sched.add_request(make_request(f"r{i}", range(3)))
    out, _ = step(sched)
    assert [s.request.request_id for s in out.scheduled] == ["r0", "r1"]
    assert sched.num_running == 2 and sched.num_waiting == 1


def test_samples_of_a_request_count_against_max_num_seqs():
    """A request with n = 3 becomes three sequences after its first token: it waits until
    there is room for all of them, so no step samples more than max_num_seqs rows."""
    sched = make_scheduler(max_seqs=4)
    sched.add_request(make_request("solo", range(3)))
    leader = make_request("multi", range(3))
    leader.pending_siblings = [make_request("multi-1", range(3)), make_request("multi-2", range(3))]
    sched.add_request(leader)
    sched.add_request(make_request("late", range(3)))
    out, _ = step(sched)
    assert [s.request.request_id for s in out.scheduled] == ["solo", "multi"]
    # solo and the leader run; the third request would push the three samples past 4
    assert sched.num_running == 2 and sched.num_waiting == 1
    for sibling in leader.pending_siblings:
        sched.fork_request(leader, sibling)
    leader.pending_siblings = []
    assert sched.num_running == 4
    out, _ = step(sched)
    assert "late" not in [s.request.request_id for s in out.scheduled]


def test_prefix_cache_hit_across_steps():
    sched = make_scheduler()
    sched.add_request(make_request("a", range(10), max_tokens=1))
    run_all(sched)
    sched.add_request(make_request("b", list(range(8)) + [70, 71, 72], max_tokens=1))
    out = sched.schedule()
    b = out.scheduled[0]
    assert (b.start, b.num_new_tokens) == (8, 3)
    assert b.request.num_cached_tokens == 8
    assert b.block_ids[:2] == [0, 1]


def test_prefix_cache_hit_within_one_step_shares_blocks():
    sched = make_scheduler()
    sched.add_request(make_request("a", range(10), max_tokens=1))
    sched.add_request(make_request("b", range(10), max_tokens=1))
    out = sched.schedule()
    a, b = out.scheduled
    assert b.request.num_cached_tokens == 8 and b.start == 8 and b.num_new_tokens == 2
    assert a.block_ids[:2] == b.block_ids[:2] and a.block_ids[2] != b.block_ids[2]
    sched.update_from_output(out, {"a": [1], "b": [1]})
    assert_pool_empty(sched)
    assert sched.kv_cache_manager.stats.hits == 8


def test_preemption_recomputes_and_everyone_finishes():
    # 4 blocks of 4 tokens: two requests of 6 prompt tokens that grow to 14 cannot both fit
    sched = make_scheduler(num_blocks=4, caching=False)
    sched.add_request(make_request("old", range(6), max_tokens=8))
    sched.add_request(make_request("young", range(10, 16), max_tokens=8))
    preempted = []
    outputs = {}
    while sched.has_unfinished_requests():
        out, updated = step(sched)
        preempted += out.preempted_request_ids
        for r in updated:
            outputs[r.request_id] = r
    assert preempted and set(preempted) == {"young"}
    assert outputs["young"].num_preemptions >= 1
    for request in outputs.values():
        assert request.status == RequestStatus.FINISHED_LENGTH
        assert request.num_output_tokens == 8
    assert_pool_empty(sched)


def test_preempted_request_goes_to_front_and_restarts():
    sched = make_scheduler(num_blocks=3, caching=False)
    sched.add_request(make_request("a", range(4), max_tokens=8))
    sched.add_request(make_request("b", range(4), max_tokens=8))
    step(sched)  # a: block 0 + 1 token; b: 1 block
    sched.add_request(make_request("c", range(2), max_tokens=1))
    for _ in range(6):
        out, _ = step(sched)
        if out.preempted_request_ids:
            break
    assert out.preempted_request_ids == ["b"]
    b = next(iter(sched.waiting))
    assert b.request_id == "b" and b.status == RequestStatus.PREEMPTED
    assert b.num_computed_tokens == 0 and sched.kv_cache_manager.get_block_ids("b") == []
    assert [s.request.request_id for s in out.scheduled] == ["a"]  # no admissions this step


def _idle_requests(sched: Scheduler, *requests: Request) -> None:
    """Admit and compute the requests' prompts without giving them tokens: they then hold blocks
    with nothing to compute, as beams do while they wait for their group's choice."""
    for request in requests:
        sched.add_request(request)
    sched.update_from_output(sched.schedule(), {})


def test_a_stalled_step_preempts_idle_requests_which_stay_parked():
    """A step that would compute nothing preempts idle running requests for the waiting request
    that needs their blocks; they are parked (not readmitted) until they are given tokens."""
    sched = make_scheduler(num_blocks=3, caching=False)
    a = make_request("a", range(8), max_tokens=8)
    _idle_requests(sched, a)
    c = make_request("c", range(20, 28), max_tokens=1)
    sched.add_request(c)
    out = sched.schedule()
    assert out.preempted_request_ids == ["a"] and chunks(out) == [("c", 0, 8)]
    assert list(sched.waiting) == [] and sched.num_waiting == 1 and a.status == RequestStatus.PREEMPTED
    sched.update_from_output(out, {"c": [5]})  # c finishes by length
    assert c.is_finished and not sched.schedule().scheduled  # a, parked, is not readmitted
    sched.append_output_tokens(a, [7])
    assert chunks(sched.schedule()) == [("a", 0, 9)]


def test_a_request_preempts_an_idle_one_rather_than_itself():
    """The last running request, out of blocks, preempts an idle one ahead of it instead of
    restarting itself beside it forever; aborting the parked request forgets it."""
    sched = make_scheduler(num_blocks=3, caching=False)
    a, b = make_request("a", range(4), max_tokens=8), make_request("b", range(8), max_tokens=2)
    _idle_requests(sched, a, b)
    sched.append_output_tokens(b, [9])  # b's 9th token needs a third block
    out = sched.schedule()
    assert out.preempted_request_ids == ["a"] and chunks(out) == [("b", 8, 1)]
    sched.finish_requests(["a"], RequestStatus.FINISHED_ABORTED)
    assert sched.num_waiting == 0 and "a" not in sched.requests
    sched.update_from_output(out, {"b": [10]})
    assert not sched.has_unfinished_requests()
    assert_pool_empty(sched)


def test_a_fork_without_a_seat_waits_for_one():
    """A beam forked while every seat is taken (its group's preempted beams gave theirs up) waits
    in the queue and computes its own KV once admitted; with a seat it runs at once."""
    sched = make_scheduler(max_seqs=2)
    a, b = make_request("a", range(4)), make_request("b", range(8, 12))
    _idle_requests(sched, a, b)
    seatless = make_request("a1", range(4))
    sched.fork_request(a, seatless)
    assert list(sched.waiting) == [seatless] and seatless.status == RequestStatus.PREEMPTED
    assert seatless not in sched.running and seatless.num_computed_tokens == 0
    sched.finish_requests(["b"], RequestStatus.FINISHED_ABORTED)
    seated = make_request("a2", range(4))
    sched.fork_request(a, seated)
    assert seated in sched.running and seated.num_computed_tokens == 4


def test_swap_preemption_moves_kv_to_host_and_back():
    kv = KVCacheManager(BlockPool(4, False), BS, False, host_swap=HostSwapSpace(8))
    config = SchedulerConfig(max_num_batched_tokens=64, max_model_len=64, preemption_mode="swap")
    sched = Scheduler(config, kv)
    sched.add_request(make_request("old", range(6), max_tokens=8))
    sched.add_request(make_request("young", range(10, 16), max_tokens=8))
    swapped_out = swapped_in = None
    while sched.has_unfinished_requests():
        out, _ = step(sched)
        if out.swap_out and swapped_out is None:
            swapped_out = out.swap_out
            young = sched.get_request("young")
            assert out.preempted_request_ids == ["young"]
            assert young.status == RequestStatus.PREEMPTED and young.num_computed_tokens > 0
            assert kv.is_swapped(young) and kv.get_block_ids("young") == []
            progress = young.num_computed_tokens
        if out.swap_in and swapped_in is None:
            swapped_in = out.swap_in
            chunk = out.scheduled[-1]
            assert chunk.request.request_id == "young" and chunk.start == progress
            assert [h for h, _ in swapped_in] == [h for _, h in swapped_out]
            assert [d for _, d in swapped_in] == chunk.block_ids[: len(swapped_in)]
    assert swapped_out and swapped_in
    assert_pool_empty(sched)
    assert kv.host_swap.num_free_blocks == 8


def test_swap_falls_back_to_recompute_without_room():
    kv = KVCacheManager(BlockPool(4, False), BS, False, host_swap=HostSwapSpace(1))
    config = SchedulerConfig(max_num_batched_tokens=64, max_model_len=64, preemption_mode="swap")
    sched = Scheduler(config, kv)
    sched.add_request(make_request("old", range(6), max_tokens=8))
    sched.add_request(make_request("young", range(10, 16), max_tokens=8))
    outs = run_all(sched)
    assert any(o.preempted_request_ids for o in outs)
    assert not any(o.swap_out for o in outs)
    assert_pool_empty(sched)


def test_request_larger_than_the_cache_fails_instead_of_looping():
    sched = make_scheduler(num_blocks=2)  # 8 tokens
    sched.add_request(make_request("huge", range(9)))
    out, updated = step(sched)
    assert out.is_empty and out.finished_request_ids == ["huge"]
    assert [r.request_id for r in updated] == ["huge"]
    assert updated[0].status == RequestStatus.FINISHED_ERROR
    assert "too small" in updated[0].stop_reason
    assert not sched.has_unfinished_requests()


def test_request_outgrowing_the_cache_fails_after_its_tokens():
    sched = make_scheduler(num_blocks=2)
    sched.add_request(make_request("grows", range(6), max_tokens=10))
    finished = None
    for _ in range(10):
        _, updated = step(sched)
        finished = next((r for r in updated if r.is_finished), None)
        if finished:
            break
    assert finished.status == RequestStatus.FINISHED_ERROR
    assert finished.num_output_tokens == 3  # 6 + 3 = 9 tokens; the 9th KV slot does not exist
    assert_pool_empty(sched)


def test_fcfs_head_of_line_waits_for_blocks():
    sched = make_scheduler(num_blocks=3, caching=False)
    sched.add_request(make_request("a", range(8), max_tokens=2))
    sched.add_request(make_request("big", range(8)))
    sched.add_request(make_request("small", range(1)))
    out, _ = step(sched)
    assert [s.request.request_id for s in out.scheduled] == ["a"]  # small does not overtake big


def test_priority_policy_admits_by_priority_then_arrival():
    sched = make_scheduler(max_seqs=1, policy="priority")
    for rid, priority, arrival in [("low", 5, 0.0), ("high-late", 0, 2.0), ("high-early", 0, 1.0)]:
        sched.add_request(make_request(rid, range(3), max_tokens=1, priority=priority,
                                       arrival_time=arrival))
    order = []
    while sched.has_unfinished_requests():
        out, _ = step(sched)
        order += [s.request.request_id for s in out.scheduled]
    assert order == ["high-early", "high-late", "low"]


def test_priority_policy_preempts_the_least_important():
    sched = make_scheduler(num_blocks=4, policy="priority", caching=False)
    sched.add_request(make_request("vip", range(6), max_tokens=8, priority=0, arrival_time=1.0))
    sched.add_request(make_request("bulk", range(6), max_tokens=8, priority=9, arrival_time=0.0))
    preempted = []
    while sched.has_unfinished_requests():
        out, _ = step(sched)
        preempted += out.preempted_request_ids
    assert preempted and set(preempted) == {"bulk"}


# -- finishing -------------------------------------------------------------------------------


def test_finish_requests_aborts_running_and_waiting():
    sched = make_scheduler(max_seqs=1)
    sched.add_request(make_request("run", range(5)))
    sched.add_request(make_request("wait", range(5)))
    step(sched)
    done = sched.finish_requests(["run", "wait", "nope"], RequestStatus.FINISHED_ABORTED)
    assert [r.request_id for r in done] == ["run", "wait"]
    assert all(r.status == RequestStatus.FINISHED_ABORTED for r in done)
    assert sched.finish_requests("run", RequestStatus.FINISHED_ABORTED) == []
    assert not sched.has_unfinished_requests() and sched.num_waiting == 0
    assert_pool_empty(sched)
    assert sched.schedule().finished_request_ids == ["run", "wait"]
    with pytest.raises(ValueError):
        sched.finish_requests("x", RequestStatus.RUNNING)


def test_update_skips_requests_finished_in_between():
    sched = make_scheduler()
    sched.add_request(make_request("a", range(3)))
    out = sched.schedule()
    sched.finish_requests("a", RequestStatus.FINISHED_STOPPED)
    assert sched.update_from_output(out, {"a": [5]}) == []


def test_stop_token_finishes_and_frees():
    sched = make_scheduler()
    sched.add_request(make_request("a", range(3), max_tokens=10, stop_token_ids=[42]))
    step(sched, token=1)
    _, updated = step(sched, token=42)
    assert updated[0].status == RequestStatus.FINISHED_STOPPED and updated[0].stop_reason == 42
    assert_pool_empty(sched)


def test_several_tokens_per_step_stop_at_the_first_stop():
    sched = make_scheduler()
    request = make_request("a", range(3), max_tokens=10)
    request.sampling_params.eos_token_id = 0
    sched.add_request(request)
    out = sched.schedule()
    sched.update_from_output(out, {"a": [4, 0, 5]})
    assert request.output_token_ids == [4, 0] and request.status == RequestStatus.FINISHED_STOPPED


# -- check_stop ------------------------------------------------------------------------------


def stopped(tokens, max_tokens=10, max_len=100, **params):
    request = make_request("r", [1, 2], max_tokens=max_tokens, **params)
    request.sampling_params.eos_token_id = 0
    request.sampling_params.all_stop_token_ids = {0, 3}
    for t in tokens:
        request.append_output_token(t)
    return check_stop(request, max_len), request


def test_check_stop_rules():
    done, r = stopped([5, 0])
    assert done and r.status == RequestStatus.FINISHED_STOPPED and r.stop_reason is None
    done, r = stopped([5, 9], stop_token_ids=[9])
    assert done and r.stop_reason == 9
    done, r = stopped([3])
    assert done and r.stop_reason == 3
    assert not stopped([0], ignore_eos=True)[0]
    assert not stopped([3], ignore_eos=True)[0]
    assert stopped([9], ignore_eos=True, stop_token_ids=[9])[0]
    assert not stopped([0], min_tokens=2, max_tokens=5)[0]
    assert stopped([4, 0], min_tokens=2, max_tokens=5)[0]
    done, r = stopped([4, 4], max_tokens=2)
    assert done and r.status == RequestStatus.FINISHED_LENGTH
    done, r = stopped([4, 4], max_len=4, min_tokens=5)
    assert done and r.status == RequestStatus.FINISHED_LENGTH
    done, r = stopped([4, 0], max_tokens=2)
    assert done and r.status == RequestStatus.FINISHED_STOPPED  # a real stop beats the cap
    assert not stopped([4])[0]
