"""Discovery: find plugins through entry points, check them, register them with pluggy.

Entry points of group ``llmrt`` name a module. ``LLMRT_PLUGINS`` (comma-separated entry-point
or distribution names) is an allow-list; ``LLMRT_DISABLED_PLUGINS`` a deny-list. A plugin that
fails to import, declares an incompatible API range, or defines a hook the contract lacks is
recorded as a :class:`PluginFailure` with its traceback; it is never dropped silently.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
import traceback
from dataclasses import dataclass, field
from types import ModuleType

import importlib_metadata
import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from llmrt.plugins import hookspecs
from llmrt.plugins.errors import PluginError

logger = logging.getLogger("llmrt.plugins")

ENTRY_POINT_GROUP = "llmrt"
CORE_PLUGIN_NAME = "core"


@dataclass(frozen=True)
class PluginInfo:
    """A plugin that loaded: where it comes from and which hooks it implements."""

    name: str
    distribution: str
    version: str
    module: str
    api_range: str
    hooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that did not load, with the reason and the traceback."""

    name: str
    distribution: str
    error: str
    traceback: str = ""

    def describe(self) -> str:
        """One paragraph naming the plugin, its distribution and what went wrong."""
        text = f"plugin {self.name!r} (distribution {self.distribution}) failed to load: {self.error}"
        return f"{text}\n{self.traceback}" if self.traceback else text


@dataclass
class LoadResult:
    """Everything discovery found: the plugins that loaded and those that failed."""

    loaded: list[PluginInfo] = field(default_factory=list)
    failed: list[PluginFailure] = field(default_factory=list)


def _env_names(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _is_allowed(name: str, distribution: str) -> bool:
    allowed = _env_names("LLMRT_PLUGINS")
    disabled = _env_names("LLMRT_DISABLED_PLUGINS") or set()
    if {name, distribution} & disabled:
        return False
    return allowed is None or bool({name, distribution} & allowed)


def check_api_range(name: str, version: str, module: ModuleType) -> str:
    """Return the plugin's declared API range, or raise if it excludes this core's version."""
    declared = getattr(module, "LLMRT_PLUGIN_API", None)
    if declared is None:
        raise PluginError(
            f"plugin {name!r} {version} declares no LLMRT_PLUGIN_API range; core speaks plugin "
            f"API {hookspecs.PLUGIN_API_VERSION}"
        )
    try:
        spec = SpecifierSet(declared)
    except InvalidSpecifier as exc:
        raise PluginError(f"plugin {name!r} {version} has an invalid LLMRT_PLUGIN_API {declared!r}") from exc
    if Version(hookspecs.PLUGIN_API_VERSION) not in spec:
        raise PluginError(
            f"plugin {name!r} {version} supports plugin API {declared}, but this llmrt core "
            f"speaks plugin API {hookspecs.PLUGIN_API_VERSION}; install a matching version"
        )
    return declared


def check_hook_names(name: str, module: ModuleType) -> None:
    """Raise if the module defines an ``llmrt_*`` function the contract does not specify."""
    known = set(hookspecs.hook_names())
    for attr, value in vars(module).items():
        if attr.startswith("llmrt_") and callable(value) and attr not in known:
            guess = difflib.get_close_matches(attr, known, n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else ""
            raise PluginError(f"plugin {name!r} defines {attr!r}, which is not an llmrt hook{hint}")


def implemented_hooks(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    """Names of the hooks ``plugin`` implements, in contract order."""
    names = {caller.name for caller in pm.get_hookcallers(plugin) or []}
    return tuple(hook for hook in hookspecs.hook_names() if hook in names)


def register_module(
    pm: pluggy.PluginManager, name: str, distribution: str, version: str, module: ModuleType
) -> PluginInfo:
    """Check ``module`` against the contract and register it under ``name``."""
    api_range = check_api_range(name, version, module)
    check_hook_names(name, module)
    try:
        pm.register(module, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r} does not match the hook contract: {exc}") from exc
    info = PluginInfo(name, distribution, version, module.__name__, api_range)
    return PluginInfo(**{**info.__dict__, "hooks": implemented_hooks(pm, module)})


def _load_entry_point(pm: pluggy.PluginManager, entry_point, result: LoadResult) -> None:
    distribution = entry_point.dist.name if entry_point.dist else "unknown"
    version = entry_point.dist.version if entry_point.dist else "unknown"
    if pm.has_plugin(entry_point.name) or not _is_allowed(entry_point.name, distribution):
        return
    try:
        module = entry_point.load()
        if not inspect.ismodule(module):
            raise PluginError(f"entry point {entry_point.value!r} must name a module")
        result.loaded.append(register_module(pm, entry_point.name, distribution, version, module))
    except Exception as exc:  # noqa: BLE001 - every failure is recorded with its traceback
        detail = "" if isinstance(exc, PluginError) else traceback.format_exc()
        result.failed.append(PluginFailure(entry_point.name, distribution, str(exc) or repr(exc), detail))


def load_plugins(pm: pluggy.PluginManager) -> LoadResult:
    """Register core's own plugin, then every allowed entry-point plugin, into ``pm``."""
    result = LoadResult()
    if not pm.has_plugin(CORE_PLUGIN_NAME):
        core = importlib.import_module("llmrt.builtin_plugin")
        version = importlib_metadata.version("llmrt") if _installed("llmrt") else "dev"
        result.loaded.append(register_module(pm, CORE_PLUGIN_NAME, "llmrt", version, core))
    for entry_point in discover_entry_points():
        _load_entry_point(pm, entry_point, result)
    return result


def discover_entry_points() -> list:
    """Entry points of group ``llmrt`` of every installed distribution, sorted by name.

    A distribution whose metadata cannot be read (one being installed or removed right now, or
    a broken one) is skipped with a warning instead of stopping discovery; where two copies of a
    distribution are on the path, the first wins, as in ``importlib.metadata``.
    """
    found, seen = [], set()
    for dist in importlib_metadata.distributions():
        try:
            name = dist.name
            entry_points = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        except Exception as exc:  # noqa: BLE001 - metadata errors vary; none may stop discovery
            logger.warning("skipping a distribution whose metadata cannot be read (%s): %s",
                           getattr(dist, "_path", "unknown location"), exc)
            continue
        if name not in seen:
            seen.add(name)
            found += entry_points
    return sorted(found, key=lambda ep: ep.name)


def _installed(distribution: str) -> bool:
    try:
        importlib_metadata.distribution(distribution)
    except importlib_metadata.PackageNotFoundError:
        return False
    return True
