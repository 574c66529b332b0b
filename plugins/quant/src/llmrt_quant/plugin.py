"""Entry point of the ``llmrt-quant`` plugin: registers its quantization methods."""

from __future__ import annotations

from llmrt.plugins import hookimpl
from llmrt.plugins.hookspecs import Register
from llmrt_quant.int8 import Int8WeightOnlyMethod

LLMRT_PLUGIN_API = ">=1,<2"


@hookimpl
def llmrt_register_quantization_methods(register: Register) -> None:
    """``int8``: weight-only INT8 with per-channel scales, for every backend."""
    register("int8", lambda quant_config=None: Int8WeightOnlyMethod(), backends=None)
