"""Model graphs: the CausalLM interface, the LayerContext layers are built with, the shared
decoder-only transformer, architecture factories, config reading and weight loading.
"""

from llmrt.model.causal_lm import CausalLM
from llmrt.model.context import LayerContext

__all__ = ["CausalLM", "LayerContext"]
