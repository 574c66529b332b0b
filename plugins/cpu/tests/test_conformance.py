"""The cpu backend against core's conformance suite (skips with the reason where it cannot run)."""

from llmrt.testing.conformance import BackendConformance


class TestConformance(BackendConformance):
    backend_name = "cpu"
