"""A toy accelerator backend: computes on the host, but is a separate plugin like any vendor's."""
