"""Entry point of the ``llmrt-tpu`` plugin: registers the TPU backend."""

from __future__ import annotations

from llmrt.plugins import hookimpl
from llmrt.plugins.hookspecs import Register
from llmrt_tpu.backend import TpuBackend

LLMRT_PLUGIN_API = ">=1,<2"


@hookimpl
def llmrt_register_backends(register: Register) -> None:
    """The TPU backend."""
    register(TpuBackend())
