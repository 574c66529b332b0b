"""Ops: the small kernels model layers call (norms, rotary embedding, gated activations).

:class:`Ops` documents each op's signature (the plugin contract); :mod:`llmrt.ops.torch_ops`
holds the PyTorch reference implementations core registers for every backend.
"""

from llmrt.ops.interface import COMPOSED_OPS, OP_NAMES, Ops

__all__ = ["COMPOSED_OPS", "OP_NAMES", "Ops"]
