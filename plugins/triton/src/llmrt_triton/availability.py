"""Whether Triton can be imported here, and why not."""

from __future__ import annotations

from functools import lru_cache

from llmrt.backends import Availability


@lru_cache(maxsize=1)
def triton_available() -> Availability:
    """``Availability.yes`` with Triton's version, or ``no`` with the import error."""
    try:
        import triton
    except Exception as error:  # ImportError, or a broken install raising anything else
        return Availability.no(f"triton cannot be imported ({type(error).__name__}: {error})")
    return Availability.yes(f"triton {triton.__version__}")
