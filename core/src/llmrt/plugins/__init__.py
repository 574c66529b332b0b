"""The plugin system: the hook contract, discovery, and the typed facade core calls."""

import pluggy

from llmrt.plugins.errors import BackendUnavailableError, PluginError
from llmrt.plugins.hookspecs import PLUGIN_API_VERSION, PROJECT_NAME
from llmrt.plugins.host import PluginHost, get_plugin_host, reset_plugin_host

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Decorator marking a plugin module's function as an implementation of an llmrt hook."""

__all__ = [
    "PLUGIN_API_VERSION",
    "BackendUnavailableError",
    "PluginError",
    "PluginHost",
    "get_plugin_host",
    "hookimpl",
    "reset_plugin_host",
]
