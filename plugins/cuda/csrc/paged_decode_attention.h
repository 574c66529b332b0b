// Paged decode attention (see paged_decode_attention.cu): the arguments of one launch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace llmrt_cuda {

struct DecodeArgs {
  const void* q;        // [num_seqs, num_heads, head_size], 16-byte aligned rows
  const void* k_new;    // [num_seqs, num_kv_heads, head_size]: this step's keys (row stride stride_nt)
  const void* v_new;    // this step's values, laid out like k_new
  void* k_cache;        // [num_blocks, block_size, num_kv_heads, head_size]
  void* v_cache;
  void* out;            // [num_seqs, num_heads, head_size] (one split)
  float* part_out;      // [num_seqs, num_heads, num_splits, head_size] (several splits)
  float* part_stats;    // [num_seqs, num_heads, num_splits, 2]: running max (base 2) and sum
  const int* seq_lens;  // [num_seqs]; 0 for padding rows
  const int* block_tables;  // [num_seqs, stride_bt]
  const int64_t* slot_mapping;  // [num_seqs]: the cache slot of each new key and value; < 0 none
  int64_t stride_nt, stride_qt, stride_qh, stride_ot, stride_oh;
  int64_t stride_cb, stride_cs, stride_ch, stride_bt;
  int num_seqs, num_heads, num_kv_heads, head_size, group, block_shift, num_splits;  // block size 1 << block_shift
  float scale;
};

// head_size 64, 128 or 256; group (query heads per kv head) 1 to 8; bfloat16 or float16.
// Returns the launch's error (cudaSuccess when it was queued).
cudaError_t paged_decode_attention(const DecodeArgs& args, bool bfloat16, cudaStream_t stream);

// Dynamic shared memory one block of that launch needs (the device must allow it per block).
int paged_decode_shared_bytes(int head_size, int group);

}  // namespace llmrt_cuda
