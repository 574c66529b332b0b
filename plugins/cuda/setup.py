"""Build of llmrt-cuda's CUDA C++ kernels (``llmrt_cuda._C``), a PyTorch CUDA extension.

Metadata lives in pyproject.toml; this file only adds the extension. It needs a CUDA build of
PyTorch and CUDA's compiler (``nvcc``, found through ``CUDA_HOME`` or ``PATH``) at build time, so
install with ``pip install --no-build-isolation ./plugins/cuda``. The kernels are compiled for
the GPUs named in ``TORCH_CUDA_ARCH_LIST`` (default: Hopper, ``9.0``, plus PTX that newer GPUs
compile when they load it). In a source tree: ``python setup.py build_ext --inplace``.

Never fatal: without a CUDA build of PyTorch, without ``nvcc``, or with
``LLMRT_CUDA_BUILD_NATIVE=0``, the package installs without the extension, says so, and the
backend runs its Triton kernels everywhere (:mod:`llmrt_cuda.native` reports why).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

CSRC = Path("csrc")
DEFAULT_ARCHS = "9.0+PTX"


def _say(message: str) -> None:
    """A message pip shows (stderr survives --quiet only on failure, so be loud and short)."""
    print(f"llmrt-cuda: {message}", file=sys.stderr, flush=True)


def _skip(reason: str) -> dict:
    _say(f"CUDA C++ kernels NOT built ({reason}); the backend uses its Triton kernels. To build "
         "them: a CUDA build of PyTorch and nvcc, then `pip install --no-build-isolation ./plugins/cuda`.")
    return {}


def _extension_setup() -> dict:
    """``ext_modules`` and ``cmdclass`` for the kernels, or nothing when they can't build."""
    if os.environ.get("LLMRT_CUDA_BUILD_NATIVE", "1") == "0":
        return _skip("LLMRT_CUDA_BUILD_NATIVE=0")
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError:
        return _skip("PyTorch is not importable at build time; pip's build isolation hides it, "
                     "use --no-build-isolation")
    if torch.version.cuda is None:
        return _skip(f"torch {torch.__version__} is not a CUDA build")
    if CUDA_HOME is None:
        return _skip("nvcc was not found (set CUDA_HOME)")
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_ARCHS)

    class BuildNative(BuildExtension):
        """Builds the extension; a compiler failure leaves the package without it."""

        def build_extension(self, ext) -> None:
            try:
                super().build_extension(ext)
            except Exception as exc:  # noqa: BLE001 - any build failure means "Triton kernels only"
                _skip(f"{type(exc).__name__}: {exc}")

    extension = CUDAExtension(
        "llmrt_cuda._C",
        sources=[str(CSRC / "bindings.cpp"), str(CSRC / "paged_decode_attention.cu")],
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "-std=c++17", "--use_fast_math"]},
        optional=True,
    )
    return {"ext_modules": [extension], "cmdclass": {"build_ext": BuildNative}}


setup(**_extension_setup())
