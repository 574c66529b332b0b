"""From logits to the next token of every request in the batch."""

from llmrt.sample.sampler import Sampler, SamplingBatch

__all__ = ["Sampler", "SamplingBatch"]
