"""The shipped demo model: the default model, real output, perplexity equal to transformers'."""

import subprocess
import sys

import pytest

llmrt_demo_model = pytest.importorskip("llmrt_demo_model")

from llmrt import LLM, SamplingParams  # noqa: E402
from llmrt.entrypoints.llm import default_model  # noqa: E402
from llmrt.testing.perplexity import hf_perplexity, llmrt_perplexity, token_windows  # noqa: E402

MODEL_DIR = str(llmrt_demo_model.MODEL_DIR)


def test_demo_model_is_the_default(fresh_plugins):
    assert default_model() == MODEL_DIR


@pytest.fixture(scope="module")
def llm():
    return LLM(dtype="float32", backend="cpu")


def test_completion_is_shaped_like_python(llm):
    out = llm.generate(["import os\n\ndef list_files(path):"], SamplingParams(temperature=0, max_tokens=48),
                       use_tqdm=False)[0].outputs[0].text
    assert any(word in out for word in ("return", "for ", "if ", "self", "os.")), out
    assert out.count("\n") >= 2, out


def test_perplexity_matches_transformers_within_half_a_percent(llm):
    text = llmrt_demo_model.HELDOUT_PATH.read_text()
    ids = llm.get_tokenizer().encode(text, add_special_tokens=False)
    windows = token_windows(ids, 1023, limit=6)
    ours, reference = llmrt_perplexity(llm, windows), hf_perplexity(MODEL_DIR, windows)
    assert abs(ours / reference - 1) < 0.005, (ours, reference)
    assert ours < 10  # a trained model, not noise (the README reports 6.0 on the whole file)


def test_generate_command_uses_the_demo_model_without_a_model_argument():
    result = subprocess.run([sys.executable, "-m", "llmrt", "generate", "--prompt", "def main():",
                             "--max-tokens", "16", "--backend", "cpu"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_serve_without_a_model_serves_the_demo_model(tmp_path):
    """The README's main job: `llmrt serve` with no model, then a completion that looks like Python."""
    import os
    import signal
    import socket
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "llmrt", "serve", "--port", str(port), "--backend", "cpu"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "LLMRT_CPU_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        models = httpx.get(f"{url}/v1/models").json()["data"]
        assert models[0]["id"] == "default"
        body = {"model": models[0]["id"], "prompt": "import os\n\ndef list_files(path):", "max_tokens": 48,
                "temperature": 0}
        text = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()["choices"][0]["text"]
        assert any(word in text for word in ("return", "for ", "if ", "os.")), text
        chat = {"model": models[0]["id"], "max_tokens": 48, "temperature": 0,
                "messages": [{"role": "user", "content": "Write a Python function `add`: Add two numbers."}]}
        reply = httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=60).json()
        assert reply["choices"][0]["message"]["content"].strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        log.close()
