"""The OpenAI-compatible HTTP server (``llmrt serve``).

Two processes: the front end (litestar + uvicorn, this package's ``app``/``serving_*``
modules) parses requests, tokenizes them in a thread pool and streams responses; the engine
core (``engine_process``) runs :class:`~llmrt.engine.llm_engine.LLMEngine` in a loop of its own.
They talk over a local socket pair with msgspec msgpack messages (``messages``), never pickle.
See docs/server.md.
"""
