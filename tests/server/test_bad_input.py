"""Bad input gets a 4xx in OpenAI's error shape, the server keeps serving and no KV block leaks."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from helpers import metric, metric_values, wait_idle

pytestmark = pytest.mark.xdist_group("llmrt-server")  # one shared server per worker

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
USER = [{"role": "user", "content": "hi"}]

CASES = [
    # (name, path, body, status, param, code)
    ("wrong type", CHAT, {"messages": "hi"}, 400, "messages", None),
    (
        "wrong nested type",
        CHAT,
        {"messages": [{"role": "user", "content": 3}]},
        400,
        "messages[0].content",
        None,
    ),
    ("unknown model", CHAT, {"model": "gpt-9", "messages": USER}, 404, "model", "model_not_found"),
    ("empty messages", CHAT, {"messages": []}, 400, "messages", None),
    ("template error", CHAT, {"messages": [{"role": "user"}]}, 400, "messages", None),
    (
        "image content",
        CHAT,
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        400,
        "messages[0].content",
        None,
    ),
    ("huge n", CHAT, {"messages": USER, "n": 10**6}, 400, "n", None),
    ("n beyond 64 bits", COMPLETIONS, {"prompt": "x", "n": 10**30}, 400, "n", None),
    (
        "huge max_tokens",
        CHAT,
        {"messages": USER, "max_tokens": 10**12},
        400,
        "max_tokens",
        "context_length_exceeded",
    ),
    (
        "negative max_tokens",
        COMPLETIONS,
        {"prompt": "x", "max_tokens": -1},
        400,
        "max_tokens",
        None,
    ),
    ("too many stop strings", CHAT, {"messages": USER, "stop": ["s"] * 10**5}, 400, "stop", None),
    (
        "logprobs above bound",
        COMPLETIONS,
        {"prompt": "x", "logprobs": 10**3},
        400,
        "logprobs",
        None,
    ),
    (
        "top_logprobs above bound",
        CHAT,
        {"messages": USER, "logprobs": True, "top_logprobs": 10**3},
        400,
        "top_logprobs",
        None,
    ),
    (
        "logit_bias too large",
        COMPLETIONS,
        {"prompt": "x", "logit_bias": {str(i): 1.0 for i in range(5000)}},
        400,
        "logit_bias",
        None,
    ),
    (
        "logit_bias bad key",
        COMPLETIONS,
        {"prompt": "x", "logit_bias": {"a": 1.0}},
        400,
        "logit_bias",
        None,
    ),
    (
        "temperature string",
        COMPLETIONS,
        {"prompt": "x", "temperature": "hot"},
        400,
        "temperature",
        None,
    ),
    (
        "negative temperature",
        COMPLETIONS,
        {"prompt": "x", "temperature": -1},
        400,
        "temperature",
        None,
    ),
    ("empty prompt list", COMPLETIONS, {"prompt": []}, 400, "prompt", None),
    ("mixed prompt list", COMPLETIONS, {"prompt": [1, "a"]}, 400, "prompt", None),
    ("token id outside vocabulary", COMPLETIONS, {"prompt": [10**6]}, 400, "prompt", None),
    ("prompt too long", COMPLETIONS, {"prompt": [5] * 300}, 400, None, "context_length_exceeded"),
    ("detokenize outside vocabulary", "/detokenize", {"tokens": [10**6]}, 400, "tokens", None),
    ("tokenize neither", "/tokenize", {}, 400, "prompt", None),
]


def aborted_count(url: str) -> float:
    """Sequences the server aborted so far (clients that went away)."""
    values = metric_values(url, "llmrt:request_success_total")
    return sum(v for labels, v in values.items() if 'finished_reason="abort"' in labels)


def _check_error(
    response: httpx.Response, status: int, param: str | None = None, code: str | None = None
) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


@pytest.mark.parametrize("name,path,body,status,param,code", CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_4xx(server, name, path, body, status, param, code):
    response = httpx.post(server.url + path, json=body, timeout=30)
    _check_error(response, status, param, code)


def test_malformed_json(server):
    response = httpx.post(
        server.url + CHAT, content=b'{"messages": [', headers={"content-type": "application/json"}
    )
    _check_error(response, 400)
    response = httpx.post(
        server.url + CHAT, content=b"[1, 2]", headers={"content-type": "application/json"}
    )
    _check_error(response, 400)


def test_unknown_route_and_method(server):
    _check_error(httpx.get(server.url + "/v1/nothing"), 404)
    _check_error(httpx.get(server.url + CHAT), 405)


def test_unknown_fields_are_accepted_and_logged(server):
    body = {"messages": USER, "max_tokens": 2, "made_up_field": {"x": 1}, "another_one": True}
    assert httpx.post(server.url + CHAT, json=body, timeout=30).status_code == 200
    deadline = time.monotonic() + 5
    while "made_up_field" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "ignoring unknown fields ['another_one', 'made_up_field']" in server.log()


def _read_response(sock: socket.socket, max_reads: int = 100) -> str:
    """Read until the headers and the body they announce have arrived (or the server closes)."""
    data = b""
    for _ in range(max_reads):
        chunk = sock.recv(65536)
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            None,
        )
        if not chunk or (length is not None and len(body) >= length):
            break
    return data.decode(errors="replace")


def test_hundred_megabyte_body_is_refused(server):
    """Announcing 100 MB gets 413 before the body is sent; sending it, 413 or a closed socket."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n" + b"{" + b" " * 65536
        )
        reply = _read_response(sock)
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert "too large" in json.loads(reply.split("\r\n\r\n", 1)[1])["error"]["message"]
    try:
        response = httpx.post(
            server.url + COMPLETIONS,
            content=b"x" * (100 << 20),
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 413
    except httpx.HTTPError:
        pass  # the server may close the connection while the client still sends
    assert httpx.get(server.url + "/health").status_code == 200


def test_dropped_stream_is_aborted_and_frees_blocks(server):
    aborted_before = aborted_count(server.url)
    body = {"prompt": "x", "max_tokens": 200, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", server.url + COMPLETIONS, json=body, timeout=30) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    wait_idle(server.url)
    aborted = aborted_count(server.url)
    assert aborted == aborted_before + 1


def test_dropped_non_streaming_request_is_aborted(server):
    """The client goes away while its request runs (seen in the metrics), not after a fixed delay."""
    aborted_before = aborted_count(server.url)
    payload = json.dumps({"messages": USER, "max_tokens": 230, "n": 4, "ignore_eos": True}).encode()
    head = (f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + payload)
        deadline = time.monotonic() + 30
        while metric(server.url, "llmrt:num_requests_running") == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
    wait_idle(server.url)
    aborted = aborted_count(server.url)
    assert aborted == aborted_before + 4


def test_server_still_serves_after_bad_input(server):
    response = httpx.post(server.url + CHAT, json={"messages": USER, "max_tokens": 3}, timeout=30)
    assert response.status_code == 200
    wait_idle(server.url)
