"""Sampling controls end to end on the CPU backend: logprobs, determinism, stops, bad input."""

import random

import pytest

from llmrt import LLM, SamplingParams
from llmrt.sampling_params import SamplingParamsError
from llmrt.testing import build_tiny_model, random_prompts
from llmrt.testing.hf_reference import hf_logprobs

VOCAB = 500


@pytest.fixture(scope="module", params=["llama", "gemma2"])
def model_dir(request, tmp_path_factory):
    return str(build_tiny_model(request.param, tmp_path_factory.mktemp(request.param)))


@pytest.fixture(scope="module")
def llm(model_dir):
    return LLM(model=model_dir, backend="cpu", max_num_batched_tokens=32)


def _ids(prompts):
    return [{"prompt_token_ids": p} for p in prompts]


def test_logprobs_match_transformers(llm, model_dir):
    prompt = random_prompts(VOCAB, 1, 30, 30, seed=9)[0]
    params = SamplingParams(temperature=0.0, max_tokens=6, logprobs=5, prompt_logprobs=3, ignore_eos=True)
    out = llm.generate(_ids([prompt]), params, use_tqdm=False)[0]
    generated = out.outputs[0].token_ids
    reference = hf_logprobs(model_dir, prompt + generated)
    assert out.prompt_logprobs[0] is None and len(out.prompt_logprobs) == len(prompt)
    for position in range(1, len(prompt)):
        entry = out.prompt_logprobs[position]
        assert abs(entry[prompt[position]].logprob - reference[position - 1, prompt[position]].item()) < 1e-4
        assert len(entry) in (4, 3)  # the prompt token, plus the top 3 (it may be among them)
    for step, token in enumerate(generated):
        entry = out.outputs[0].logprobs[step]
        row = reference[len(prompt) - 1 + step]
        assert list(entry)[0] == token and entry[token].rank == 1
        for candidate, logprob in entry.items():
            assert abs(logprob.logprob - row[candidate].item()) < 1e-4
        top = row.topk(5).indices.tolist()
        assert set(top) <= set(entry)
    assert abs(out.outputs[0].cumulative_logprob - sum(row[t].item() for row, t in
               zip(reference[len(prompt) - 1 :], generated))) < 1e-3


def test_seeded_requests_reproduce_whatever_the_batch(llm):
    target = random_prompts(VOCAB, 1, 12, 12, seed=21)[0]
    seeded = SamplingParams(temperature=0.9, top_p=0.95, seed=1234, max_tokens=10, ignore_eos=True)
    alone = llm.generate(_ids([target]), seeded, use_tqdm=False)[0].outputs[0].token_ids
    others = random_prompts(VOCAB, 15, 3, 40, seed=22)
    batch = others + [target]
    random.Random(3).shuffle(batch)
    params = [seeded if p is target else SamplingParams(temperature=1.0, max_tokens=10) for p in batch]
    outputs = llm.generate(_ids(batch), params, use_tqdm=False)
    assert outputs[batch.index(target)].outputs[0].token_ids == alone


def test_greedy_does_not_depend_on_batch_size_or_order(llm):
    prompts = random_prompts(VOCAB, 32, 3, 50, seed=31)
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    single = [llm.generate(_ids([p]), params, use_tqdm=False)[0].outputs[0].token_ids for p in prompts[:6]]
    batched = [o.outputs[0].token_ids for o in llm.generate(_ids(prompts), params, use_tqdm=False)]
    order = list(range(32))
    random.Random(5).shuffle(order)
    shuffled = llm.generate(_ids([prompts[i] for i in order]), params, use_tqdm=False)
    unshuffled = [None] * 32
    for position, index in enumerate(order):
        unshuffled[index] = shuffled[position].outputs[0].token_ids
    assert batched[:6] == single and unshuffled == batched


def test_stop_token_ids_and_min_tokens(llm):
    prompt = random_prompts(VOCAB, 1, 10, 10, seed=41)[0]
    free = llm.generate(_ids([prompt]), SamplingParams(temperature=0, max_tokens=8, ignore_eos=True),
                        use_tqdm=False)[0].outputs[0].token_ids
    stop_at = free[2]
    stopped = llm.generate(_ids([prompt]), SamplingParams(temperature=0, max_tokens=8, stop_token_ids=[stop_at]),
                           use_tqdm=False)[0].outputs[0]
    assert stopped.token_ids == free[: free.index(stop_at) + 1]
    assert stopped.finish_reason == "stop" and stopped.stop_reason == stop_at
    late = llm.generate(_ids([prompt]), SamplingParams(temperature=0, max_tokens=8, stop_token_ids=[stop_at],
                                                       min_tokens=6), use_tqdm=False)[0].outputs[0]
    assert stop_at not in late.token_ids[:6]


def test_n_samples_share_the_prompt_and_differ(llm):
    prompt = random_prompts(VOCAB, 1, 40, 40, seed=51)[0]
    params = SamplingParams(n=4, temperature=1.0, seed=7, max_tokens=8, ignore_eos=True)
    first = llm.generate(_ids([prompt]), params, use_tqdm=False)[0]
    again = llm.generate(_ids([prompt]), params, use_tqdm=False)[0]
    samples = [o.token_ids for o in first.outputs]
    assert [o.index for o in first.outputs] == [0, 1, 2, 3]
    assert len({tuple(s) for s in samples}) > 1
    assert samples == [o.token_ids for o in again.outputs]


@pytest.mark.parametrize("field, value", [
    ("temperature", -0.5), ("top_p", 0.0), ("top_p", 1.5), ("top_k", -2), ("n", 0), ("n", 10**6),
    ("logprobs", 10**3), ("max_tokens", 0), ("min_p", 2.0), ("stop", ["x"] * 10**5),
    ("presence_penalty", 3.0), ("repetition_penalty", 0.0),
])
def test_out_of_range_values_name_the_field(field, value):
    with pytest.raises(SamplingParamsError) as caught:
        SamplingParams(**{field: value})
    assert caught.value.param == field


def test_token_ids_outside_the_vocabulary_are_refused(llm):
    with pytest.raises(ValueError, match="logit_bias"):
        llm.generate(_ids([[5, 6]]), SamplingParams(logit_bias={10**6: 1.0}), use_tqdm=False)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        llm.generate(_ids([[5, 10**7]]), use_tqdm=False)
    with pytest.raises(ValueError, match="empty"):
        llm.generate(_ids([[]]), use_tqdm=False)
    with pytest.raises(ValueError, match="maximum context length"):
        llm.generate(_ids([[5] * 10]), SamplingParams(max_tokens=10**6), use_tqdm=False)
    assert not llm.llm_engine.has_unfinished_requests()
    assert llm.generate(_ids([[5, 6]]), SamplingParams(max_tokens=2), use_tqdm=False)[0].finished


def test_bad_words_are_never_generated(llm):
    tokenizer = llm.get_tokenizer()
    greedy = SamplingParams(temperature=0, max_tokens=1)
    for prompt in random_prompts(VOCAB, 20, 10, 10, seed=61):  # find a first token that is a clean word
        token = llm.generate(_ids([prompt]), greedy, use_tqdm=False)[0].outputs[0].token_ids[0]
        word = tokenizer.decode([token])
        if word.strip() and tokenizer.encode(word, add_special_tokens=False) == [token]:
            break
    else:
        pytest.skip("no clean single-token word among the greedy first tokens")
    params = SamplingParams(temperature=0, max_tokens=1, bad_words=[word])
    banned = llm.generate(_ids([prompt]), params, use_tqdm=False)[0]
    assert banned.outputs[0].token_ids != [token]


def test_parallel_samples_share_the_prompt_blocks(model_dir):
    llm = LLM(model=model_dir, backend="cpu", enable_prefix_caching=False, block_size=16)
    engine = llm.llm_engine
    prompt = random_prompts(VOCAB, 1, 40, 40, seed=71)[0]  # 2.5 blocks of 16
    engine.add_request("p", {"prompt_token_ids": prompt}, SamplingParams(n=4, temperature=1.0, max_tokens=3,
                                                                         ignore_eos=True))
    engine.step()  # prefill + first tokens: the samples are forked from the first one
    engine.step()  # first decode: each sample writes into its own copy of the shared last block
    tables = [engine.kv_cache_manager.get_block_ids(f"p#{i}") for i in range(4)]
    shared = set(tables[0][:2])
    assert all(set(t[:2]) == shared for t in tables)  # the two full prompt blocks are shared
    assert len({b for t in tables for b in t}) <= 2 + 4  # plus one last block per sample
    while engine.has_unfinished_requests():
        engine.step()
    assert engine.block_pool.num_free_blocks == engine.num_blocks


def test_samples_never_run_past_max_num_seqs(model_dir):
    """n samples count as n sequences: a request that needs more than max_num_seqs is refused,
    and the others wait until all their samples fit, so no step samples more rows than that."""
    llm = LLM(model=model_dir, backend="cpu", max_num_seqs=4)
    with pytest.raises(ValueError, match="n=5 needs 5 sequences"):
        llm.generate(_ids([[5, 6, 7]]), SamplingParams(n=5, max_tokens=2), use_tqdm=False)
    with pytest.raises(ValueError, match="beam_width=6 needs 6 sequences"):
        llm.generate(_ids([[5, 6, 7]]), SamplingParams(use_beam_search=True, beam_width=6, max_tokens=2),
                     use_tqdm=False)
    engine, rows = llm.llm_engine, []
    sample = engine.runner._sample
    engine.runner._sample = lambda requests, logits, result: rows.append(len(requests)) or sample(
        requests, logits, result)
    prompts = random_prompts(VOCAB, 5, 4, 12, seed=81)
    outputs = llm.generate(_ids(prompts), SamplingParams(n=3, temperature=1.0, max_tokens=4, ignore_eos=True),
                           use_tqdm=False)
    assert [len(o.outputs) for o in outputs] == [3] * 5
    assert max(rows) <= 4
