"""LLM.close() and ``with LLM(...)``: the engine's memory is freed at once, and the LLM refuses
further work with a clear error."""

import pytest
from llmrt import LLM, SamplingParams
from llmrt.testing import build_tiny_model

GREEDY = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True)
PROMPT = {"prompt_token_ids": [5, 6, 7, 8]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(build_tiny_model("qwen3", tmp_path_factory.mktemp("close") / "qwen3"))


def test_closing_frees_the_kv_cache_and_refuses_further_work(model_dir):
    with LLM(model=model_dir, backend="cpu", swap_space=0.01) as llm:
        engine = llm.llm_engine
        layers = list(engine.runner.model.attention_layers())
        first = llm.generate([PROMPT], GREEDY)[0].outputs[0].token_ids
        assert all(layer.kv_cache is not None for layer in layers)
        assert all(layer.host_kv_cache is not None for layer in layers)
    assert all(layer.kv_cache is None and layer.host_kv_cache is None for layer in layers)
    with pytest.raises(RuntimeError, match="closed"):
        llm.generate([PROMPT], GREEDY)
    with pytest.raises(RuntimeError, match="shut down"):  # a kept engine refuses work too
        engine.add_request("late", PROMPT, GREEDY)
    with pytest.raises(RuntimeError, match="shut down"):
        engine.step()
    llm.close()  # closing again is harmless
    engine.shutdown()  # so is a second shutdown
    with LLM(model=model_dir, backend="cpu") as again:  # a new engine in the same process
        assert again.generate([PROMPT], GREEDY)[0].outputs[0].token_ids == first


def test_shutdown_reports_a_failure_to_free_without_raising(model_dir, monkeypatch, caplog):
    llm = LLM(model=model_dir, backend="cpu")
    engine = llm.llm_engine

    def broken_release():
        raise RuntimeError("device lost")

    monkeypatch.setattr(engine.runner, "release", broken_release)
    llm.close()
    assert "freeing the engine's memory failed" in caplog.text
