"""A named collection of things plugins contribute, with duplicate detection."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from llmrt.plugins.errors import PluginError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One contribution: its key, the object, the plugin that registered it, extra metadata."""

    key: Hashable
    value: T
    plugin: str
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Contributions of one kind (backends, ops, architectures, ...), keyed by name.

    Two plugins registering the same key is an error that names both.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[Hashable, Entry[T]] = {}

    def add(self, key: Hashable, value: T, plugin: str, **meta: Any) -> None:
        """Record ``value`` under ``key`` for ``plugin``; raise if the key is taken."""
        previous = self._entries.get(key)
        if previous is not None:
            raise PluginError(
                f"{self.kind} {_show(key)} is registered twice: by plugin "
                f"{previous.plugin!r} and by plugin {plugin!r}"
            )
        self._entries[key] = Entry(key, value, plugin, dict(meta))

    def get(self, key: Hashable) -> Entry[T]:
        """The entry for ``key``; a ``KeyError`` listing the known keys when absent."""
        try:
            return self._entries[key]
        except KeyError:
            known = ", ".join(sorted(_show(k) for k in self._entries)) or "none"
            raise KeyError(f"unknown {self.kind} {_show(key)}; registered: {known}") from None

    def find(self, key: Hashable) -> Entry[T] | None:
        """The entry for ``key``, or ``None``."""
        return self._entries.get(key)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def _show(key: Hashable) -> str:
    if isinstance(key, tuple):
        return "/".join(str(part) for part in key if part is not None)
    return repr(key)
