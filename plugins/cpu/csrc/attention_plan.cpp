// attention_plan.cpp: how a batch is cut into attention work items.
//
// A decode sequence (one query token) gives one item for all its heads when there are enough
// decode sequences to keep every thread busy (reading each sequence's cache rows front to back
// on one thread is faster), else one item per KV head (more when the GQA group has more than
// kMaxDecodeRows query heads), so that even a single sequence spreads over the threads. A prompt or prompt chunk is cut into tiles of query
// tokens so that tokens x heads fill about kPromptTargetVecs vectors of rows: enough rows to
// reuse every staged key many times, small enough to spread a single prompt over all threads.
//
// Order matters twice. Items of one (sequence, KV head) stay next to each other, so the keys
// and values they all read stay in cache while threads work through them. And the costliest
// work comes first (sequences by query rows x keys, and within a sequence the last tiles,
// which see the most keys), so that threads, which take items from a shared counter, end on
// small ones and finish together.
#include "attention_plan.h"

#include <algorithm>

namespace llmrt_cpu {
namespace {

constexpr int kWholeSequenceItemsPerThread = 4;

void add_decode_items(int seq, int kv_heads, int group, bool whole, std::vector<AttentionItem>& out) {
  if (whole) {  // every head of the sequence in one item (kv_head -1; see decode_sequence)
    out.push_back({seq, -1, 0, 1, 0, kv_heads * group});
    return;
  }
  for (int h = 0; h < kv_heads; ++h) {
    for (int head = h * group; head < (h + 1) * group; head += kMaxDecodeRows) {
      out.push_back({seq, h, 0, 1, head, std::min(head + kMaxDecodeRows, (h + 1) * group)});
    }
  }
}

void add_prompt_items(int seq, int q_len, int kv_heads, int group, int width, std::vector<AttentionItem>& out) {
  const int heads_per_item = std::min(group, kMaxPromptVecs * width);
  const int tokens_per_item = std::max(1, kPromptTargetVecs * width / heads_per_item);
  const int last_tile = (q_len - 1) / tokens_per_item * tokens_per_item;
  for (int h = 0; h < kv_heads; ++h) {
    for (int head = h * group; head < (h + 1) * group; head += heads_per_item) {
      const int head_end = std::min(head + heads_per_item, (h + 1) * group);
      for (int t = last_tile; t >= 0; t -= tokens_per_item) {
        out.push_back({seq, h, t, std::min(t + tokens_per_item, q_len), head, head_end});
      }
    }
  }
}

}  // namespace

std::vector<AttentionItem> plan_attention(const int32_t* query_start_loc, const int32_t* seq_lens, int num_seqs,
                                          int num_heads, int num_kv_heads, int vector_width, int num_threads) {
  const int group = num_heads / num_kv_heads;
  int decode_seqs = 0;
  for (int s = 0; s < num_seqs; ++s) decode_seqs += query_start_loc[s + 1] - query_start_loc[s] == 1;
  const bool whole_sequences = decode_seqs >= kWholeSequenceItemsPerThread * num_threads;
  std::vector<std::pair<int64_t, int>> by_cost;  // (query rows x keys, sequence)
  for (int s = 0; s < num_seqs; ++s) {
    const int64_t q_len = query_start_loc[s + 1] - query_start_loc[s];
    if (q_len > 0) by_cost.emplace_back(q_len * seq_lens[s], s);
  }
  std::stable_sort(by_cost.begin(), by_cost.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
  std::vector<AttentionItem> items;
  for (const auto& entry : by_cost) {
    const int s = entry.second, q_len = query_start_loc[s + 1] - query_start_loc[s];
    if (q_len == 1) {
      add_decode_items(s, num_kv_heads, group, whole_sequences, items);
    } else {
      add_prompt_items(s, q_len, num_kv_heads, group, vector_width, items);
    }
  }
  return items;
}

}  // namespace llmrt_cpu
