"""Benchmarks: ``llmrt bench serve``, a load generator for a server (like ``vllm bench serve``)."""
