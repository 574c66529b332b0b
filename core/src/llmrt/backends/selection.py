"""Choosing the backend: explicitly by name, or the highest-priority usable one.

Whatever happens is said loudly: the choice and its reason are logged, and a failure lists
every installed backend with why it is or is not usable here.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass

from llmrt.backends.backend import Availability, Backend
from llmrt.plugins.errors import BackendUnavailableError
from llmrt.plugins.host import PluginHost

logger = logging.getLogger("llmrt.backends")

INSTALL_HINT = "install one, e.g. `pip install llmrt-cpu` (from a source tree: `pip install ./plugins/cpu`)"


@dataclass(frozen=True)
class BackendStatus:
    """One installed backend, the plugin that registered it, and whether it is usable here."""

    backend: Backend
    plugin: str
    availability: Availability

    @property
    def name(self) -> str:
        """The backend's name."""
        return self.backend.name


@dataclass(frozen=True)
class BackendChoice:
    """The selected backend and why it was selected."""

    backend: Backend
    reason: str


def _detect(backend: Backend) -> Availability:
    try:
        return backend.detect()
    except Exception as exc:  # noqa: BLE001 - detection errors become the reason, with traceback
        logger.warning("backend %r: detection raised\n%s", backend.name, traceback.format_exc())
        return Availability.no(f"detection raised {exc!r}")


def backend_report(host: PluginHost) -> list[BackendStatus]:
    """Every installed backend with its availability, highest priority first."""
    statuses = [BackendStatus(e.value, e.plugin, _detect(e.value)) for e in host.backends()]
    return sorted(statuses, key=lambda s: (-s.backend.priority, s.name))


def _describe(statuses: list[BackendStatus], host: PluginHost) -> str:
    lines = [
        f"  {s.name:<8} {'usable' if s.availability.usable else 'unusable'}: {s.availability.reason}"
        f" (plugin {s.plugin}, priority {s.backend.priority})"
        for s in statuses
    ]
    lines += [f"  {f.name:<8} failed to load: {f.error}" for f in host.failures]
    return "\n".join(lines) if lines else "  (no backend is installed)"


def select_backend(host: PluginHost, requested: str | None = None) -> BackendChoice:
    """Pick ``requested`` if given, else the usable backend with the highest priority.

    :raises BackendUnavailableError: the named backend is missing or unusable, or none is
        usable; the message lists every installed backend and why.
    """
    statuses = backend_report(host)
    if requested is not None:
        return _select_named(host, statuses, requested)
    usable = [s for s in statuses if s.availability.usable]
    if not usable:
        raise BackendUnavailableError(
            f"no usable llmrt backend here; {INSTALL_HINT}.\nInstalled backends:\n{_describe(statuses, host)}"
        )
    chosen = usable[0]
    others = ", ".join(f"{s.name}: {s.availability.reason}" for s in statuses if s is not chosen)
    reason = (
        f"highest priority ({chosen.backend.priority}) among usable backends; "
        f"{chosen.availability.reason}" + (f" [others: {others}]" if others else "")
    )
    logger.info("backend %r selected automatically: %s", chosen.name, reason)
    return BackendChoice(chosen.backend, reason)


def _select_named(host: PluginHost, statuses: list[BackendStatus], requested: str) -> BackendChoice:
    match = next((s for s in statuses if s.name == requested), None)
    if match is None:
        failure = host.failure_for(requested)
        detail = f"\n{failure.describe()}" if failure else ""
        raise BackendUnavailableError(
            f"backend {requested!r} is not installed.{detail}\nInstalled backends:\n{_describe(statuses, host)}"
        )
    if not match.availability.usable:
        raise BackendUnavailableError(
            f"backend {requested!r} cannot run here: {match.availability.reason}\n"
            f"Installed backends:\n{_describe(statuses, host)}"
        )
    reason = f"requested with --backend; {match.availability.reason}"
    logger.info("backend %r selected: %s", requested, reason)
    return BackendChoice(match.backend, reason)
