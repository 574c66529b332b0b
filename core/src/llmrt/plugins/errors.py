"""Errors raised while loading plugins or resolving what they registered."""

from __future__ import annotations


class PluginError(RuntimeError):
    """A plugin is broken, incompatible or conflicts with another; the message names it."""


class BackendUnavailableError(RuntimeError):
    """The requested backend is not installed or cannot run here; the message says why."""
