"""The typed facade over pluggy: the only place in core that touches ``pm.hook``.

Core code calls methods such as :meth:`PluginHost.backends` and gets a validated
:class:`~llmrt.plugins.registry.Registry`; each contribution hook implementation is called on
its own with a ``register`` callback bound to its plugin's name, so every duplicate or bad
registration names the plugin responsible.
"""

from __future__ import annotations

import argparse
import functools
import logging
import threading
import traceback
from collections.abc import Callable, Hashable
from typing import Any

import pluggy

from llmrt.plugins import hookspecs
from llmrt.plugins.errors import PluginError
from llmrt.plugins.loader import LoadResult, PluginFailure, PluginInfo, load_plugins
from llmrt.plugins.registry import Registry

logger = logging.getLogger("llmrt.plugins")


class PluginHost:
    """Loaded plugins and what they contribute, behind typed methods."""

    def __init__(self, pm: pluggy.PluginManager, result: LoadResult) -> None:
        self._pm = pm
        self._result = result
        self._registries: dict[str, Registry[Any]] = {}
        for failure in result.failed:
            logger.warning("%s", failure.describe())

    # -- discovery ---------------------------------------------------------------------------

    @property
    def plugins(self) -> list[PluginInfo]:
        """Plugins that loaded, core first."""
        return list(self._result.loaded)

    @property
    def failures(self) -> list[PluginFailure]:
        """Plugins that failed to load, with their tracebacks."""
        return list(self._result.failed)

    def failure_for(self, name: str) -> PluginFailure | None:
        """The load failure of the plugin (entry point) called ``name``, if it failed."""
        return next((f for f in self._result.failed if f.name == name), None)

    # -- contributions -----------------------------------------------------------------------

    def _collect(self, hook_name: str, kind: str, key: Callable[..., Hashable]) -> Registry[Any]:
        """Run contribution hook ``hook_name`` once and cache the validated registry."""
        if hook_name in self._registries:
            return self._registries[hook_name]
        registry: Registry[Any] = Registry(kind)
        caller = getattr(self._pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order: core first
            register = functools.partial(_register_into, registry, impl.plugin_name, key)
            _call_impl(impl, hook_name, register=register)
        self._registries[hook_name] = registry
        return registry

    def backends(self) -> Registry[Any]:
        """Backends by name (values are :class:`llmrt.backends.Backend`)."""
        return self._collect("llmrt_register_backends", "backend", lambda backend: backend.name)

    def model_architectures(self) -> Registry[Any]:
        """Model factories by architecture name (``"LlamaForCausalLM"``, ...)."""
        return self._collect("llmrt_register_model_architectures", "model architecture", _first)

    def ops(self) -> Registry[Any]:
        """Op implementations keyed by ``(op_name, backend_name or None)``."""
        return self._collect("llmrt_register_ops", "op", _op_key)

    def attention_backends(self) -> Registry[Any]:
        """Attention implementation factories by name (metadata: backends, priority)."""
        return self._collect("llmrt_register_attention_backends", "attention backend", _first)

    def quantization_methods(self) -> Registry[Any]:
        """Quantization method factories by name (metadata: backends)."""
        return self._collect("llmrt_register_quantization_methods", "quantization method", _first)

    def linear_methods(self) -> Registry[Any]:
        """Unquantized linear-method factories by backend name."""
        return self._collect("llmrt_register_linear_methods", "linear method", _first)

    def graph_capture(self) -> Registry[Any]:
        """Graph-capture factories by backend name."""
        return self._collect("llmrt_register_graph_capture", "graph capture", _first)

    def communicators(self) -> Registry[Any]:
        """Device-communicator factories by name (metadata: backends)."""
        return self._collect("llmrt_register_communicators", "device communicator", _first)

    def schedulers(self) -> Registry[Any]:
        """Scheduler factories by name."""
        return self._collect("llmrt_register_schedulers", "scheduler", _first)

    def block_allocators(self) -> Registry[Any]:
        """Block-allocator factories by name."""
        return self._collect("llmrt_register_block_allocators", "block allocator", _first)

    def logits_processors(self) -> Registry[Any]:
        """Logits-processor factories by name."""
        return self._collect("llmrt_register_logits_processors", "logits processor", _first)

    def server_routes(self) -> list[Any]:
        """Route handlers contributed to the HTTP server, in registration order."""
        registry = self._collect("llmrt_register_server_routes", "server route", _identity_key)
        return [entry.value for entry in registry]

    # -- calls -------------------------------------------------------------------------------

    def add_cli_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        """Let every plugin add options to the ``command`` sub-command's parser."""
        for impl in self._pm.hook.llmrt_add_cli_arguments.get_hookimpls():
            _call_impl(impl, "llmrt_add_cli_arguments", command=command, parser=parser)

    def default_model(self) -> str | None:
        """The model to use when none is given, or ``None`` if no plugin offers one."""
        return self._pm.hook.llmrt_default_model()

    def engine_shutdown(self, reason: str) -> None:
        """Tell every plugin that an engine stops; a failing plugin is logged, not raised."""
        for impl in self._pm.hook.llmrt_engine_shutdown.get_hookimpls():
            try:
                _call_impl(impl, "llmrt_engine_shutdown", reason=reason)
            except PluginError as exc:
                logger.error("%s", exc)


def _first(name: str, *_args: Any, **_meta: Any) -> Hashable:
    return name


def _identity_key(value: Any, **_meta: Any) -> Hashable:
    return id(value)


def _op_key(op_name: str, impl: Any, backend: str | None = None, **_meta: Any) -> Hashable:
    return (op_name, backend)


def _register_into(
    registry: Registry[Any], plugin: str, key: Callable[..., Hashable], *args: Any, **meta: Any
) -> None:
    """The ``register`` callback handed to one plugin's contribution hook."""
    try:
        entry_key = key(*args, **meta)
    except (TypeError, AttributeError) as exc:
        raise PluginError(f"plugin {plugin!r} called register() with bad arguments for a {registry.kind}: {exc}") from exc
    value = args[0] if len(args) == 1 else args[1]
    registry.add(entry_key, value, plugin, **meta)


def _call_impl(impl: Any, hook_name: str, **kwargs: Any) -> Any:
    """Call one hook implementation, turning a plugin's exception into a named PluginError."""
    try:
        return impl.function(**{name: kwargs[name] for name in impl.argnames})
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(
            f"plugin {impl.plugin_name!r} raised in {hook_name}: {exc!r}\n{traceback.format_exc()}"
        ) from exc


_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host, loading plugins on first use (loading again is a no-op)."""
    global _host
    with _host_lock:
        if _host is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
            pm.add_hookspecs(hookspecs)
            _host = PluginHost(pm, load_plugins(pm))
        return _host


def reset_plugin_host() -> None:
    """Forget loaded plugins, so the next :func:`get_plugin_host` discovers them again."""
    global _host
    with _host_lock:
        _host = None
