// attention_plan.h: split one step's attention into work items for the thread pool.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels.h"

namespace llmrt_cpu {

// Work items for every sequence of the batch, for `num_threads` threads, most expensive first (so that the dynamic
// scheduling in bindings.cpp ends with small items and threads finish together).
std::vector<AttentionItem> plan_attention(const int32_t* query_start_loc, const int32_t* seq_lens, int num_seqs,
                                          int num_heads, int num_kv_heads, int vector_width, int num_threads);

}  // namespace llmrt_cpu
