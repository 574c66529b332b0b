// cache_write.h: store each token's key and value rows into its slot of the paged KV cache.
//
// The cache of one layer is [2, num_blocks, block_size, num_kv_heads, head_size]; slot
// `block * block_size + offset` is one contiguous row of num_kv_heads * head_size values, so a
// token's key (or value) is a single copy.
#pragma once

#include "kernels.h"
#include "simd.h"

namespace llmrt_cpu {
namespace {

template <typename T>
void write_cache_tokens(const CacheWriteArgs& a, int64_t begin, int64_t end) {
  const size_t bytes = sizeof(T) * static_cast<size_t>(a.row_size);
  for (int64_t t = begin; t < end; ++t) {
    const int64_t slot = a.slot_mapping[t];
    if (slot < 0) continue;  // a padding token: nothing to store
    std::memcpy(static_cast<T*>(a.key_cache) + slot * a.row_size,
                static_cast<const T*>(a.key) + t * a.key_stride, bytes);
    std::memcpy(static_cast<T*>(a.value_cache) + slot * a.row_size,
                static_cast<const T*>(a.value) + t * a.value_stride, bytes);
  }
}

void write_cache_kernel(const CacheWriteArgs& a, int64_t begin, int64_t end) {
  if (a.dtype == DType::kFloat32) {
    write_cache_tokens<float>(a, begin, end);
  } else {
    write_cache_tokens<bf16_t>(a, begin, end);
  }
}

}  // namespace
}  // namespace llmrt_cpu
