"""Hardware backends: the interface plugins implement and how one is chosen."""

from llmrt.backends.backend import Availability, Backend, MemoryInfo
from llmrt.backends.selection import BackendChoice, backend_report, select_backend

__all__ = ["Availability", "Backend", "BackendChoice", "MemoryInfo", "backend_report", "select_backend"]
