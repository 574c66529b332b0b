"""Build a PluginHost from in-memory plugin modules, for tests that must not touch entry points."""

from __future__ import annotations

from types import ModuleType

import pluggy

from llmrt.plugins import hookspecs
from llmrt.plugins.host import PluginHost
from llmrt.plugins.loader import LoadResult, PluginFailure, load_plugins, register_module


def make_plugin_host(*modules: ModuleType, entry_points: bool = False) -> PluginHost:
    """A host with core's plugin, then ``modules`` (registered under their ``__name__``).

    With ``entry_points=True`` the installed entry-point plugins load too (after core).
    A module that fails the contract is recorded as a failure, as discovery would do.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if entry_points:
        result = load_plugins(pm)
    else:
        import importlib

        result = LoadResult()
        core = importlib.import_module("llmrt.builtin_plugin")
        result.loaded.append(register_module(pm, "core", "llmrt", "test", core))
    for module in modules:
        try:
            result.loaded.append(register_module(pm, module.__name__, "test", "0", module))
        except Exception as exc:  # noqa: BLE001 - mirror discovery: record, don't raise
            result.failed.append(PluginFailure(module.__name__, "test", str(exc)))
    return PluginHost(pm, result)
