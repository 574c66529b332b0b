"""The official openai SDK, sync and async, streaming and not, against ``llmrt serve``."""

from __future__ import annotations

import asyncio

import openai
import pytest
from helpers import wait_idle

pytestmark = pytest.mark.xdist_group("llmrt-server")  # one shared server per worker

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]


@pytest.fixture
def client(server):
    with openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60
    ) as c:
        yield c


def test_models_lists_served_names_with_max_model_len(client):
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny", "tiny-alias"]
    assert models[0].model_extra["max_model_len"] == 256


def test_chat_completion(client):
    response = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=5, temperature=0
    )
    assert response.object == "chat.completion"
    choice = response.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("length", "stop")
    assert response.usage.completion_tokens <= 5
    assert (
        response.usage.total_tokens
        == response.usage.prompt_tokens + response.usage.completion_tokens
    )
    assert response.usage.prompt_tokens_details.cached_tokens >= 0


def test_chat_greedy_is_deterministic_and_stream_matches(client):
    whole = client.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        max_tokens=8,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=MESSAGES,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_chat_logprobs(client):
    response = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3
    )
    content = response.choices[0].logprobs.content
    assert len(content) == response.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.logprob == pytest.approx(
            max(t.logprob for t in entry.top_logprobs)
        )  # greedy picks the top


def test_completion_forms_and_n(client):
    response = client.completions.create(
        model="tiny", prompt=["one", "two"], n=2, max_tokens=3, temperature=0
    )
    assert response.object == "text_completion"
    assert [c.index for c in response.choices] == [0, 1, 2, 3]
    assert response.choices[0].text == response.choices[1].text  # greedy: both samples agree
    by_ids = client.completions.create(model="tiny", prompt=[5, 6, 7], max_tokens=3, temperature=0)
    batch = client.completions.create(
        model="tiny", prompt=[[5, 6, 7], [8, 9]], max_tokens=3, temperature=0
    )
    assert batch.choices[0].text == by_ids.choices[0].text
    assert batch.usage.prompt_tokens == 5


def test_completion_echo_logprobs_for_harnesses(client):
    response = client.completions.create(
        model="tiny", prompt="The cache", max_tokens=2, temperature=0, echo=True, logprobs=2
    )
    choice = response.choices[0]
    lp = choice.logprobs
    assert choice.text.startswith("The cache")
    prompt_len = response.usage.prompt_tokens
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset) == prompt_len + 2
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert lp.text_offset == sorted(lp.text_offset)
    assert all(len(top) >= 1 for top in lp.top_logprobs[1:])
    scored = client.completions.create(
        model="tiny", prompt="The cache", max_tokens=0, echo=True, logprobs=1
    )
    assert scored.choices[0].text == "The cache" and scored.usage.completion_tokens == 0
    assert (
        scored.choices[0].logprobs.token_logprobs[1:prompt_len] == lp.token_logprobs[1:prompt_len]
    )


def test_completion_stream_with_usage(client):
    chunks = list(
        client.completions.create(
            model="tiny",
            prompt="Blocks",
            max_tokens=6,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    whole = client.completions.create(
        model="tiny", prompt="Blocks", max_tokens=6, temperature=0, extra_body={"ignore_eos": True}
    )
    assert text == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens == 6


def test_stop_string_and_stop_reason(client):
    base = (
        client.completions.create(
            model="tiny",
            prompt="The small runtime",
            max_tokens=12,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
        .choices[0]
        .text
    )
    stop = base[3:5]
    if not stop.strip():
        pytest.skip("greedy output has no usable stop string")
    response = client.completions.create(
        model="tiny",
        prompt="The small runtime",
        max_tokens=12,
        temperature=0,
        stop=[stop],
        extra_body={"ignore_eos": True},
    )
    choice = response.choices[0]
    assert choice.finish_reason == "stop" and choice.model_extra["stop_reason"] == stop
    assert stop not in choice.text and base.startswith(choice.text)
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="tiny",
            prompt="The small runtime",
            max_tokens=12,
            temperature=0,
            stop=[stop],
            stream=True,
            extra_body={"ignore_eos": True},
        )
        if c.choices
    )
    assert streamed == choice.text


def test_prefix_cache_reports_cached_tokens(client):
    # longer than one KV block on every backend (the CPU backend's hold 128 tokens)
    prompt = (
        "Each request keeps its own cache of keys and values, stored in fixed-size blocks. " * 5
    )
    client.completions.create(model="tiny", prompt=prompt, max_tokens=1)
    again = client.completions.create(model="tiny", prompt=prompt, max_tokens=1)
    assert again.usage.prompt_tokens_details.cached_tokens >= 16


def test_async_client_streaming_and_not(server):
    async def run():
        async with openai.AsyncOpenAI(
            base_url=f"{server.url}/v1", api_key="unused", max_retries=0
        ) as client:
            whole = await client.chat.completions.create(
                model="tiny", messages=MESSAGES, max_tokens=4
            )
            stream = await client.completions.create(
                model="tiny", prompt="hi", max_tokens=4, stream=True
            )
            texts = [chunk.choices[0].text async for chunk in stream]
            many = await asyncio.gather(
                *[
                    client.completions.create(model="tiny", prompt=f"p{i}", max_tokens=3)
                    for i in range(8)
                ]
            )
            return whole, texts, many

    whole, texts, many = asyncio.run(run())
    assert whole.choices[0].message.content is not None
    assert texts and len(many) == 8
    wait_idle(server.url)
