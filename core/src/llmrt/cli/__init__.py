"""The ``llmrt`` command line."""
