"""The compiled kernels (``llmrt_cpu._C``): whether they loaded, and which build runs.

They are built when the package is installed (see ``setup.py``) and are optional: when the
build was skipped or failed, when the library does not load (say, PyTorch was upgraded since),
or when ``$LLMRT_CPU_NATIVE=0``, :func:`kernels` returns ``None``, :func:`status` says why,
and the backend runs on core's PyTorch ops.

The library holds one build per instruction set and picks the best one the CPU supports;
``$LLMRT_CPU_ISA`` (``generic``, ``avx2``, ``avx512``, ``avx512_bf16``) picks another, for
comparisons and tests.
"""

from __future__ import annotations

import functools
import logging
import os
from types import ModuleType

import torch  # noqa: F401 - the extension needs libtorch (and its OpenMP runtime) loaded first

logger = logging.getLogger("llmrt.cpu")

NATIVE_ENV = "LLMRT_CPU_NATIVE"
"""Set to ``0`` to run without the native kernels even when they are built."""
ISA_ENV = "LLMRT_CPU_ISA"
"""Instruction-set build to use instead of the best supported one."""
REBUILD_HINT = ("install a C++ compiler and reinstall the plugin with "
                "`pip install --no-build-isolation ./plugins/cpu`")


@functools.cache
def _load() -> tuple[ModuleType | None, str]:
    """Import the extension once; returns it (or None) and a one-line status."""
    if os.environ.get(NATIVE_ENV, "1") == "0":
        return None, f"native kernels disabled by {NATIVE_ENV}=0; using PyTorch ops"
    try:
        from llmrt_cpu import _C
    except ImportError as exc:
        return None, f"native kernels unavailable ({exc}); using PyTorch ops: {REBUILD_HINT}"
    requested = os.environ.get(ISA_ENV)
    if requested:
        try:
            _C.set_isa(requested)
        except ValueError as exc:
            logger.warning("%s=%s ignored: %s", ISA_ENV, requested, exc)
    return _C, f"native kernels ({_C.isa()})"


def kernels() -> ModuleType | None:
    """The extension module, or ``None`` when the backend must use PyTorch ops."""
    return _load()[0]


def status() -> str:
    """What runs: ``"native kernels (avx2)"``, or why the native kernels are not used."""
    return _load()[1]
