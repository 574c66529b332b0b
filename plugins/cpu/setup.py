"""Build of llmrt-cpu's native kernels (``llmrt_cpu._C``), a PyTorch C++ extension.

Metadata lives in pyproject.toml; this file only adds the extension. It needs PyTorch at build
time, so install with ``pip install --no-build-isolation ./plugins/cpu`` (the Makefile does).

The kernels are compiled once per instruction set (generic, and on x86-64 also AVX2/FMA,
AVX-512 and AVX-512 with BF16), each translation unit with its own flags; the library picks
the best one the CPU supports when it loads (csrc/dispatch.cpp).

Never fatal: without PyTorch, without a working C++ compiler, or with LLMRT_CPU_BUILD_NATIVE=0,
the package installs without the extension, says so, and the backend runs on PyTorch ops.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
CSRC = Path("csrc")
COMMON_FLAGS = ["-O3", "-std=c++17", "-fPIC", "-fvisibility=hidden", "-ffp-contract=off", "-fno-math-errno",
                "-Wno-maybe-uninitialized"]  # GCC 12 false positives inside its AVX-512 headers
X86_ISA_BUILDS = {  # translation unit -> instruction-set flags
    "isa_avx2.cpp": ["-mavx2", "-mfma"],
    "isa_avx512.cpp": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"],
    "isa_avx512_bf16.cpp": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq",
                            "-mavx512bf16"],
}
GENERIC_BUILD = {"isa_generic.cpp": []}


def _say(message: str) -> None:
    """A message pip shows (stderr survives --quiet only on failure, so be loud and short)."""
    print(f"llmrt-cpu: {message}", file=sys.stderr, flush=True)


def _fallback_notice(reason: str) -> None:
    _say(f"native kernels NOT built ({reason}). The CPU backend still works with PyTorch ops, "
         "only slower. To build them: install a C++ compiler (g++ or clang++) and PyTorch, then "
         "reinstall with `pip install --no-build-isolation ./plugins/cpu`.")


def _isa_builds() -> dict[str, list[str]]:
    is_x86 = platform.machine().lower() in ("x86_64", "amd64")
    return {**GENERIC_BUILD, **(X86_ISA_BUILDS if is_x86 else {})}


def _extension_setup() -> dict:
    """``ext_modules`` and ``cmdclass`` for the native kernels, or nothing when they can't build."""
    if os.environ.get("LLMRT_CPU_BUILD_NATIVE", "1") == "0":
        _fallback_notice("LLMRT_CPU_BUILD_NATIVE=0")
        return {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        _fallback_notice("PyTorch is not importable at build time; pip's build isolation hides it, "
                         "use --no-build-isolation")
        return {}

    isa_builds = _isa_builds()
    is_x86 = "isa_avx2.cpp" in isa_builds

    class BuildNative(BuildExtension):
        """Compiles each instruction-set unit with its flags, then the extension; never fails."""

        def build_extension(self, ext) -> None:
            try:
                ext.extra_objects = [*ext.extra_objects, *self._isa_objects()]
                super().build_extension(ext)
            except Exception as exc:  # noqa: BLE001 - any build failure means "no native kernels"
                _fallback_notice(f"{type(exc).__name__}: {exc}")

        def _isa_objects(self) -> list[str]:
            objects = []
            for source, flags in isa_builds.items():
                objects += self.compiler.compile([str(CSRC / source)], output_dir=self.build_temp,
                                                 extra_postargs=COMMON_FLAGS + flags)
            return objects

    # at::parallel_for is inline code: without -fopenmp it silently runs on one thread. The
    # libgomp this links to is the one PyTorch already loaded (same soname), so kernels and
    # PyTorch's own ops share a single thread pool.
    openmp = ["-fopenmp"] if sys.platform.startswith("linux") else []
    extension = CppExtension(
        "llmrt_cpu._C",
        sources=[str(CSRC / name) for name in ("bindings.cpp", "dispatch.cpp", "attention_plan.cpp", "panel_linear.cpp")],
        # every header and instruction-set unit: an edit to any of them relinks the library
        depends=[str(path) for path in sorted(CSRC.iterdir())],
        define_macros=[("LLMRT_X86_BUILDS", "1")] if is_x86 else [],
        extra_compile_args=["-O3", "-fvisibility=hidden", *openmp],
        extra_link_args=openmp,
        optional=True,
    )
    return {"ext_modules": [extension], "cmdclass": {"build_ext": BuildNative.with_options(use_ninja=False)}}


setup(**_extension_setup())
