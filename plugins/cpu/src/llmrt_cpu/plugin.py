"""Entry point of the ``llmrt-cpu`` plugin: registers the CPU backend."""

from __future__ import annotations

from llmrt.plugins import hookimpl
from llmrt.plugins.hookspecs import Register
from llmrt_cpu.backend import CpuBackend

LLMRT_PLUGIN_API = ">=1,<2"


@hookimpl
def llmrt_register_backends(register: Register) -> None:
    """The CPU backend."""
    register(CpuBackend())
