"""The engine's scheduling under pressure, with a fake model that tracks what every KV slot holds.

Random small configurations (block sizes, tiny caches, token budgets, max_num_seqs, fcfs and
priority, recompute and swap preemption, prefix caching, asynchronous scheduling) run workloads
mixing beam search, parallel sampling and greedy requests that arrive over time. The fake runner
applies the scheduler's swap and copy lists as a runner must, writes a fingerprint of each token's
prefix into its KV slot, and checks every slot a chunk reads. Each run must finish within a step
cap, never sample more rows than max_num_seqs, leave the block pool and swap space empty, and
give every request the output it gets with room to spare.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict

import pytest

from llmrt import LLM, SamplingParams
from llmrt.engine.model_runner import RunnerOutput
from llmrt.engine.pending_step import PendingStep
from llmrt.sample.logprobs import TokenLogprobs
from llmrt.testing import build_tiny_model

VOCAB = list(range(20, 60))
SEEDS = range(100)


def _fingerprint(tokens: list[int]) -> str:
    return hashlib.blake2b(repr(tokens).encode(), digest_size=8).hexdigest()


def _next_token_logprobs(tokens: list[int]) -> tuple[list[int], list[float]]:
    """A fixed, prefix-determined distribution over 12 tokens (best first)."""
    rng = random.Random(_fingerprint(tokens))
    return rng.sample(VOCAB, 12), sorted((-5 * rng.random() for _ in range(12)), reverse=True)


class KVTrackingRunner:
    """Stands in for the model runner: KV slots hold prefix fingerprints, tokens come from them."""

    def __init__(self, max_num_seqs: int, block_size: int) -> None:
        self.max_num_seqs, self.block_size = max_num_seqs, block_size
        self.device: dict[int, list[str | None]] = defaultdict(lambda: [None] * block_size)
        self.host: dict[int, list[str | None]] = defaultdict(lambda: [None] * block_size)
        self.in_flight: dict[str, int] = {}

    def launch(self, output) -> PendingStep:
        for device, host in output.swap_out:
            self.host[host] = list(self.device[device])
        for host, device in output.swap_in:
            self.device[device] = list(self.host[host])
        for source, target in output.copy_blocks:
            self.device[target] = list(self.device[source])
        result, rows = RunnerOutput({}), 0
        for chunk in output.scheduled:
            tokens, end = self._tokens(chunk), chunk.start + chunk.num_new_tokens
            for position in range(end):  # write this chunk's slots, then read every slot it sees
                block, slot = chunk.block_ids[position // self.block_size], position % self.block_size
                if position >= chunk.start:
                    self.device[block][slot] = _fingerprint(tokens[: position + 1])
                assert self.device[block][slot] == _fingerprint(tokens[: position + 1]), "wrong KV read"
            if end == len(tokens):
                rows += self._sample(chunk.request, tokens, result)
        assert rows <= self.max_num_seqs, f"{rows} rows sampled in one step"
        return PendingStep(result)

    def _tokens(self, chunk) -> list[int]:
        tokens = list(chunk.request.all_token_ids)
        if chunk.start + chunk.num_new_tokens > len(tokens):  # its last token is still in flight
            tokens.append(self.in_flight[chunk.request.request_id])
        return tokens

    def _sample(self, request, tokens: list[int], result: RunnerOutput) -> int:
        samplers = [request] + (list(request.pending_siblings) if request.num_output_tokens == 0 else [])
        candidates, logprobs = _next_token_logprobs(tokens)
        for sampler in samplers:
            params = sampler.sampling_params
            pick = 0 if params.temperature == 0 else random.Random(sampler.request_id + repr(tokens)).randrange(12)
            result.sampled_token_ids[sampler.request_id] = [candidates[pick]]
            self.in_flight[sampler.request_id] = candidates[pick]
            if params.logprobs is not None:
                k = params.logprobs
                result.logprobs[sampler.request_id] = TokenLogprobs(
                    [candidates[pick], *candidates[:k]], [logprobs[pick], *logprobs[:k]], [pick + 1, *range(1, k + 1)])
        return len(samplers)


def _workload(rng: random.Random) -> list[tuple[str, list[int], SamplingParams, int, int]]:
    """(id, prompt, params, priority, arrival step) for 2-4 requests; prompts may share prefixes."""
    requests = []
    for index in range(rng.randint(2, 4)):
        prompt = [rng.choice(VOCAB) for _ in range(rng.randint(1, 12))]
        if requests and rng.random() < 0.4:
            shared = rng.choice(requests)[1]
            prompt = shared[: rng.randint(1, len(shared))] + prompt[: rng.randint(0, 4)]
        max_tokens, kind = rng.randint(2, 8), rng.choice(["beam"] * 4 + ["n", "greedy"])
        if kind == "beam":
            width = rng.randint(2, 4)
            params = SamplingParams(use_beam_search=True, beam_width=width, n=rng.randint(1, width),
                                    max_tokens=max_tokens, ignore_eos=True)
        elif kind == "n":
            params = SamplingParams(n=rng.randint(2, 3), temperature=1.0, seed=rng.randint(0, 99),
                                    max_tokens=max_tokens, ignore_eos=True)
        else:
            params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
        requests.append((f"r{index}", prompt, params, rng.randint(0, 2), rng.choice([0, 0, 0, 1, 2, 4])))
    return requests


def _engine(model: str, blocks: int, block_size: int, settings: dict):
    engine = LLM(model=model, backend="cpu", block_size=block_size, num_gpu_blocks_override=blocks,
                 **settings).llm_engine
    engine.runner = KVTrackingRunner(engine.config.scheduler.max_num_seqs, block_size)
    return engine


def _run(engine, workload, max_steps: int = 800) -> dict:
    pending, outputs = sorted(workload, key=lambda w: w[4]), {}
    for step in range(max_steps):
        while pending and pending[0][4] <= step:
            request_id, prompt, params, priority, _ = pending.pop(0)
            engine.add_request(request_id, {"prompt_token_ids": prompt}, params, priority=priority)
        outputs.update((o.request_id, o) for o in engine.step() if o.finished)
        if not pending and not engine.has_unfinished_requests():
            return {rid: [(c.token_ids, c.finish_reason) for c in o.outputs] for rid, o in outputs.items()}
    raise AssertionError(f"unfinished after {max_steps} steps")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(build_tiny_model("llama", tmp_path_factory.mktemp("llama")))


@pytest.mark.parametrize("seed", SEEDS)
def test_scheduling_under_pressure_gives_the_roomy_outputs(model, seed):
    rng = random.Random(seed)
    workload = _workload(rng)
    block_size = rng.choice([1, 2, 4])
    widest = max(max(p.n, p.beam_width if p.use_beam_search else 1) for _, _, p, _, _ in workload)
    need = max(-(-(len(prompt) + p.max_tokens) // block_size) for _, prompt, p, _, _ in workload)
    settings = {"max_num_batched_tokens": rng.choice([1, 2, 3, 6, 64]),
                "max_num_seqs": rng.choice([widest, widest + 1, widest + 3, 256]),
                "scheduling_policy": rng.choice(["fcfs", "priority"]),
                "enable_prefix_caching": rng.random() < 0.5, "async_scheduling": rng.random() < 0.3}
    if rng.random() < 0.5:
        host_gib = rng.choice([1, 4, 64]) * 2048 * 4 / block_size / 2**30
        settings.update(preemption_mode="swap", swap_space=host_gib)
    roomy = _run(_engine(model, 1024, block_size, {"max_num_batched_tokens": 512}), workload)
    engine = _engine(model, need + rng.randint(0, 6), block_size, settings)
    assert _run(engine, workload) == roomy
    assert engine.block_pool.num_free_blocks == engine.num_blocks
    swap = engine.scheduler.kv_cache_manager.host_swap
    assert swap is None or swap.num_free_blocks == swap.num_blocks
    assert not engine.beam_search.groups
