"""Chained content hashes that key full KV blocks in the prefix cache.

A full block's hash covers its parent's hash, its own token ids and, for the first block of a
request, extra keys such as the request's cache salt. Because each hash includes its parent's,
equal hashes mean equal *prefixes*, not just equal blocks, so the KV of a cached block is valid
for any request whose hash chain reaches it.

sha256 is used so that a collision (which would silently serve another prompt's KV) is not a
practical concern; the tokens are hashed as the bytes of an ``array('q')``, which is fast.
Hashes are stable across processes (no per-process seed), so they could key a shared cache.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmrt.engine.request import Request

BlockHash = bytes
"""A 32-byte sha256 digest."""

ROOT_HASH: BlockHash = b"\x00" * 32
"""Parent hash of every request's first block."""


def hash_block_tokens(
    parent_hash: BlockHash | None,
    token_ids: Sequence[int],
    extra_keys: tuple[object, ...] | None = None,
) -> BlockHash:
    """Hash one full block.

    :param parent_hash: hash of the previous block of the same request, ``None`` for the first.
    :param token_ids: the block's token ids.
    :param extra_keys: anything else the block's KV depends on (cache salt; later a LoRA id or
        multimodal input hashes); ``None`` when there is nothing.
    :return: a 32-byte digest.
    """
    digest = hashlib.sha256(parent_hash if parent_hash is not None else ROOT_HASH)
    digest.update(struct.pack("<q", len(token_ids)))
    digest.update(array("q", token_ids).tobytes())
    if extra_keys:
        digest.update(b"\x01" + repr(extra_keys).encode())
    return digest.digest()


def extend_block_hashes(
    hashes: list[BlockHash], request: Request, block_size: int, num_full_blocks: int
) -> None:
    """Append to ``hashes`` until the first ``num_full_blocks`` blocks of ``request`` are hashed.

    Incremental: blocks already in ``hashes`` are not hashed again. The cache salt is an extra
    key of the first block only; through the chain it reaches every later block.

    :param hashes: the request's hashes so far (modified in place).
    :param request: the request whose prompt and output tokens are hashed.
    :param block_size: tokens per block.
    :param num_full_blocks: how many leading blocks must be hashed; all their tokens must be known.
    """
    for index in range(len(hashes), num_full_blocks):
        parent = hashes[-1] if hashes else None
        extra = (request.cache_salt,) if index == 0 and request.cache_salt else None
        start = index * block_size
        tokens = request.token_ids_slice(start, start + block_size)
        hashes.append(hash_block_tokens(parent, tokens, extra))
