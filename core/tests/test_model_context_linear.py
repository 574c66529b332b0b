"""A backend's unquantized linear method (``llmrt_register_linear_methods``) runs every product."""

import types

import torch
import torch.nn.functional as F

from llmrt.attention.torch_paged import TorchPagedAttention
from llmrt.engine.model_setup import resolve_architecture
from llmrt.model.context import LayerContext
from llmrt.model.hf_config import load_hf_config
from llmrt.model.layers.linear import UnquantizedLinearMethod
from llmrt.model.loader import load_model
from llmrt.ops import torch_ops
from llmrt.plugins import get_plugin_host, hookimpl
from llmrt.testing import build_tiny_model
from llmrt.testing.plugin_host import make_plugin_host


class CountingMethod(UnquantizedLinearMethod):
    """F.linear, recording its layer prefix, the post-load call and the products."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix, self.loaded, self.calls = prefix, False, 0

    def process_weights_after_loading(self, layer) -> None:
        self.loaded = True

    def apply(self, layer, x, bias):
        self.calls += 1
        return F.linear(x, layer.weight, bias)


def test_registered_linear_method_is_found_by_backend_name():
    plugin = types.ModuleType("linear_plugin")
    plugin.LLMRT_PLUGIN_API = ">=1,<2"
    plugin.llmrt_register_linear_methods = hookimpl(lambda register: register("testchip", CountingMethod))
    host = make_plugin_host(plugin)
    assert host.linear_methods().get("testchip").value is CountingMethod
    assert host.linear_methods().find("cpu") is None


def test_every_unquantized_product_and_the_lm_head_use_the_backends_method(tmp_path):
    model_dir = build_tiny_model("qwen3", tmp_path / "qwen3")
    hf_config = load_hf_config(str(model_dir))
    ctx = LayerContext(ops=torch_ops.reference_ops(), attention_factory=TorchPagedAttention,
                       quant_method_factory=None, dtype=torch.float32, device=torch.device("cpu"),
                       linear_method_factory=CountingMethod)
    model = load_model(str(model_dir), hf_config, ctx, resolve_architecture(get_plugin_host(), hf_config))
    methods = {m.quant_method.prefix: m.quant_method for m in model.modules() if hasattr(m, "quant_method")}
    assert "lm_head" in methods and any(p.endswith("qkv_proj") for p in methods)
    assert all(isinstance(m, CountingMethod) and m.loaded for m in methods.values())
    model.compute_logits(torch.randn(2, hf_config.hidden_size))
    assert methods["lm_head"].calls == 1
