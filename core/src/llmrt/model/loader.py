"""Loading a model's weights from a Hugging Face directory of safetensors files.

Only safetensors is read (never pickle: no ``torch.load``). The model is built directly on
the target device in the target dtype with uninitialized parameters (layers create them
with ``torch.empty``, no random init), then each checkpoint tensor is read, converted to the
parameter's dtype and copied into place one at a time, so peak memory stays close to one
copy of the weights plus the largest single tensor. Files are read with plain positioned
reads rather than memory-mapped: a mapping keeps every page it touched resident until the
file closes, which for a single-file checkpoint doubles peak resident memory.

Every checkpoint problem is a :class:`WeightLoadError` naming the file and tensor at fault:
a shard listed in the index but absent, an unreadable or corrupt file, a tensor the model
does not know, a shape mismatch, or a parameter no file provides.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from llmrt.model.causal_lm import CausalLM
    from llmrt.model.context import LayerContext

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_MAX_LISTED = 10
_MAX_HEADER_BYTES = 100 * 2**20
_SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}


class WeightLoadError(ValueError):
    """A checkpoint cannot be loaded into the model; the message names the file/tensor."""


class UnexpectedWeightsError(WeightLoadError):
    """Checkpoint tensors that match no model parameter (``names`` lists them)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(f"checkpoint tensors the model does not use: {_listing(names)}")


def set_weight_attrs(param: torch.Tensor, attrs: dict[str, Any]) -> None:
    """Attach loading metadata (``output_dim``, ``input_dim``, ``weight_loader``) to ``param``."""
    for key, value in attrs.items():
        setattr(param, key, value)


def copy_weight(param: torch.Tensor, loaded: torch.Tensor) -> None:
    """Copy ``loaded`` into ``param`` (converting dtype and device); shapes must match."""
    if tuple(param.shape) != tuple(loaded.shape):
        raise WeightLoadError(
            f"shape mismatch: checkpoint {tuple(loaded.shape)}, model {tuple(param.shape)}"
        )
    with torch.no_grad():
        param.copy_(loaded)


def default_weight_loader(param: torch.Tensor, loaded: torch.Tensor) -> None:
    """Loader for parameters without a ``weight_loader`` attribute: a whole-tensor copy."""
    copy_weight(param, loaded)


def load_model(
    model_dir: str | Path,
    hf_config: Any,
    ctx: LayerContext,
    factory: Callable[[Any, LayerContext], CausalLM],
) -> CausalLM:
    """Build the model with ``factory(hf_config, ctx)`` on ``ctx.device`` and load its weights.

    :raises WeightLoadError: any checkpoint problem (see the module docstring).
    :return: the model in eval mode, weights loaded and post-processed by their quant methods.
    """
    files = checkpoint_files(Path(model_dir))
    model = factory(hf_config, ctx)
    reader = _CheckpointReader(files)
    try:
        loaded = model.load_weights(reader)
    except UnexpectedWeightsError as exc:
        raise WeightLoadError(
            f"checkpoint tensors the model does not use: {_listing(reader.describe(exc.names))}"
        ) from exc
    except Exception as exc:
        if reader.current is None:
            raise
        name, path = reader.current
        raise WeightLoadError(f"cannot load tensor {name!r} from {path}: {exc}") from exc
    _check_missing(model, loaded, Path(model_dir))
    _process_after_loading(model)
    return model.eval()


def checkpoint_files(model_dir: Path) -> list[Path]:
    """The safetensors files to read, validated (index shards exist; no pickle fallback)."""
    if not model_dir.is_dir():
        raise WeightLoadError(f"model directory {model_dir} does not exist")
    index = model_dir / INDEX_FILE
    if index.exists():
        return _files_from_index(index)
    if (model_dir / SINGLE_FILE).exists():
        return [model_dir / SINGLE_FILE]
    files = sorted(model_dir.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p.name for p in model_dir.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles:
        raise WeightLoadError(
            f"{model_dir} has only pickle-based weights ({', '.join(pickles)}); llmrt loads "
            "safetensors only (convert the checkpoint to safetensors)"
        )
    raise WeightLoadError(f"no safetensors weights (*.safetensors) in {model_dir}")


def _files_from_index(index: Path) -> list[Path]:
    """Shard files named by a ``model.safetensors.index.json``, each checked to exist."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightLoadError(f"cannot read shard index {index}: {exc!r}") from exc
    names = sorted(set(weight_map.values()))
    missing = [n for n in names if not (index.parent / n).is_file()]
    if missing:
        raise WeightLoadError(f"shard index {index} names missing file(s): {', '.join(missing)}")
    return [index.parent / n for n in names]


class _CheckpointReader:
    """Iterates ``(name, tensor)`` over files, remembering where each came from."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.current: tuple[str, Path] | None = None
        self.origin: dict[str, Path] = {}

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for path in self.files:
            yield from self._read(path)
        self.current = None

    def _read(self, path: Path) -> Iterator[tuple[str, torch.Tensor]]:
        self.current = None  # errors raised here already name the file
        with SafetensorsFile(path) as handle:
            for name in handle.keys():
                self.current = None
                tensor = handle.get_tensor(name)
                self.current = (name, path)
                self.origin[name] = path
                yield name, tensor

    def describe(self, names: Iterable[str]) -> list[str]:
        """``"name (in file)"`` for each name."""
        return [f"{n} (in {self.origin[n].name})" if n in self.origin else n for n in names]


class SafetensorsFile:
    """Reads a ``.safetensors`` file tensor by tensor with positioned reads (no mmap, no pickle).

    The format: an 8-byte little-endian header length, a JSON header mapping each tensor
    name to ``{"dtype", "shape", "data_offsets": [start, end]}`` (offsets into the data area
    that follows), then the raw little-endian data. The header is validated against the file
    size on open, so a truncated or corrupt file fails before any tensor is used.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed by close() / the context manager
        except OSError as exc:
            raise WeightLoadError(f"cannot read safetensors file {path}: {exc}") from exc
        try:
            self._entries, self._data_start = self._read_header()
        except WeightLoadError:
            self.close()
            raise

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def keys(self) -> list[str]:
        """Tensor names in file order."""
        return sorted(self._entries, key=lambda n: self._entries[n][2])

    def get_tensor(self, name: str) -> torch.Tensor:
        """Read one tensor into fresh CPU memory."""
        dtype, shape, start, end = self._entries[name]
        buffer = torch.empty(end - start, dtype=torch.uint8)
        self._file.seek(self._data_start + start)
        if end > start and self._file.readinto(memoryview(buffer.numpy())) != end - start:
            raise WeightLoadError(f"cannot read tensor {name!r} from {self.path}: file truncated")
        return buffer.view(dtype).reshape(shape)

    def _read_header(self) -> tuple[dict[str, tuple[torch.dtype, list[int], int, int]], int]:
        size = self.path.stat().st_size
        prefix = self._file.read(8)
        if len(prefix) != 8:
            raise self._corrupt("shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(size - 8, _MAX_HEADER_BYTES):
            raise self._corrupt(f"header length {length} exceeds the file")
        try:
            header = json.loads(self._file.read(length))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._corrupt(f"header is not JSON ({exc})") from exc
        if not isinstance(header, dict):
            raise self._corrupt("header is not a JSON object")
        header.pop("__metadata__", None)
        data_size = size - 8 - length
        entries = {name: self._entry(name, info, data_size) for name, info in header.items()}
        return entries, 8 + length

    def _entry(
        self, name: str, info: Any, data_size: int
    ) -> tuple[torch.dtype, list[int], int, int]:
        """Validate one header entry: known dtype, byte range fitting the shape and the file."""
        try:
            dtype = _SAFETENSORS_DTYPES[info["dtype"]]  # KeyError: unknown dtype name
            shape = [int(d) for d in info["shape"]]
            start, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise self._corrupt(f"bad header entry for tensor {name!r}: {exc!r}") from exc
        numel = 1
        for dim in shape:
            numel *= dim
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if min(shape, default=0) < 0 or end - start != numel * itemsize or start < 0:
            raise self._corrupt(
                f"tensor {name!r}: byte range {start}..{end} does not fit shape {shape}"
            )
        if end > data_size:
            raise self._corrupt(f"tensor {name!r} lies past the end of the file (truncated?)")
        return dtype, shape, start, end

    def _corrupt(self, why: str) -> WeightLoadError:
        return WeightLoadError(f"cannot read safetensors file {self.path}: {why}")


def _check_missing(model: torch.nn.Module, loaded: set[str], model_dir: Path) -> None:
    """Raise if some parameter received no (or only part of its) checkpoint data."""
    missing = [name for name, _ in model.named_parameters() if name not in loaded]
    if missing:
        raise WeightLoadError(
            f"weights missing from the checkpoint in {model_dir}: {_listing(missing)}"
        )


def _process_after_loading(model: torch.nn.Module) -> None:
    """Let each layer's quantization method repack its loaded weights."""
    for module in model.modules():
        method = getattr(module, "quant_method", None)
        if method is not None:
            method.process_weights_after_loading(module)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return f"{shown} (and {more} more)" if more > 0 else shown
