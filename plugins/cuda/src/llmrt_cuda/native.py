"""The CUDA C++ kernels built with the package (``llmrt_cuda._C``), when they are there.

``pip install --no-build-isolation ./plugins/cuda`` compiles them where PyTorch is a CUDA build
and ``nvcc`` is present (``setup.py``); elsewhere the package installs without them and the
backend runs its Triton kernels. :func:`native_kernels` says which.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

DISABLE_ENV = "LLMRT_CUDA_NATIVE"
"""Set to ``0`` to run the Triton kernels even where the CUDA C++ ones are built (comparisons)."""


@dataclass(frozen=True)
class NativeKernels:
    """The compiled module, or ``None`` with the reason it is not used."""

    module: ModuleType | None
    reason: str


@lru_cache(maxsize=1)
def native_kernels() -> NativeKernels:
    """Import ``llmrt_cuda._C`` once; never raises."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return NativeKernels(None, f"turned off with {DISABLE_ENV}=0")
    try:
        from llmrt_cuda import _C
    except ImportError as exc:
        return NativeKernels(None, f"llmrt_cuda._C is not built ({exc}); see plugins/cuda/setup.py")
    return NativeKernels(_C, "built with the package")
