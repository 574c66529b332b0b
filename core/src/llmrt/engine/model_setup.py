"""Resolving what a model is built from: its architecture, ops, attention and quantization.

Everything comes from the plugin registries, filtered by the selected backend's name: the
backend-specific registration wins over a generic one, so a vendor overrides core by
registering, never by patching.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from llmrt.backends import Backend
from llmrt.config import EngineConfig
from llmrt.model.context import LayerContext
from llmrt.model.hf_config import config_dtype, resolve_dtype
from llmrt.ops.interface import COMPOSED_OPS, OP_NAMES, Ops
from llmrt.plugins.errors import PluginError
from llmrt.plugins.host import PluginHost

logger = logging.getLogger("llmrt.engine")


class UnsupportedModelError(ValueError):
    """The checkpoint's architecture or quantization is not provided by any installed plugin."""


def resolve_architecture(host: PluginHost, hf_config: Any) -> Any:
    """The registered model factory for the checkpoint's ``architectures[0]``."""
    names = list(getattr(hf_config, "architectures", None) or [])
    registry = host.model_architectures()
    for name in names:
        entry = registry.find(name)
        if entry is not None:
            return entry.value
    supported = ", ".join(sorted(str(e.key) for e in registry))
    raise UnsupportedModelError(
        f"model architecture {names or '(none in config.json)'} is not supported; "
        f"installed plugins provide: {supported}"
    )


def choose_dtype(hf_config: Any, requested: str, backend: Backend) -> torch.dtype:
    """``requested`` dtype, or for ``"auto"`` the checkpoint's dtype if the backend computes in it."""
    dtype = resolve_dtype(config_dtype(hf_config), requested)
    if requested == "auto":
        dtype = backend.default_dtype(dtype)
    if dtype not in backend.supported_dtypes():
        raise ValueError(f"backend {backend.name!r} does not support dtype {dtype}")
    return dtype


def resolve_ops(host: PluginHost, backend_name: str) -> Ops:
    """Each op's implementation for ``backend_name``, falling back to the generic one.

    A composed op (:data:`llmrt.ops.COMPOSED_OPS`) the backend does not implement itself is
    built from the primitives resolved for it, not taken from core's generic reference.
    """
    registry = host.ops()
    impls = {}
    for name in OP_NAMES:
        entry = registry.find((name, backend_name))
        if entry is None and name in COMPOSED_OPS:
            impls[name] = COMPOSED_OPS[name](impls)
            continue
        entry = entry or registry.find((name, None))
        if entry is None:
            raise PluginError(f"no plugin provides op {name!r} for backend {backend_name!r}")
        impls[name] = entry.value
    return Ops.from_registry(impls)


def _value(entry: Any) -> Any:
    return entry.value if entry is not None else None


def _serves(entry: Any, backend_name: str) -> bool:
    backends = entry.meta.get("backends")
    return backends is None or backend_name in backends


def resolve_attention(host: PluginHost, backend_name: str, requested: str | None) -> tuple[str, Any]:
    """The attention factory: the one named by the user, else the highest-priority one."""
    registry = host.attention_backends()
    if requested is not None:
        entry = registry.get(requested)
        if not _serves(entry, backend_name):
            raise ValueError(f"attention backend {requested!r} does not serve backend {backend_name!r}")
        return requested, entry.value
    candidates = [e for e in registry if _serves(e, backend_name)]
    if not candidates:
        raise PluginError(f"no attention implementation serves backend {backend_name!r}")
    best = max(candidates, key=lambda e: (e.meta.get("priority", 0), e.meta.get("backends") is not None))
    return str(best.key), best.value


def resolve_quantization(host: PluginHost, config: EngineConfig, hf_config: Any, backend_name: str):
    """The quantization-method factory for the checkpoint (``None`` when unquantized)."""
    quant_config = getattr(hf_config, "quantization_config", None)
    if isinstance(quant_config, dict):
        name = config.model.quantization or quant_config.get("quant_method")
    else:
        name = config.model.quantization
    if name in (None, "none"):
        return None
    entry = host.quantization_methods().find(name)
    if entry is None:
        known = ", ".join(sorted(str(e.key) for e in host.quantization_methods()))
        raise UnsupportedModelError(f"quantization method {name!r} is not installed (installed: {known}); "
                                    "pip install llmrt-quant for GPTQ/AWQ/FP8/INT8")
    if not _serves(entry, backend_name):
        raise UnsupportedModelError(f"quantization method {name!r} has no kernels for backend {backend_name!r}")
    factory = entry.value
    return lambda _layer_name=None: factory(quant_config)


def build_layer_context(
    host: PluginHost, config: EngineConfig, backend: Backend, hf_config: Any, dtype: torch.dtype
) -> LayerContext:
    """Everything model layers need to be built for ``backend``."""
    attention_name, attention_factory = resolve_attention(host, backend.name, config.attention_backend)
    logger.info("attention backend %r, dtype %s", attention_name, dtype)
    return LayerContext(
        ops=resolve_ops(host, backend.name),
        attention_factory=attention_factory,
        quant_method_factory=resolve_quantization(host, config, hf_config, backend.name),
        linear_method_factory=_value(host.linear_methods().find(backend.name)),
        dtype=dtype,
        device=backend.device(),
    )
