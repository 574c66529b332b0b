"""In-process tests of the server's parts: wire messages, deltas, logprobs, auth, app states."""

from __future__ import annotations

import asyncio
import math
import socket

import msgspec
import pytest
from litestar.testing import TestClient
from llmrt.outputs import CompletionOutput, RequestOutput
from llmrt.sampling_params import SamplingParams, SamplingParamsError
from llmrt.server import framing
from llmrt.server import messages as m
from llmrt.server.app import create_app
from llmrt.server.auth import authorized
from llmrt.server.context import ServerContext
from llmrt.server.engine_client import EngineClient, EnginePrompt
from llmrt.server.limits import ServerLimits
from llmrt.server.logprobs_format import NEG_INF_LOGPROB, CompletionLogprobsBuilder, chat_logprobs
from llmrt.server.output_deltas import DeltaTracker
from llmrt.server.sampling import build_sampling_params
from llmrt.server.tokenizer_service import TokenizerService, load_tokenizer

# -- wire format ------------------------------------------------------------------------------


def test_messages_round_trip_through_msgpack():
    stats = m.EngineStats(1, 2, 0.5, 10, 20, 30, 5)
    delta = m.RequestDelta(
        "r1", 0, "hi", [5, 6], [[m.TokenLogprob(5, -0.1, "h")]], "stop", "x", 3, 2
    )
    for message in (
        m.AddRequest("r1", [1, 2], {"max_tokens": 3, "logit_bias": {4: 1.5}}),
        m.AbortRequests(["r1"]),
        m.Shutdown(),
        m.EngineStart({"model": {"model": "x"}}),
    ):
        assert m.to_engine_decoder().decode(m.encode(message)) == message
    for message in (
        m.Outputs([delta], stats),
        m.RequestFailed("r1", "bad", param="n"),
        m.EngineFailed("x"),
    ):
        assert m.from_engine_decoder().decode(m.encode(message)) == message


def test_garbage_frames_are_rejected_not_unpickled():
    import pickle

    with pytest.raises(msgspec.DecodeError):
        m.to_engine_decoder().decode(pickle.dumps({"kind": "add"}))
    with pytest.raises(msgspec.ValidationError):
        m.to_engine_decoder().decode(msgspec.msgpack.encode(["add", "r1", "not a list", {}]))


def test_framing_over_a_socket_pair_and_oversized_header():
    left, right = socket.socketpair()
    with left, right:
        framing.send_frame(left, b"hello")
        assert framing.recv_frame(right) == b"hello"
        left.sendall(framing.HEADER.pack(framing.MAX_FRAME_BYTES + 1))
        with pytest.raises(ConnectionError):
            framing.recv_frame(right)
        left.close()
        with pytest.raises(framing.ChannelClosed):
            framing.recv_frame(right)


# -- engine-side deltas -------------------------------------------------------------------------


class _Tokenizer:
    def decode(self, ids, skip_special_tokens=False):
        return "".join(f"<{i}>" for i in ids)


def _output(text: str, ids: list[int], finished: bool = False, logprobs=None) -> RequestOutput:
    reason = "stop" if finished else None
    completion = CompletionOutput(0, text, ids, logprobs=logprobs, finish_reason=reason)
    return RequestOutput("r", None, [1, 2, 3], [completion], finished=finished)


def test_deltas_hold_back_a_possible_stop_string():
    tracker = DeltaTracker(_Tokenizer())
    tracker.track("r", SamplingParams(stop=["END"]))
    first = tracker.deltas(_output("abcdE", [1, 2]))
    assert (
        first[0].text == "abc" and first[0].token_ids == [1, 2] and first[0].num_prompt_tokens == 3
    )
    second = tracker.deltas(_output("abcdEF", [1, 2, 3]))
    assert second[0].text == "d" and second[0].token_ids == [3]
    last = tracker.deltas(_output("abcdEFG", [1, 2, 3, 4], finished=True))
    assert last[0].text == "EFG" and last[0].finish_reason == "stop"
    assert tracker.deltas(_output("abcdEFG", [1, 2, 3, 4], finished=True)) == []  # forgotten


def test_delta_logprobs_put_the_chosen_token_first():
    tracker = DeltaTracker(_Tokenizer())
    tracker.track("r", SamplingParams(logprobs=2))
    (delta,) = tracker.deltas(_output("x", [7], logprobs=[{9: -0.5, 8: -1.0}]))
    assert [(c.token_id, c.text) for c in delta.logprobs[0]] == [(7, "<7>"), (9, "<9>"), (8, "<8>")]
    assert math.isnan(delta.logprobs[0][0].logprob)


def test_logprob_formats():
    positions = [
        [
            m.TokenLogprob(1, -0.5, "a"),
            m.TokenLogprob(1, -0.5, "a"),
            m.TokenLogprob(2, -math.inf, "b"),
        ]
    ]
    (entry,) = chat_logprobs(positions, top=2)
    assert (
        entry.token == "a"
        and entry.bytes == [97]
        and entry.top_logprobs[1].logprob == NEG_INF_LOGPROB
    )
    builder = CompletionLogprobsBuilder(top=1, offset=0)
    builder.add([[m.TokenLogprob(5, math.nan, "The")]] + positions, first_is_unscored=True)
    assert builder.result.tokens == ["The", "a"] and builder.result.text_offset == [0, 3]
    assert builder.result.token_logprobs == [None, -0.5] and builder.result.top_logprobs == [
        None,
        {"a": -0.5},
    ]


# -- small pieces -------------------------------------------------------------------------------


def test_authorization_must_match_exactly():
    expected = b"Bearer key"
    assert authorized([(b"authorization", b"Bearer key")], expected)
    assert authorized([(b"Authorization", b"Bearer key")], expected)
    for value in (b"Bearer ke", b"Bearer key2", b"bearer key", b""):
        assert not authorized([(b"authorization", value)], expected)
    assert not authorized([], expected)


def test_sampling_keywords():
    assert build_sampling_params({"max_tokens": None}).max_tokens is None
    assert build_sampling_params({}).max_tokens == 16
    with pytest.raises(SamplingParamsError) as info:
        build_sampling_params({"n": 0})
    assert info.value.param == "n"


# -- the app without an engine process ------------------------------------------------------------


class _Writer:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.frames.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return load_tokenizer(str(tiny_model))


def _app(tokenizer, max_pending: int = 4):
    engine = EngineClient(None, None, {}, max_pending_sequences=max_pending)
    engine._writer = _Writer()

    async def nothing(*_args, **_kwargs):
        return None

    engine.start = nothing
    engine.shutdown = nothing
    ctx = ServerContext(
        engine, TokenizerService(tokenizer), ["tiny"], ServerLimits(max_body_bytes=1000)
    )
    return create_app(ctx, plugin_routes=[]), engine


def _ready(engine: EngineClient) -> None:
    engine.info = m.EngineReady("/m", 64, 512, 100, "fake", 1, {}, {})
    engine.ready.set()


def test_health_is_503_while_starting_200_when_ready_503_when_dead(tokenizer):
    app, engine = _app(tokenizer)
    with TestClient(app) as client:
        starting = client.get("/health")
        assert starting.status_code == 503 and "starting" in starting.json()["error"]["message"]
        assert client.post("/v1/completions", json={"prompt": "x"}).status_code == 503
        _ready(engine)
        assert client.get("/health").status_code == 200
        engine._die("test")
        dead = client.get("/health")
        assert dead.status_code == 503 and dead.json()["error"]["code"] == "engine_dead"


def test_queue_full_is_429_and_body_limit_is_413(tokenizer):
    app, engine = _app(tokenizer, max_pending=2)
    with TestClient(app) as client:
        _ready(engine)
        response = client.post("/v1/completions", json={"prompt": "x", "n": 3})
        assert response.status_code == 429 and response.json()["error"]["code"] == "queue_full"
        assert engine.num_in_flight == 0 and engine._writer.frames == []
        big = client.post("/v1/completions", json={"prompt": "x" * 2000})
        assert big.status_code == 413 and "too large" in big.json()["error"]["message"]


def test_more_samples_than_max_num_seqs_is_400_before_the_engine(tokenizer):
    app, engine = _app(tokenizer, max_pending=16)
    with TestClient(app) as client:
        engine.info = m.EngineReady("/m", 64, 512, 100, "fake", 1, {}, {}, max_num_seqs=2)
        engine.ready.set()
        response = client.post("/v1/completions", json={"prompt": "x", "n": 3})
        assert response.status_code == 400 and response.json()["error"]["param"] == "n"
        assert "max_num_seqs=2" in response.json()["error"]["message"] and engine._writer.frames == []


def test_request_group_ends_when_every_sequence_finished(tokenizer):
    async def run():
        _, engine = _app(tokenizer)
        _ready(engine)
        group = engine.submit([EnginePrompt([1, 2], {}), EnginePrompt([3], {})], n=2)
        assert engine.num_in_flight == 4
        ids = group.request_ids
        for request_id in ids:
            for index in range(2):
                group.queue.put_nowait(
                    m.RequestDelta(request_id, index, "t", [9], finish_reason="length")
                )
        seen = [(p, d.index) async for p, d in group]
        assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (1, 1)]
        assert engine.num_in_flight == 0
        group.close()  # nothing left to abort
        return len(engine._writer.frames)

    assert asyncio.run(run()) == 2  # two AddRequest frames, no abort


# -- chat templates -------------------------------------------------------------------------------


def test_chat_template_file_tools_and_sandbox(tokenizer, tmp_path):
    from llmrt.server.chat_template import ChatRenderer, load_chat_template
    from llmrt.server.errors import OpenAIError

    path = tmp_path / "template.jinja"
    path.write_text(
        "{% for t in tools %}[tool {{ t.function.name }}]{% endfor %}"
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    )
    renderer = ChatRenderer(tokenizer, load_chat_template(str(path)))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    text, ids = renderer.render([{"role": "user", "content": "hi"}], tools=tools)
    assert text == "[tool get_weather]<user>hi" and ids
    for hostile in (
        "{{ messages.__class__.__mro__[1].__subclasses__() }}",
        "{% set _ = messages.append(1) %}x",
    ):
        with pytest.raises(OpenAIError) as info:
            ChatRenderer(tokenizer, hostile).render([{"role": "user", "content": "x"}])
        assert info.value.status == 400 and "chat template error" in info.value.message
    with pytest.raises(OpenAIError):
        renderer.render([{"role": "user", "content": "x"}], chat_template_kwargs={"tokenize": True})
    with pytest.raises(FileNotFoundError):
        load_chat_template(str(tmp_path / "missing.jinja"))
