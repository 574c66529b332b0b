// kernels.h: the argument structs of every native kernel and the per-instruction-set table.
//
// This header has no PyTorch dependency: the kernels work on raw pointers, sizes and strides
// (in elements), so each instruction-set translation unit compiles quickly and stands alone.
// bindings.cpp turns tensors into these structs, and runs the range functions on PyTorch's
// thread pool (at::parallel_for), so native kernels and matrix products share one set of
// threads instead of competing.
#pragma once

#include <cstdint>

namespace llmrt_cpu {

enum class DType : int { kFloat32 = 0, kBFloat16 = 1 };

// Rows of a [..., H] tensor: row r starts at (r / inner) * outer_stride + (r % inner) * inner_stride.
// (Plain data only in this header: it is shared by translation units built for different CPUs.)
struct RowLayout {
  int64_t inner;
  int64_t outer_stride;
  int64_t inner_stride;
};

// RMS norm of every row; with `residual`, first residual <- x + residual (fused add).
struct NormArgs {
  DType dtype;
  const void* x;
  RowLayout x_rows;
  void* residual;  // contiguous [rows, hidden] or nullptr
  const void* weight;
  void* out;  // contiguous [rows, hidden]
  int64_t hidden;
  float eps;
  float weight_offset;
  bool cast_before_weight;
};

// Rotary embedding, in place on query and key rows.
struct RotaryArgs {
  DType dtype;
  const int64_t* positions;
  void* query;
  void* key;
  int64_t query_stride, key_stride;  // between tokens
  int64_t num_q_heads, num_k_heads, head_size, rot_dim;
  const void* cos_sin;  // [max_pos, rot_dim]: cos then sin, in dtype
  bool neox;
};

// out[r, :d] = silu(x[r, :d]) * x[r, d:].
struct GatedActArgs {
  DType dtype;
  const void* x;
  int64_t x_stride;
  void* out;
  int64_t d;
};

// Copy token t's key and value rows into cache slot slot_mapping[t].
struct CacheWriteArgs {
  DType dtype;
  const void* key;
  const void* value;
  int64_t key_stride, value_stride;  // between tokens
  void* key_cache;
  void* value_cache;
  int64_t row_size;  // num_kv_heads * head_size; one slot holds one row
  const int64_t* slot_mapping;
};

// One token per row of float32 logits [rows, vocab], drawn from softmax(logits / temperature)
// at the row's uniform number in [0, 1); argmax where the temperature is 0 (see sample.h).
struct SampleArgs {
  const float* logits;
  int64_t logits_stride;  // between rows
  int64_t vocab;
  const float* temperature;
  const float* uniform;
  int64_t* out;
};

// Paged attention over the cache for a flattened batch of sequences (see attention.h).
struct AttentionArgs {
  DType dtype;
  const void* query;
  int64_t query_stride;  // between tokens; heads are head_size apart
  const void* key_cache;
  const void* value_cache;
  int64_t block_stride;  // elements per cache block (block_size * num_kv_heads * head_size)
  void* out;             // contiguous [tokens, num_heads * head_size]
  const int32_t* block_tables;
  int64_t block_table_stride;
  const int32_t* query_start_loc;  // [num_seqs + 1]
  const int32_t* seq_lens;         // [num_seqs]
  int num_heads, num_kv_heads, head_size, block_size;
  float scale;
  int sliding_window;  // 0: none
  float softcap;       // 0: none
};

// Limits of one attention work item (see attention_plan.cpp): a decode item holds at most
// kMaxDecodeRows query heads; a prompt item at most kMaxPromptVecs vectors of rows (tokens x
// heads) and aims at kPromptTargetVecs vectors.
constexpr int kMaxDecodeRows = 4;
constexpr int kMaxPromptVecs = 4;
constexpr int kPromptTargetVecs = 2;

// One unit of attention work: query tokens [token_begin, token_end) of a sequence (relative to
// its first query token) against one KV head, for query heads [head_begin, head_end).
// kv_head = -1 marks a whole decode sequence (every head, one token).
struct AttentionItem {
  int seq, kv_head, token_begin, token_end, head_begin, head_end;
};

// Entry points of one instruction-set build. Range functions process rows/tokens [begin, end).
struct KernelTable {
  const char* name;
  int vector_width;  // float lanes
  void (*rms_norm)(const NormArgs&, int64_t begin, int64_t end);
  void (*rotary)(const RotaryArgs&, int64_t begin, int64_t end);
  void (*silu_and_mul)(const GatedActArgs&, int64_t begin, int64_t end);
  void (*write_cache)(const CacheWriteArgs&, int64_t begin, int64_t end);
  // Processes items [begin, end); `scratch` holds attention_scratch_floats(args) floats.
  void (*attention)(const AttentionArgs&, const AttentionItem* items, int64_t begin, int64_t end, float* scratch);
  int64_t (*attention_scratch_floats)(const AttentionArgs&);
  void (*sample)(const SampleArgs&, int64_t begin, int64_t end);
};

// The builds compiled into this library (nullptr where not built for this architecture).
const KernelTable* table_generic();
const KernelTable* table_avx2();
const KernelTable* table_avx512();
const KernelTable* table_avx512_bf16();

}  // namespace llmrt_cpu
