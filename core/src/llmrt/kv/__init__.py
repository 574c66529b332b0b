"""The paged KV cache's bookkeeping: block pool, content hashes and per-request block tables.

Only ids and reference counts live here; the KV tensors themselves belong to the backend's
model runner, which reads block tables from :class:`llmrt.sched.SchedulerOutput`.
"""

from llmrt.kv.block_hash import BlockHash, extend_block_hashes, hash_block_tokens
from llmrt.kv.block_pool import BlockPool, KVCacheBlock
from llmrt.kv.host_swap import HostSwapSpace
from llmrt.kv.kv_cache_manager import KVCacheManager, PrefixCacheStats

__all__ = [
    "BlockHash",
    "BlockPool",
    "HostSwapSpace",
    "KVCacheBlock",
    "KVCacheManager",
    "PrefixCacheStats",
    "extend_block_hashes",
    "hash_block_tokens",
]
