"""Kernel tests run on the GPU where there is one, else on CPU tensors under Triton's interpreter.

``TRITON_INTERPRET`` must be set before any kernel module is imported (``triton.jit`` reads it
when it decorates a function), so it is set here, at collection, when no GPU is visible.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Where the kernels run: the GPU, or the CPU through the interpreter."""
    pytest.importorskip("triton", reason="triton is not installed (pip install llmrt-triton[test])")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
