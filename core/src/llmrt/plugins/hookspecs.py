"""The plugin contract: every hook a plugin may implement, in the order the engine uses them.

A plugin is a module (found through an entry point of group ``llmrt``) that defines functions
named after these specifications and decorated with :data:`llmrt.plugins.hookimpl`. It may also
declare ``LLMRT_PLUGIN_API = ">=1,<2"``: the range of :data:`PLUGIN_API_VERSION` it supports.

Contribution hooks receive a ``register`` callback instead of returning values, so that
validation and duplicate detection live in core and every error names the plugin at fault.
Hooks marked *first result wins* stop at the first implementation that returns something other
than ``None``; plugins registered later are asked first (pluggy's LIFO order), so a third-party
plugin overrides core's defaults.

Sections, in lifecycle order: startup, backend, model, KV cache, step, server, shutdown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    import argparse

PROJECT_NAME = "llmrt"
PLUGIN_API_VERSION = "1.0"
"""Version of this contract. Minor bumps add hooks; a major bump changes or removes one."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

Register = Callable[..., None]

# --------------------------------------------------------------------------------------------
# Startup
# --------------------------------------------------------------------------------------------


@hookspec
def llmrt_add_cli_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    """Add command-line options to one ``llmrt`` sub-command.

    Called once per sub-command parser while the CLI is built, before arguments are parsed.

    :param command: the sub-command's name (``"serve"``, ``"generate"``, ``"bench"``, ...).
    :param parser: the sub-command's :class:`argparse.ArgumentParser`; add options to it, and
        read their values later from the engine configuration's ``plugin_options``.
    :return: nothing.
    """


@hookspec(firstresult=True)
def llmrt_default_model() -> str | None:
    """Name the model served when the user gives none (``llmrt serve`` with no MODEL).

    Called once when a command that needs a model was given none. First result wins.

    :return: a local model directory or a Hugging Face hub id, or ``None`` to let another
        plugin answer.
    """


# --------------------------------------------------------------------------------------------
# Backend
# --------------------------------------------------------------------------------------------


@hookspec
def llmrt_register_backends(register: Register) -> None:
    """Contribute hardware backends (one per hardware platform).

    Called once at startup, before a backend is selected.

    :param register: call ``register(backend)`` with an instance of
        :class:`llmrt.backends.Backend`. Its ``name`` must be unique among all plugins; its
        ``detect()`` says whether it is usable here and why not; its ``priority`` orders
        automatic selection (higher wins).
    :return: nothing.
    """


@hookspec
def llmrt_register_communicators(register: Register) -> None:
    """Contribute device communicators: collectives for tensor and pipeline parallelism.

    Called once when the engine sets up its process group (world size 1 included).

    :param register: call ``register(name, factory, backends=("cuda",))``; ``factory(world)``
        returns an object implementing :class:`llmrt.distributed.DeviceCommunicator` for the
        given :class:`llmrt.distributed.WorldInfo`. ``backends`` lists the backend names it
        serves; ``None`` means any backend.
    :return: nothing.
    """


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


@hookspec
def llmrt_register_model_architectures(register: Register) -> None:
    """Contribute model architectures.

    Called once before a model is built.

    :param register: call ``register(architecture, factory)`` where ``architecture`` is a name
        as it appears in a checkpoint's ``config.json`` ``architectures`` list (for example
        ``"LlamaForCausalLM"``) and ``factory(hf_config, ctx)`` returns the model, an
        :class:`llmrt.model.CausalLM`, built from the transformers config with the ops,
        attention, quantization, dtype and device in ``ctx`` (:class:`llmrt.model.LayerContext`).
    :return: nothing.
    """


@hookspec
def llmrt_register_ops(register: Register) -> None:
    """Contribute implementations of the ops that model layers and the sampler call.

    Called once before a model is built. Core registers its PyTorch reference ops for every
    backend; a backend plugin registers faster versions for itself. This is how a vendor
    replaces a layer's computation without patching core. A composed op
    (:data:`llmrt.ops.COMPOSED_OPS`, e.g. ``qk_norm_rotary_embedding``) that a backend does not
    register is built from the backend's own primitives, so registering it is only worth it
    for a fused kernel.

    :param register: call ``register(op_name, impl, backend="cpu")``. ``op_name`` is one of
        :data:`llmrt.ops.OP_NAMES`; ``impl`` has the signature documented on
        :class:`llmrt.ops.Ops`; ``backend`` is the backend it serves, or ``None`` for all.
        A backend-specific implementation wins over a generic one.
    :return: nothing.
    """


@hookspec
def llmrt_register_attention_backends(register: Register) -> None:
    """Contribute attention implementations over the paged KV cache.

    Called once before a model is built.

    :param register: call ``register(name, factory, backends=("cpu",), priority=0)``;
        ``factory(attention_config)`` returns an :class:`llmrt.attention.AttentionImpl`.
        Among those serving the selected backend, the highest priority is used unless the
        user names one with ``--attention-backend``.
    :return: nothing.
    """


@hookspec
def llmrt_register_quantization_methods(register: Register) -> None:
    """Contribute quantization methods for linear layers, with their per-backend kernels.

    Called once before a model is built. The checkpoint's ``quantization_config.quant_method``
    (or ``--quantization``) picks the method; unquantized weights use core's ``"none"``.

    :param register: call ``register(name, factory, backends=None)``; ``factory(quant_config)``
        returns a :class:`llmrt.model.layers.QuantMethod`. ``backends`` lists the backends whose
        kernels it has, ``None`` for all.
    :return: nothing.
    """


@hookspec
def llmrt_register_linear_methods(register: Register) -> None:
    """Contribute how a backend runs unquantized matrix products (linear layers and the LM head).

    Called once before a model is built. Without one, layers use core's
    :class:`llmrt.model.layers.linear.UnquantizedLinearMethod` (``F.linear``). A backend whose
    products run faster on a repacked copy of the weights (the CPU's oneDNN layout, for example)
    registers a :class:`llmrt.model.layers.QuantMethod` that repacks them in
    ``process_weights_after_loading``. Quantized checkpoints use their quantization method.

    :param register: call ``register(backend_name, factory)``; ``factory(prefix)`` returns a new
        method for the layer whose checkpoint name prefix is ``prefix`` (``"lm_head"`` for the
        output projection, which shares the embedding's weight when they are tied).
    :return: nothing.
    """


@hookspec
def llmrt_register_graph_capture(register: Register) -> None:
    """Contribute graph capture (CUDA graphs, HIP graphs, XLA compilation) for a backend.

    Called once after the model is loaded, when graph capture is not disabled.

    :param register: call ``register(backend_name, factory)``; ``factory(model_runner)`` returns
        a :class:`llmrt.engine.GraphCapture` that captures and replays the decode step.
    :return: nothing.
    """


# --------------------------------------------------------------------------------------------
# KV cache and scheduling
# --------------------------------------------------------------------------------------------


@hookspec
def llmrt_register_schedulers(register: Register) -> None:
    """Contribute schedulers: the policy deciding which tokens of which requests run each step.

    Called once at engine start. Core registers ``"fcfs"`` (first come, first served, with
    optional priority).

    :param register: call ``register(name, factory)``; ``factory(scheduler_config,
        kv_cache_manager)`` returns an object with the interface of
        :class:`llmrt.sched.Scheduler`.
    :return: nothing.
    """


@hookspec
def llmrt_register_block_allocators(register: Register) -> None:
    """Contribute KV-cache block allocators.

    Called once at engine start. Core registers ``"lru"`` (a free queue in eviction order
    with automatic prefix caching).

    :param register: call ``register(name, factory)``; ``factory(num_blocks,
        enable_caching)`` returns an object with the interface of :class:`llmrt.kv.BlockPool`.
    :return: nothing.
    """


# --------------------------------------------------------------------------------------------
# Step
# --------------------------------------------------------------------------------------------


@hookspec
def llmrt_register_logits_processors(register: Register) -> None:
    """Contribute logits processors that requests may enable by name.

    Called once at engine start. A request lists processor names in
    ``SamplingParams.logits_processors``; no callable ever travels over the network, and an
    unknown name is refused when the request is added.

    :param register: call ``register(name, factory)``; ``factory(hf_config)`` returns a callable
        ``(logits, requests) -> logits``, applied each step to the float32 logits
        ``[rows, vocab]`` of the requests that enabled it (after core's penalties and bias,
        before temperature and top-k/top-p); ``requests`` are their
        :class:`llmrt.engine.request.Request` objects, to be read, not modified.
    :return: nothing.
    """


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


@hookspec
def llmrt_register_server_routes(register: Register) -> None:
    """Contribute HTTP routes to the OpenAI-compatible server.

    Called once while the server application is built.

    :param register: call ``register(handler)`` with a litestar route handler (a function
        decorated with ``litestar.get``/``post``, or a ``Router``). Its paths must not clash
        with core's routes.
    :return: nothing.
    """


# --------------------------------------------------------------------------------------------
# Shutdown
# --------------------------------------------------------------------------------------------


@hookspec
def llmrt_engine_shutdown(reason: str) -> None:
    """Release plugin resources when an engine stops.

    Called once per engine when it shuts down, cleanly or not; other engines of the same
    process (several ``LLM`` objects) may still be running.

    :param reason: why the engine stops (``"finished"``, ``"signal"``, ``"closed"`` for
        ``LLM.close()``, ``"error: ..."``).
    :return: nothing.
    """


def hook_names() -> list[str]:
    """Names of every hook specification, in lifecycle order."""
    return [name for name in globals() if name.startswith("llmrt_")]


def describe(name: str) -> Any:
    """The specification function of hook ``name`` (for docs and introspection)."""
    return globals()[name]
