"""Logits processors are a plugin extension point: enabled per request by name only."""

import types

import pytest
import torch

from llmrt.config import EngineConfig, ModelConfig
from llmrt.engine.llm_engine import LLMEngine
from llmrt.engine.validation import InvalidRequestError
from llmrt.plugins import hookimpl
from llmrt.sampling_params import SamplingParams
from llmrt.testing import build_tiny_model
from llmrt.testing.plugin_host import make_plugin_host

FORCED = 42


def _plugin():
    module = types.ModuleType("force_plugin")
    module.LLMRT_PLUGIN_API = ">=1"

    def force(hf_config):
        def apply(logits, requests):
            assert logits.shape == (len(requests), hf_config.vocab_size)
            forced = torch.full_like(logits, float("-inf"))
            forced[:, FORCED] = 0.0
            return forced
        return apply

    @hookimpl
    def llmrt_register_logits_processors(register):
        register("force42", force)

    module.llmrt_register_logits_processors = llmrt_register_logits_processors
    return module


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    model = build_tiny_model("llama", tmp_path_factory.mktemp("lp") / "llama")
    host = make_plugin_host(_plugin(), entry_points=True)
    return LLMEngine(EngineConfig(model=ModelConfig(model=str(model)), backend="cpu"), host=host)


def _run(engine):
    outputs = {}
    while engine.has_unfinished_requests():
        for output in engine.step():
            outputs[output.request_id] = output
    return outputs


def test_processor_applies_only_to_requests_that_enable_it(engine):
    engine.add_request("forced", [5, 6, 7], SamplingParams(temperature=0.7, max_tokens=4, ignore_eos=True,
                                                           logits_processors=["force42"]))
    engine.add_request("free", [5, 6, 7], SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True))
    outputs = _run(engine)
    assert outputs["forced"].outputs[0].token_ids == [FORCED] * 4
    assert outputs["free"].outputs[0].token_ids != [FORCED] * 4


def test_unknown_processor_is_refused_by_name(engine):
    with pytest.raises(InvalidRequestError, match="unknown logits processor.*nope.*force42") as caught:
        engine.add_request("bad", [5], SamplingParams(logits_processors=["nope"]))
    assert caught.value.param == "logits_processors"
    assert not engine.has_unfinished_requests()
