"""Property tests: random workloads through the scheduler and KV cache manager.

A fake model keeps, in every KV slot, a code of the whole prefix up to that position (real KV
depends on every earlier token too, so a block is only reusable after the same prefix). Each
step it applies swaps and block copies, then for every scheduled chunk, in batch order, checks
that the slots the chunk attends to (all positions before ``start``, through its block table)
hold exactly the request's prefix codes, writes the chunk's codes, and samples a token that
depends only on (request, position), so outputs must not depend on batching, chunking, prefix
hits or preemption. Requests arrive over time, share prefixes (prefix-cache hits), are aborted
at random, and the pool is small enough to force preemption. At the end every request finished
as predicted, every block is back in the free queue and every reference count is zero.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from llmrt.config import SchedulerConfig
from llmrt.engine.request import Request, RequestStatus
from llmrt.kv import BlockPool, HostSwapSpace, KVCacheManager
from llmrt.sampling_params import SamplingParams
from llmrt.sched import ScheduledRequest, Scheduler, SchedulerOutput

VOCAB = 50
EOS = 0


@dataclass
class Workload:
    """Knobs of one random run."""

    seed: int
    num_requests: int
    num_blocks: int
    block_size: int
    budget: int
    max_seqs: int
    max_model_len: int
    policy: str = "fcfs"
    caching: bool = True
    abort_rate: float = 0.02
    oversize_rate: float = 0.0
    host_blocks: int = 0
    """Host swap space in blocks; > 0 selects swap preemption."""


def prefix_codes(tokens: list[int]) -> list[int]:
    """What the fake model stores per position: a rolling hash of all tokens up to it."""
    codes, code = [], 0
    for token in tokens:
        code = (code * 1_000_003 + token + 1) % (1 << 61)
        codes.append(code)
    return codes


def model_token(request: Request, position: int) -> int:
    """The fake model's next token: a function of the request and the position only."""
    return (int(request.request_id[1:]) * 1_000_003 + position * 7919) % VOCAB


class FakeRunner:
    """Token ids in place of KV; checks what each chunk would attend to."""

    def __init__(self, num_blocks: int, block_size: int, host_blocks: int = 0) -> None:
        self.block_size = block_size
        self.slots = [[-1] * block_size for _ in range(num_blocks)]
        self.host = [[-1] * block_size for _ in range(host_blocks)]

    def execute(self, output: SchedulerOutput) -> dict[str, list[int]]:
        """Apply swaps and copies, check and write every chunk in batch order, sample where due."""
        for device, host in output.swap_out:
            self.host[host] = list(self.slots[device])
        for host, device in output.swap_in:
            self.slots[device] = list(self.host[host])
        sources = [list(self.slots[src]) for src, _ in output.copy_blocks]
        for (_, dst), content in zip(output.copy_blocks, sources, strict=True):
            self.slots[dst] = content
        written: set[tuple[int, int]] = set()
        sampled = {}
        for chunk in output.scheduled:
            request, start, end = chunk.request, chunk.start, chunk.start + chunk.num_new_tokens
            codes = prefix_codes(request.token_ids_slice(0, end))
            assert len(chunk.block_ids) * self.block_size >= end
            assert self._read(chunk.block_ids, start) == codes[:start], request.request_id
            for pos in range(start, end):
                slot = (chunk.block_ids[pos // self.block_size], pos % self.block_size)
                assert slot not in written, "two chunks write one KV slot in one step"
                written.add(slot)
                self.slots[slot[0]][slot[1]] = codes[pos]
            if chunk.samples:
                sampled[request.request_id] = [model_token(request, end)]
        return sampled

    def _read(self, block_ids: list[int], length: int) -> list[int]:
        bs = self.block_size
        return [self.slots[block_ids[p // bs]][p % bs] for p in range(length)]


def expected_output(request: Request, max_model_len: int) -> list[int]:
    """What the request generates when nothing interferes."""
    params, out = request.sampling_params, []
    while True:
        token = model_token(request, request.num_prompt_tokens + len(out))
        out.append(token)
        if len(out) >= params.min_tokens and not params.ignore_eos and token == EOS:
            return out
        if len(out) >= request.max_tokens or request.num_prompt_tokens + len(out) >= max_model_len:
            return out


def check_accounting(sched: Scheduler) -> None:
    """Reference counts equal table memberships; the free queue holds exactly the unused blocks."""
    kv = sched.kv_cache_manager
    pool = kv.block_pool
    running = {r.request_id for r in sched.running}
    holders = {rid for rid, entry in kv._requests.items() if entry.blocks}
    assert holders <= running, "a request that is not running holds blocks"
    held = Counter()
    for request_id in running:
        held.update(kv.get_block_ids(request_id))
    for block in pool.blocks:
        assert block.ref_cnt == held[block.block_id]
    free = pool.free_block_ids()
    assert len(free) == len(set(free))
    assert set(free) == {b.block_id for b in pool.blocks if b.ref_cnt == 0}
    for block_hash, block in pool._cached.items():
        assert block.block_hash == block_hash


class Simulation:
    """One random workload driven step by step."""

    def __init__(self, w: Workload) -> None:
        self.w = w
        self.rng = random.Random(w.seed)
        host = HostSwapSpace(w.host_blocks) if w.host_blocks else None
        self.kv = KVCacheManager(BlockPool(w.num_blocks, w.caching), w.block_size, w.caching, host)
        config = SchedulerConfig(max_num_batched_tokens=w.budget, max_num_seqs=w.max_seqs,
                                 max_model_len=w.max_model_len, policy=w.policy,
                                 preemption_mode="swap" if host else "recompute")
        self.sched = Scheduler(config, self.kv)
        self.runner = FakeRunner(w.num_blocks, w.block_size, w.host_blocks)
        self.swaps = 0
        self.pool_tokens = w.num_blocks * w.block_size
        self.prefixes = [self._tokens(self.rng.randint(1, 3 * w.block_size)) for _ in range(4)]
        # block-sized pieces that recur at different places: equal blocks after unequal prefixes
        pieces = [self._tokens(w.block_size) for _ in range(2)]
        self.prefixes += [sum((self.rng.choice(pieces) for _ in range(4)), []) for _ in range(4)]
        self.requests: list[Request] = []
        self.aborted: set[str] = set()
        self.preemptions = 0

    def _tokens(self, n: int) -> list[int]:
        return [self.rng.randrange(1, VOCAB) for _ in range(n)]

    def new_request(self) -> Request:
        """A request with a shared prefix, a random suffix and random limits."""
        rng, w = self.rng, self.w
        limit = min(w.max_model_len - 1, self.pool_tokens - 1)
        prompt = list(rng.choice(self.prefixes))[: rng.randint(1, limit)]
        prompt += self._tokens(rng.randint(0, 2 * w.block_size))
        prompt = prompt[:limit]
        max_tokens = rng.randint(1, max(1, self.pool_tokens - len(prompt)))
        if rng.random() < w.oversize_rate:
            max_tokens += self.pool_tokens
        params = SamplingParams(max_tokens=max_tokens, ignore_eos=rng.random() < 0.5,
                                min_tokens=rng.choice([0, 0, 2]) if max_tokens >= 2 else 0)
        params.eos_token_id = EOS
        request = Request(f"r{len(self.requests)}", prompt, params, max_tokens=max_tokens,
                          priority=rng.randint(0, 3), arrival_time=float(len(self.requests)),
                          cache_salt=rng.choice([None, None, None, "s"]))
        self.requests.append(request)
        return request

    def run(self) -> None:
        """Drive the workload until every request finished; fail on a stuck scheduler."""
        steps, max_steps = 0, 200 * self.w.num_requests + 1000
        while len(self.requests) < self.w.num_requests or self.sched.has_unfinished_requests():
            for _ in range(self.rng.choice([0, 0, 1, 1, 2, 3])):
                if len(self.requests) < self.w.num_requests:
                    self.sched.add_request(self.new_request())
            self.step()
            steps += 1
            assert steps < max_steps, "requests starve"

    def step(self) -> None:
        """One engine step plus random aborts, with the accounting checked."""
        out = self.sched.schedule()
        self.preemptions += len(out.preempted_request_ids)
        self.swaps += len(out.swap_in)
        assert out.num_batched_tokens <= self.w.budget
        assert len(out.scheduled) <= self.w.max_seqs
        self.sched.update_from_output(out, self.runner.execute(out))
        if self.sched.requests and self.rng.random() < self.w.abort_rate:
            victim = self.rng.choice(sorted(self.sched.requests))
            self.aborted.add(victim)
            self.sched.finish_requests([victim], RequestStatus.FINISHED_ABORTED)
        check_accounting(self.sched)

    def check_final(self) -> None:
        """Every request ended as predicted; every block is free with ref count 0."""
        for request in self.requests:
            assert request.is_finished
            expected = expected_output(request, self.w.max_model_len)
            assert request.output_token_ids == expected[: request.num_output_tokens]
            if request.request_id in self.aborted:
                assert request.status == RequestStatus.FINISHED_ABORTED
            elif request.num_prompt_tokens + len(expected) - 1 > self.pool_tokens:
                assert request.status == RequestStatus.FINISHED_ERROR
            else:
                assert request.output_token_ids == expected, request.request_id
                assert request.status in (RequestStatus.FINISHED_STOPPED,
                                          RequestStatus.FINISHED_LENGTH)
        pool = self.kv.block_pool
        assert pool.num_free_blocks == pool.num_blocks
        assert all(block.ref_cnt == 0 for block in pool.blocks)
        assert self.kv.take_pending_copies() == []
        if self.kv.host_swap is not None:
            assert self.kv.host_swap.num_free_blocks == self.w.host_blocks
        assert not self.kv._requests
        assert not self.sched.running and not self.sched.waiting and not self.sched._order


def simulate(w: Workload) -> Simulation:
    """Run a workload to the end and check its final state."""
    sim = Simulation(w)
    sim.run()
    sim.check_final()
    return sim


def test_thousands_of_requests_with_preemption_and_aborts():
    sim = simulate(Workload(seed=0, num_requests=3000, num_blocks=12, block_size=4, budget=24,
                            max_seqs=12, max_model_len=64, abort_rate=0.03, oversize_rate=0.01))
    assert sim.preemptions > 100
    assert sim.kv.stats.hits > 0
    assert any(r.num_cached_tokens > 0 for r in sim.requests)
    assert any(r.status == RequestStatus.FINISHED_ERROR for r in sim.requests)


def test_priority_policy_under_pressure():
    sim = simulate(Workload(seed=1, num_requests=800, num_blocks=16, block_size=2, budget=8,
                            max_seqs=6, max_model_len=40, policy="priority"))
    assert sim.preemptions > 10


def test_swap_preemption_under_pressure():
    sim = simulate(Workload(seed=2, num_requests=1500, num_blocks=12, block_size=4, budget=24,
                            max_seqs=12, max_model_len=64, abort_rate=0.03, oversize_rate=0.01,
                            host_blocks=10))
    assert sim.swaps > 50


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    num_blocks=st.integers(2, 24),
    block_size=st.sampled_from([1, 2, 3, 4, 8]),
    budget=st.integers(1, 32),
    max_seqs=st.integers(1, 8),
    max_model_len=st.integers(4, 48),
    policy=st.sampled_from(["fcfs", "priority"]),
    caching=st.booleans(),
    abort_rate=st.sampled_from([0.0, 0.05, 0.3]),
    oversize_rate=st.sampled_from([0.0, 0.1]),
    host_blocks=st.sampled_from([0, 0, 2, 16]),
)
def test_random_workloads_return_every_block(**knobs):
    simulate(Workload(num_requests=60, **knobs))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), num_blocks=st.integers(2, 16),
       block_size=st.sampled_from([1, 2, 4]))
def test_random_forks_copy_on_write(seed, num_blocks, block_size):
    """Forked sequences diverge without corrupting each other's KV; every block comes back."""
    rng = random.Random(seed)
    kv = KVCacheManager(BlockPool(num_blocks, True), block_size, True)
    runner = FakeRunner(num_blocks, block_size)
    live: list[Request] = []

    def compute(request: Request, num_new: int, ids: list[int]) -> None:
        chunk = ScheduledRequest(request, request.num_computed_tokens, num_new, ids)
        runner.execute(SchedulerOutput(scheduled=[chunk], copy_blocks=kv.take_pending_copies()))
        request.num_computed_tokens += num_new
        request.append_output_token(rng.randrange(VOCAB))

    for index in range(150):
        op = rng.choice(["new", "step", "step", "step", "fork", "free"]) if live else "new"
        if op == "new":
            prompt = [rng.randrange(3) for _ in range(rng.randint(1, 9))]
            request = Request(f"r{index}", prompt, SamplingParams())
            blocks, hit = kv.get_computed_blocks(request)
            ids = kv.allocate_slots(request, request.num_tokens - hit, blocks)
            if ids is None:
                kv.free(request)
                continue
            request.num_computed_tokens = hit
            compute(request, request.num_tokens - hit, ids)
            live.append(request)
        elif op == "step":
            request = rng.choice(live)
            ids = kv.allocate_slots(request, 1)
            if ids is not None:
                compute(request, 1, ids)
        elif op == "fork":
            parent = rng.choice(live)
            child = Request(f"r{index}", list(parent.prompt_token_ids), SamplingParams())
            child.output_token_ids = parent.output_token_ids[:-1] + [rng.randrange(VOCAB)]
            kv.fork(parent, child)
            live.append(child)
        else:
            request = live.pop(rng.randrange(len(live)))
            kv.free(request)
        held = Counter(i for r in live for i in kv.get_block_ids(r.request_id))
        assert all(b.ref_cnt == held[b.block_id] for b in kv.block_pool.blocks)
    for request in live:
        kv.free(request)
    assert kv.num_free_blocks == num_blocks and not kv._requests
    assert all(b.ref_cnt == 0 for b in kv.block_pool.blocks)
