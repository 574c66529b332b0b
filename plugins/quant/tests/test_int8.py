"""INT8 weight-only quantization: accurate matrix products, and a model that still generates."""

import pytest
import torch
import torch.nn.functional as F

from llmrt import LLM, SamplingParams
from llmrt.testing import build_tiny_model, random_prompts
from llmrt_quant.int8 import quantize_per_channel


def test_per_channel_quantization_error_is_bounded():
    weight = torch.randn(64, 128)
    q, scale = quantize_per_channel(weight)
    assert q.dtype == torch.int8 and scale.shape == (64,)
    error = (q.float() * scale.unsqueeze(1) - weight).abs()
    assert torch.all(error <= scale.unsqueeze(1) / 2 + 1e-6)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(build_tiny_model("llama", tmp_path_factory.mktemp("int8")))


def test_quantized_model_stores_int8_and_stays_close(model_dir):
    prompts = [{"prompt_token_ids": p} for p in random_prompts(500, 8, 5, 30, seed=3)]
    params = SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True)
    quantized = LLM(model=model_dir, backend="cpu", quantization="int8")
    layer = quantized.llm_engine.runner.model.model.layers[0].mlp.down_proj
    assert layer.weight.dtype == torch.int8
    x = torch.randn(3, layer.in_features)
    reference = F.linear(x, layer.weight.float() * layer.weight_scale.unsqueeze(1).float())
    torch.testing.assert_close(layer(x), reference, rtol=1e-4, atol=1e-4)
    plain = LLM(model=model_dir, backend="cpu")
    first_q = [o.outputs[0].token_ids for o in quantized.generate(prompts, params, use_tqdm=False)]
    first_f = [o.outputs[0].token_ids for o in plain.generate(prompts, params, use_tqdm=False)]
    assert sum(a == b for a, b in zip(first_q, first_f)) >= 6


def test_unknown_quantization_method_names_it(model_dir):
    with pytest.raises(ValueError, match="quantization method 'gptq' is not installed"):
        LLM(model=model_dir, backend="cpu", quantization="gptq")
