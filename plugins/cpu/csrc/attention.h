// attention.h: causal attention over the paged KV cache, for decode tokens and prompt chunks.
//
// Keys and values are always read from the cache (bindings.cpp writes this step's rows first),
// so a fresh prompt, a prompt chunk continuing a cached prefix and a decode token are the same
// computation: query token i of a sequence (absolute position p = context_len + i) attends to
// the sequence's keys at positions <= p (and > p - sliding_window when set).
//
// Both kernels use the streaming ("online") softmax: keys are visited in chunks, each row keeps
// its running maximum m and normalizer l, and the output accumulator is rescaled by e^(m_old -
// m_new) whenever the maximum grows, so scores for the whole context never need to be stored.
//
// Two layouts, because the shapes differ:
// - decode items (one query token, a few query heads of one KV head): each query row is a few
//   vectors along head_size; a score is a dot product (FMAs + one horizontal sum).
// - prompt items (up to 4 * W query rows = tokens x heads): rows sit in vector *lanes*
//   (queries transposed to [head_size][rows]), so a key contributes by broadcasting one of its
//   channels against a vector of rows, the softmax statistics are vectors over rows, and no
//   horizontal sums are needed. This is a small matrix product done in registers.
#pragma once

#include "kernels.h"
#include "simd.h"

namespace llmrt_cpu {
namespace {

constexpr int kDecodeChunk = 256;  // keys per softmax chunk for decode items
constexpr int kPromptChunk = 64;   // keys per chunk for prompt items (bounds the staging buffers)

inline int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

template <typename T>
inline Vec load_n(const T* p, int n) {
  return n == Vec::W ? Vec::load(p) : Vec::load(p, n);
}

template <typename T>
inline void store_n(Vec v, T* p, int n) {
  if (n == Vec::W) {
    v.store(p);
  } else {
    v.store(p, n);
  }
}

// Where one sequence's keys and values for one KV head live in the paged cache.
template <typename T>
struct SeqCache {
  const T* keys;    // cache base, offset to the KV head
  const T* values;
  const int32_t* table;  // the sequence's block ids
  int64_t block_stride, token_stride;
  int block_size;

  // Pointers to the keys/values at positions [first, first + n).
  void rows(int first, int n, const T** key_rows, const T** value_rows) const {
    int j = 0;
    while (j < n) {
      const int pos = first + j, block = pos / block_size, offset = pos % block_size;
      const int run = static_cast<int>(min_i(block_size - offset, n - j));
      const int64_t base = table[block] * block_stride + offset * token_stride;
      for (int t = 0; t < run; ++t, ++j) {
        key_rows[j] = keys + base + t * token_stride;
        value_rows[j] = values + base + t * token_stride;
      }
    }
  }
};

template <typename T>
SeqCache<T> seq_cache(const AttentionArgs& a, int seq, int kv_head) {
  const int64_t head_offset = static_cast<int64_t>(kv_head) * a.head_size;
  return {static_cast<const T*>(a.key_cache) + head_offset,
          static_cast<const T*>(a.value_cache) + head_offset,
          a.block_tables + seq * a.block_table_stride,
          a.block_stride,
          static_cast<int64_t>(a.num_kv_heads) * a.head_size,
          a.block_size};
}

inline void apply_softcap(float* scores, int64_t count, float cap) {
  for (int64_t i = 0; i < count; ++i) scores[i] = cap * std::tanh(scores[i] / cap);
}

// First key position visible to a query at position `pos`.
inline int first_visible(const AttentionArgs& a, int pos) {
  return a.sliding_window > 0 ? static_cast<int>(max_i(0, pos - a.sliding_window + 1)) : 0;
}

// ------------------------------------------------------------------------------------ decode

constexpr int kValueGroup = 4;  // head_size vectors accumulated in registers at once

// acc_out[r][v0 .. v0+NV) += sum_j scores[r][j] * value_j[v0 .. v0+NV), accumulators in registers:
// each value row is read once per group, in whole cache lines.
template <typename T, int ROWS, int NV>
inline void accumulate_values(const T* const* value_rows, int n, const float* scores, int D, int v0, int64_t Dp,
                              float* acc_out) {
  constexpr int W = Vec::W;
  Vec acc[ROWS][NV];
  for (int r = 0; r < ROWS; ++r)
    for (int vv = 0; vv < NV; ++vv) acc[r][vv] = Vec::load(acc_out + r * Dp + (v0 + vv) * W);
  for (int j = 0; j < n; ++j) {
    for (int vv = 0; vv < NV; ++vv) {
      const Vec val = load_n(value_rows[j] + (v0 + vv) * W, static_cast<int>(min_i(W, D - (v0 + vv) * W)));
      for (int r = 0; r < ROWS; ++r) acc[r][vv] = Vec::fma(Vec::set1(scores[r * kDecodeChunk + j]), val, acc[r][vv]);
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int vv = 0; vv < NV; ++vv) acc[r][vv].store(acc_out + r * Dp + (v0 + vv) * W);
}

// scores[r][jj] = scale * q_r . key_jj for R query rows (row stride Dp) and NJ keys, the keys'
// head_size values at rows[jj] + key_offset: each key vector is loaded once for the R rows,
// each query vector once for the NJ keys (NJ = 4 reduces four sums together).
template <typename T, int R, int NJ>
inline void block_scores(const float* q, const T* const* rows, int64_t key_offset, int D, int nvec, int64_t Dp,
                         float scale, float* scores) {
  constexpr int W = Vec::W;
  Vec acc[R][NJ];
  for (int rr = 0; rr < R; ++rr)
    for (int jj = 0; jj < NJ; ++jj) acc[rr][jj] = Vec::zero();
  for (int v = 0; v < nvec; ++v) {
    const int cnt = static_cast<int>(min_i(W, D - v * W));
    Vec qv[R];
    for (int rr = 0; rr < R; ++rr) qv[rr] = Vec::load(q + rr * Dp + v * W);
    for (int jj = 0; jj < NJ; ++jj) {
      const Vec k = load_n(rows[jj] + key_offset + v * W, cnt);
      for (int rr = 0; rr < R; ++rr) acc[rr][jj] = Vec::fma(qv[rr], k, acc[rr][jj]);
    }
  }
  for (int rr = 0; rr < R; ++rr) {
    float sums[4];
    if constexpr (NJ == 4) {
      Vec::reduce_add4(acc[rr], sums);
    } else {
      sums[0] = acc[rr][0].reduce_add();
    }
    for (int jj = 0; jj < NJ; ++jj) scores[rr * kDecodeChunk + jj] = sums[jj] * scale;
  }
}

#if defined(__AVX512BF16__)
// bfloat16 scores with the AVX-512 BF16 dot-product instruction: 32 query x key products per
// instruction, straight from the bfloat16 rows (no widening to float32). Each product of two
// bfloat16 values is exact in float32 and accumulates in float32, as the widened path does.
template <int ROWS, int NJ>
inline void decode_scores_dpbf16(const AttentionArgs& a, const bf16_t* const* q_rows, const bf16_t* const* key_rows,
                                 int64_t key_offset, float* scores) {
  __m512 acc[ROWS][NJ];
  for (int r = 0; r < ROWS; ++r)
    for (int jj = 0; jj < NJ; ++jj) acc[r][jj] = _mm512_setzero_ps();
  for (int d = 0; d < a.head_size; d += 32) {
    const int n = static_cast<int>(min_i(32, a.head_size - d));
    const __mmask32 mask = n == 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << n) - 1u);
    __m512bh k[NJ];
    for (int jj = 0; jj < NJ; ++jj) {
      k[jj] = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, key_rows[jj] + key_offset + d));
    }
    for (int r = 0; r < ROWS; ++r) {
      const __m512bh q = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, q_rows[r] + d));
      for (int jj = 0; jj < NJ; ++jj) acc[r][jj] = _mm512_dpbf16_ps(acc[r][jj], q, k[jj]);
    }
  }
  for (int r = 0; r < ROWS; ++r) {
    Vec sums_in[4];
    float sums[4];
    for (int jj = 0; jj < NJ; ++jj) sums_in[jj] = Vec{acc[r][jj]};
    if constexpr (NJ == 4) {
      Vec::reduce_add4(sums_in, sums);
    } else {
      sums[0] = sums_in[0].reduce_add();
    }
    for (int jj = 0; jj < NJ; ++jj) scores[r * kDecodeChunk + jj] = sums[jj] * a.scale;
  }
}
#endif

// One row's streaming-softmax step over n scores: updates its running max m and normalizer l,
// replaces the scores by e^(s - m), and rescales the row's output accumulator.
inline void decode_softmax_row(const AttentionArgs& a, float* s, int n, float& m, float& l, float* acc_out,
                               int nvec) {
  constexpr int W = Vec::W;
  const int padded = static_cast<int>(round_up(n, W));
  if (a.softcap > 0.0f) apply_softcap(s, n, a.softcap);
  for (int j = n; j < padded; ++j) s[j] = kNegInf;
  Vec mx = Vec::set1(kNegInf);
  for (int j = 0; j < padded; j += W) mx = Vec::max(mx, Vec::load(s + j));
  const float m_new = max_f(m, mx.reduce_max());
  const float m_safe = m_new == kNegInf ? 0.0f : m_new;  // nothing visible yet: keep zeros
  const float correction = std::exp(m - m_safe);
  Vec sum = Vec::zero();
  for (int j = 0; j < padded; j += W) {
    const Vec p = (Vec::load(s + j) - Vec::set1(m_safe)).exp();
    p.store(s + j);
    sum = sum + p;
  }
  l = l * correction + sum.reduce_add();
  m = m_new;
  if (correction != 1.0f) {
    for (int v = 0; v < nvec; ++v) (Vec::load(acc_out + v * W) * Vec::set1(correction)).store(acc_out + v * W);
  }
}

// One query token; ROWS query heads sharing the item's KV head.
template <typename T, int ROWS>
void decode_item(const AttentionArgs& a, const AttentionItem& it, float* scratch) {
  constexpr int W = Vec::W;
  const int D = a.head_size, nvec = static_cast<int>(round_up(D, W) / W);
  const int64_t Dp = nvec * W;
  float* q = scratch;                     // [ROWS][Dp]
  float* acc_out = q + ROWS * Dp;         // [ROWS][Dp]
  float* scores = acc_out + ROWS * Dp;    // [ROWS][kDecodeChunk]
  const int q_len = a.query_start_loc[it.seq + 1] - a.query_start_loc[it.seq];
  const int pos = a.seq_lens[it.seq] - q_len + it.token_begin;
  const int64_t token = a.query_start_loc[it.seq] + it.token_begin;
  [[maybe_unused]] const T* q_rows[ROWS];  // the query rows as stored (the bfloat16 dot-product path reads these)
  for (int r = 0; r < ROWS; ++r) {
    const T* src = static_cast<const T*>(a.query) + token * a.query_stride + (it.head_begin + r) * D;
    q_rows[r] = src;
    for (int v = 0; v < nvec; ++v) {
      const int n = static_cast<int>(min_i(W, D - v * W));
      load_n(src + v * W, n).store(q + r * Dp + v * W);
      Vec::zero().store(acc_out + r * Dp + v * W);
    }
  }
  float m[ROWS], l[ROWS];
  for (int r = 0; r < ROWS; ++r) m[r] = kNegInf, l[r] = 0.0f;
  const SeqCache<T> cache = seq_cache<T>(a, it.seq, it.kv_head);
  const T* key_rows[kDecodeChunk];
  const T* value_rows[kDecodeChunk];
  for (int c = first_visible(a, pos); c <= pos; c += kDecodeChunk) {
    const int n = static_cast<int>(min_i(kDecodeChunk, pos + 1 - c));
    cache.rows(c, n, key_rows, value_rows);
    // Scores: one dot product per (row, key), four keys at a time.
    int j = 0;
#if defined(__AVX512BF16__)
    if constexpr (std::is_same_v<T, bf16_t>) {
      for (; j + 4 <= n; j += 4) decode_scores_dpbf16<ROWS, 4>(a, q_rows, key_rows + j, 0, scores + j);
      for (; j < n; ++j) decode_scores_dpbf16<ROWS, 1>(a, q_rows, key_rows + j, 0, scores + j);
    }
#endif
    for (; j + 4 <= n; j += 4) block_scores<T, ROWS, 4>(q, key_rows + j, 0, D, nvec, Dp, a.scale, scores + j);
    for (; j < n; ++j) block_scores<T, ROWS, 1>(q, key_rows + j, 0, D, nvec, Dp, a.scale, scores + j);
    // Streaming softmax: update m and l, turn scores into e^(s - m), rescale the output.
    for (int r = 0; r < ROWS; ++r) {
      decode_softmax_row(a, scores + r * kDecodeChunk, n, m[r], l[r], acc_out + r * Dp, nvec);
    }
    // Output: acc_out[r] += sum_j p[r][j] * value_j, in groups of vectors held in registers.
    for (int v = 0; v < nvec; v += kValueGroup) {
      switch (static_cast<int>(min_i(kValueGroup, nvec - v))) {
        case 1: accumulate_values<T, ROWS, 1>(value_rows, n, scores, D, v, Dp, acc_out); break;
        case 2: accumulate_values<T, ROWS, 2>(value_rows, n, scores, D, v, Dp, acc_out); break;
        case 3: accumulate_values<T, ROWS, 3>(value_rows, n, scores, D, v, Dp, acc_out); break;
        default: accumulate_values<T, ROWS, 4>(value_rows, n, scores, D, v, Dp, acc_out); break;
      }
    }
  }
  const int64_t out_stride = static_cast<int64_t>(a.num_heads) * D;
  for (int r = 0; r < ROWS; ++r) {
    T* dst = static_cast<T*>(a.out) + token * out_stride + (it.head_begin + r) * D;
    const Vec inv = Vec::set1(1.0f / l[r]);
    for (int v = 0; v < nvec; ++v) {
      store_n(Vec::load(acc_out + r * Dp + v * W) * inv, dst + v * W, static_cast<int>(min_i(W, D - v * W)));
    }
  }
}

// ------------------------------------------------------------------------------------ prompt

// Scores of NJ consecutive staged keys against every row: s[j][row] = scale * k_j . q_row.
template <int RV, int NJ>
inline void prompt_scores(const float* qt, const float* keys, int64_t Dp, int D, float scale, float* s) {
  constexpr int W = Vec::W, RW = RV * W;
  Vec acc[NJ][RV];
  for (int jj = 0; jj < NJ; ++jj)
    for (int rv = 0; rv < RV; ++rv) acc[jj][rv] = Vec::zero();
  for (int d = 0; d < D; ++d) {
    Vec q[RV];
    for (int rv = 0; rv < RV; ++rv) q[rv] = Vec::load(qt + d * RW + rv * W);
    for (int jj = 0; jj < NJ; ++jj) {
      const Vec k = Vec::set1(keys[jj * Dp + d]);
      for (int rv = 0; rv < RV; ++rv) acc[jj][rv] = Vec::fma(k, q[rv], acc[jj][rv]);
    }
  }
  for (int jj = 0; jj < NJ; ++jj)
    for (int rv = 0; rv < RV; ++rv) (acc[jj][rv] * Vec::set1(scale)).store(s + jj * RW + rv * W);
}

// out_t[d][row] += sum_j value_j[d] * p[j][row] for ND channels starting at d.
template <int RV, int ND>
inline void prompt_accumulate(float* ot, const float* values, const float* p, int64_t Dp, int n, int d) {
  constexpr int W = Vec::W, RW = RV * W;
  Vec acc[ND][RV];
  for (int dd = 0; dd < ND; ++dd)
    for (int rv = 0; rv < RV; ++rv) acc[dd][rv] = Vec::load(ot + (d + dd) * RW + rv * W);
  for (int j = 0; j < n; ++j) {
    Vec prob[RV];
    for (int rv = 0; rv < RV; ++rv) prob[rv] = Vec::load(p + j * RW + rv * W);
    for (int dd = 0; dd < ND; ++dd) {
      const Vec v = Vec::set1(values[j * Dp + d + dd]);
      for (int rv = 0; rv < RV; ++rv) acc[dd][rv] = Vec::fma(v, prob[rv], acc[dd][rv]);
    }
  }
  for (int dd = 0; dd < ND; ++dd)
    for (int rv = 0; rv < RV; ++rv) acc[dd][rv].store(ot + (d + dd) * RW + rv * W);
}

// Copy n cached rows into a float buffer of row stride Dp (zero padded).
template <typename T>
void stage_rows(const T* const* rows, int n, int D, int64_t Dp, float* out) {
  for (int j = 0; j < n; ++j) {
    for (int64_t d = 0; d < Dp; d += Vec::W) {
      const int cnt = static_cast<int>(min_i(Vec::W, D - d));
      load_n(rows[j] + d, cnt).store(out + j * Dp + d);
    }
  }
}

// Hide keys a row may not see: after its position, or (with a window) too far before it.
template <int RV>
void mask_scores(const AttentionArgs& a, const float* qpos, int first_key, int n, float* s) {
  constexpr int W = Vec::W, RW = RV * W;
  const Vec neg_inf = Vec::set1(kNegInf), window = Vec::set1(static_cast<float>(a.sliding_window - 1));
  for (int j = 0; j < n; ++j) {
    const Vec kpos = Vec::set1(static_cast<float>(first_key + j));
    for (int rv = 0; rv < RV; ++rv) {
      const Vec q = Vec::load(qpos + rv * W);
      Vec v = Vec::select_gt(kpos, q, neg_inf, Vec::load(s + j * RW + rv * W));
      if (a.sliding_window > 0) v = Vec::select_gt(q - window, kpos, neg_inf, v);
      v.store(s + j * RW + rv * W);
    }
  }
}

// Streaming softmax over one chunk for every row vector; returns each vector's correction.
template <int RV>
void prompt_softmax(float* s, int n, Vec* m, Vec* l, Vec* correction) {
  constexpr int W = Vec::W, RW = RV * W;
  const Vec neg_inf = Vec::set1(kNegInf);
  for (int rv = 0; rv < RV; ++rv) {
    Vec mx = neg_inf;
    for (int j = 0; j < n; ++j) mx = Vec::max(mx, Vec::load(s + j * RW + rv * W));
    const Vec m_new = Vec::max(m[rv], mx);
    const Vec m_safe = Vec::select_eq(m_new, neg_inf, Vec::zero(), m_new);  // fully masked rows
    correction[rv] = (m[rv] - m_safe).exp();
    Vec sum = Vec::zero();
    for (int j = 0; j < n; ++j) {
      const Vec p = (Vec::load(s + j * RW + rv * W) - m_safe).exp();
      p.store(s + j * RW + rv * W);
      sum = sum + p;
    }
    l[rv] = l[rv] * correction[rv] + sum;
    m[rv] = m_new;
  }
}

// Buffers of one prompt item, carved from the thread's scratch.
struct PromptScratch {
  float *qt, *ot, *scores, *keys, *values, *qpos;
};

inline PromptScratch prompt_scratch(float* scratch, int64_t Dp, int rows) {
  PromptScratch b;
  b.qt = scratch;
  b.ot = b.qt + Dp * rows;
  b.scores = b.ot + Dp * rows;
  b.keys = b.scores + kPromptChunk * rows;
  b.values = b.keys + kPromptChunk * Dp;
  b.qpos = b.values + kPromptChunk * Dp;
  return b;
}

// Transpose the item's query rows (token-major, then head) into lanes: qt[d][row].
template <typename T, int RV>
void load_query_lanes(const AttentionArgs& a, const AttentionItem& it, int64_t first_token, int first_pos,
                      int64_t Dp, const PromptScratch& b) {
  constexpr int RW = RV * Vec::W;
  const int heads = it.head_end - it.head_begin;
  const int rows = (it.token_end - it.token_begin) * heads;
  for (int64_t i = 0; i < Dp * RW; ++i) b.qt[i] = 0.0f, b.ot[i] = 0.0f;
  for (int r = 0; r < RW; ++r) b.qpos[r] = -1.0f;
  for (int r = 0; r < rows; ++r) {
    const int token = r / heads, head = it.head_begin + r % heads;
    const T* src = static_cast<const T*>(a.query) + (first_token + token) * a.query_stride + head * a.head_size;
    for (int d = 0; d < a.head_size; ++d) b.qt[d * RW + r] = to_float(src[d]);
    b.qpos[r] = static_cast<float>(first_pos + token);
  }
}

// Divide by the softmax normalizer and write each row back to [token, head, channel]
// (one contiguous head_size run per row; the lanes are gathered from the L1-resident buffer).
template <typename T, int RV>
void store_output_lanes(const AttentionArgs& a, const AttentionItem& it, int64_t first_token, const Vec* l,
                        const PromptScratch& b) {
  constexpr int W = Vec::W, RW = RV * W;
  const int heads = it.head_end - it.head_begin;
  const int rows = (it.token_end - it.token_begin) * heads;
  const int64_t out_stride = static_cast<int64_t>(a.num_heads) * a.head_size;
  for (int d = 0; d < a.head_size; ++d)
    for (int rv = 0; rv < RV; ++rv) (Vec::load(b.ot + d * RW + rv * W) / l[rv]).store(b.ot + d * RW + rv * W);
  for (int r = 0; r < rows; ++r) {
    T* dst = static_cast<T*>(a.out) + (first_token + r / heads) * out_stride + (it.head_begin + r % heads) * a.head_size;
    for (int d = 0; d < a.head_size; ++d) from_float(b.ot[d * RW + r], dst + d);
  }
}

// Up to RV * W rows (query tokens x heads of one KV head) of a prompt or prompt chunk.
template <typename T, int RV>
void prompt_item(const AttentionArgs& a, const AttentionItem& it, float* scratch) {
  constexpr int W = Vec::W, RW = RV * W;
  const int D = a.head_size;
  const int64_t Dp = round_up(D, W);
  const PromptScratch b = prompt_scratch(scratch, Dp, RW);
  const int q_len = a.query_start_loc[it.seq + 1] - a.query_start_loc[it.seq];
  const int context = a.seq_lens[it.seq] - q_len;
  const int64_t first_token = a.query_start_loc[it.seq] + it.token_begin;
  const int first_pos = context + it.token_begin, last_pos = context + it.token_end - 1;
  load_query_lanes<T, RV>(a, it, first_token, first_pos, Dp, b);
  Vec m[RV], l[RV], correction[RV];
  for (int rv = 0; rv < RV; ++rv) m[rv] = Vec::set1(kNegInf), l[rv] = Vec::zero();
  const SeqCache<T> cache = seq_cache<T>(a, it.seq, it.kv_head);
  const T* key_rows[kPromptChunk];
  const T* value_rows[kPromptChunk];
  for (int c = first_visible(a, first_pos); c <= last_pos; c += kPromptChunk) {
    const int n = static_cast<int>(min_i(kPromptChunk, last_pos + 1 - c));
    cache.rows(c, n, key_rows, value_rows);
    stage_rows(key_rows, n, D, Dp, b.keys);
    stage_rows(value_rows, n, D, Dp, b.values);
    int j = 0;
    for (; j + 4 <= n; j += 4) prompt_scores<RV, 4>(b.qt, b.keys + j * Dp, Dp, D, a.scale, b.scores + j * RW);
    for (; j < n; ++j) prompt_scores<RV, 1>(b.qt, b.keys + j * Dp, Dp, D, a.scale, b.scores + j * RW);
    if (a.softcap > 0.0f) apply_softcap(b.scores, static_cast<int64_t>(n) * RW, a.softcap);
    const bool crosses_diagonal = c + n - 1 > first_pos;
    const bool crosses_window = a.sliding_window > 0 && c < last_pos - a.sliding_window + 1;
    if (crosses_diagonal || crosses_window) mask_scores<RV>(a, b.qpos, c, n, b.scores);
    prompt_softmax<RV>(b.scores, n, m, l, correction);
    for (int d = 0; d < D; ++d)
      for (int rv = 0; rv < RV; ++rv) {
        float* o = b.ot + d * RW + rv * W;
        (Vec::load(o) * correction[rv]).store(o);
      }
    int d = 0;
    for (; d + 8 <= D; d += 8) prompt_accumulate<RV, 8>(b.ot, b.values, b.scores, Dp, n, d);
    for (; d < D; ++d) prompt_accumulate<RV, 1>(b.ot, b.values, b.scores, Dp, n, d);
  }
  store_output_lanes<T, RV>(a, it, first_token, l, b);
}

// ---------------------------------------------------------------------------------- dispatch

// A whole decode sequence (kv_head < 0), every query head at once. A chunk's key rows (all KV
// heads of one position) are scored in blocks of kBlockKeys rows, then the streaming softmax,
// then its value rows are added into every head's output in blocks likewise.
//
// Two limits meet here. Arithmetic: one row at a time, every query vector is reloaded for each
// key and every output accumulator goes through memory for each value, so the kernel ran at 17
// GB/s per thread even on cache-resident rows; blocking four rows (a key or value vector loaded
// once for up to four query heads, a query vector once for four keys, an accumulator once per
// four values) runs at 40. Memory: the hardware prefetchers stream rows read in order, but a
// block reads its four rows a head's slice at a time, which they do not follow (one thread: 9.5
// GB/s from memory). So the rows kPrefetchRows ahead in the reading order (the chunk's keys,
// then its values) are prefetched by hand into the outer caches, each KV head's pass its slice
// of them, which spreads the prefetches through the work (issued in one burst per block they
// gained less). From memory, two threads of the benchmark machine then read 29-38 GB/s against
// 25-26 row by row in order (`attention_bench.py`, alternating builds; PREFETCHT0 gained
// nothing, T1 about 10%, T2 the most, NTA was slower). Output accumulators live in L1 (one
// row's heads do not fit in registers).
constexpr int kSequenceChunk = 128;
static_assert(kSequenceChunk <= kDecodeChunk, "a sequence chunk uses the decode scores layout");

// Query heads handled together by the blocked loops below: as many as the registers hold next to
// NJ keys' accumulators (32 vector registers with AVX-512, 16 with AVX2).
constexpr int kBlockRows = Vec::W == 16 ? 4 : 2;
constexpr int kBlockKeys = 4;
constexpr int kPrefetchRows = 8;  // how far ahead of the block being computed rows are prefetched

// Calls f(first_row, rows) over query heads [first, first + count) in runs of 4, 2 or 1 rows
// (f is a generic lambda taking the run length as a compile-time constant).
template <typename F>
inline void for_row_runs(int first, int count, F&& f) {
  int r = first;
  const int end = first + count;
  for (; kBlockRows >= 4 && r + 4 <= end; r += 4) f(r, std::integral_constant<int, 4>{});
  for (; r + 2 <= end; r += 2) f(r, std::integral_constant<int, 2>{});
  for (; r < end; ++r) f(r, std::integral_constant<int, 1>{});
}

// acc_out[r] += sum_jj p[r][jj] * value_jj for NJ consecutive value rows and the R query heads
// from r0 (all of KV head h): each value vector is loaded once for the R heads, and each
// accumulator goes through memory once per NJ keys.
template <typename T, int R, int NJ>
inline void block_values(const T* const* rows, int64_t value_offset, const float* p, int D, int nvec, int64_t Dp,
                         float* acc_out) {
  constexpr int W = Vec::W;
  Vec weight[R][NJ];
  for (int rr = 0; rr < R; ++rr)
    for (int jj = 0; jj < NJ; ++jj) weight[rr][jj] = Vec::set1(p[rr * kDecodeChunk + jj]);
  for (int v = 0; v < nvec; ++v) {
    const int cnt = static_cast<int>(min_i(W, D - v * W));
    Vec val[NJ];
    for (int jj = 0; jj < NJ; ++jj) val[jj] = load_n(rows[jj] + value_offset + v * W, cnt);
    for (int rr = 0; rr < R; ++rr) {
      float* out = acc_out + rr * Dp + v * W;
      Vec acc = Vec::load(out);
      for (int jj = 0; jj < NJ; ++jj) acc = Vec::fma(weight[rr][jj], val[jj], acc);
      acc.store(out);
    }
  }
}

// Prefetch bytes [offset, offset + bytes) of a cache row, into the outer caches (PREFETCHT2 on x86).
inline void prefetch_bytes(const void* row, int64_t offset, int64_t bytes) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(row) + offset, end = begin + bytes;
  for (uintptr_t line = begin & ~uintptr_t{63}; line < end; line += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(line), 0, 1);
  }
}

template <typename T>
void decode_sequence(const AttentionArgs& a, const AttentionItem& whole, float* scratch) {
  constexpr int W = Vec::W;
  const int D = a.head_size, H = a.num_heads, group = H / a.num_kv_heads, seq = whole.seq;
  const int nvec = static_cast<int>(round_up(D, W) / W);
  const int64_t Dp = nvec * W;
  float* q = scratch;                    // [H][Dp]
  float* acc_out = q + H * Dp;           // [H][Dp]
  float* scores = acc_out + H * Dp;      // [H][kDecodeChunk]
  float* m = scores + H * kDecodeChunk;  // [H] running maxima
  float* l = m + H;                      // [H] normalizers
  const int64_t token = a.query_start_loc[seq];
  const int pos = a.seq_lens[seq] - 1;
  const T* query = static_cast<const T*>(a.query) + token * a.query_stride;
  for (int r = 0; r < H; ++r) {
    for (int v = 0; v < nvec; ++v) {
      load_n(query + r * D + v * W, static_cast<int>(min_i(W, D - v * W))).store(q + r * Dp + v * W);
      Vec::zero().store(acc_out + r * Dp + v * W);
    }
    m[r] = kNegInf, l[r] = 0.0f;
  }
  const SeqCache<T> cache = seq_cache<T>(a, seq, 0);  // rows start at KV head 0
  const int64_t row_bytes = static_cast<int64_t>(a.num_kv_heads) * D * sizeof(T);
  const T* rows[2 * kSequenceChunk];  // a chunk's key rows, then its value rows: the reading order
  for (int c = first_visible(a, pos); c <= pos; c += kSequenceChunk) {
    const int n = static_cast<int>(min_i(kSequenceChunk, pos + 1 - c));
    const T* const* key_rows = rows;
    const T* const* value_rows = rows + n;
    cache.rows(c, n, rows, rows + n);
    // Rows [from, from + count) of the reading order, their bytes [offset, offset + bytes).
    const auto prefetch = [&](int from, int count, int64_t offset, int64_t bytes) {
      for (int i = from; i < from + count && i < 2 * n; ++i) prefetch_bytes(rows[i], offset, bytes);
    };
    const int64_t head_bytes = static_cast<int64_t>(D) * sizeof(T);
    prefetch(0, kPrefetchRows, 0, row_bytes);
    // Scores of keys [j, j + NJ) against every query head; each KV head first prefetches its
    // slice of the rows kPrefetchRows ahead.
    const auto score_keys = [&](int j, auto keys) {
      constexpr int NJ = decltype(keys)::value;
      for (int h = 0; h < a.num_kv_heads; ++h) {
        prefetch(j + kPrefetchRows, NJ, h * head_bytes, head_bytes);
        for_row_runs(h * group, group, [&](int r, auto run) {
          constexpr int R = decltype(run)::value;
          float* out = scores + r * kDecodeChunk + j;
#if defined(__AVX512BF16__)
          if constexpr (std::is_same_v<T, bf16_t>) {  // the BF16 dot-product instruction
            const bf16_t* q_rows[R];
            for (int rr = 0; rr < R; ++rr) q_rows[rr] = query + (r + rr) * D;
            decode_scores_dpbf16<R, NJ>(a, q_rows, key_rows + j, int64_t{h} * D, out);
            return;
          }
#endif
          block_scores<T, R, NJ>(q + r * Dp, key_rows + j, int64_t{h} * D, D, nvec, Dp, a.scale, out);
        });
      }
    };
    // Values [j, j + NJ) added into every query head's output, prefetching likewise.
    const auto add_values = [&](int j, auto keys) {
      constexpr int NJ = decltype(keys)::value;
      for (int h = 0; h < a.num_kv_heads; ++h) {
        prefetch(n + j + kPrefetchRows, NJ, h * head_bytes, head_bytes);
        for_row_runs(h * group, group, [&](int r, auto run) {
          block_values<T, decltype(run)::value, NJ>(value_rows + j, int64_t{h} * D, scores + r * kDecodeChunk + j,
                                                    D, nvec, Dp, acc_out + r * Dp);
        });
      }
    };
    constexpr auto block = std::integral_constant<int, kBlockKeys>{};
    constexpr auto single = std::integral_constant<int, 1>{};
    int j = 0;
    for (; j + kBlockKeys <= n; j += kBlockKeys) score_keys(j, block);
    for (; j < n; ++j) score_keys(j, single);
    for (int r = 0; r < H; ++r) decode_softmax_row(a, scores + r * kDecodeChunk, n, m[r], l[r], acc_out + r * Dp, nvec);
    for (j = 0; j + kBlockKeys <= n; j += kBlockKeys) add_values(j, block);
    for (; j < n; ++j) add_values(j, single);
  }
  const int64_t out_stride = static_cast<int64_t>(H) * D;
  for (int r = 0; r < H; ++r) {
    T* dst = static_cast<T*>(a.out) + token * out_stride + r * D;
    const Vec inv = Vec::set1(1.0f / l[r]);
    for (int v = 0; v < nvec; ++v) {
      store_n(Vec::load(acc_out + r * Dp + v * W) * inv, dst + v * W, static_cast<int>(min_i(W, D - v * W)));
    }
  }
}

int64_t attention_scratch_floats(const AttentionArgs& a) {
  const int64_t Dp = round_up(a.head_size, Vec::W), rows = kMaxPromptVecs * Vec::W;
  const int64_t prompt = 2 * Dp * rows + kPromptChunk * rows + 2 * kPromptChunk * Dp + rows;
  const int64_t decode = kMaxDecodeRows * (2 * Dp + kDecodeChunk);
  const int64_t whole_sequence = a.num_heads * (2 * Dp + kDecodeChunk + 2);
  return max_i(prompt, max_i(decode, whole_sequence));
}

template <typename T>
void attention_one(const AttentionArgs& a, const AttentionItem& it, float* scratch) {
  const int heads = it.head_end - it.head_begin, tokens = it.token_end - it.token_begin;
  if (tokens == 1 && it.kv_head < 0) return decode_sequence<T>(a, it, scratch);
  if (tokens == 1 && heads <= kMaxDecodeRows) {
    switch (heads) {
      case 1: return decode_item<T, 1>(a, it, scratch);
      case 2: return decode_item<T, 2>(a, it, scratch);
      case 3: return decode_item<T, 3>(a, it, scratch);
      default: return decode_item<T, 4>(a, it, scratch);
    }
  }
  switch ((tokens * heads + Vec::W - 1) / Vec::W) {
    case 1: return prompt_item<T, 1>(a, it, scratch);
    case 2: return prompt_item<T, 2>(a, it, scratch);
    case 3: return prompt_item<T, 3>(a, it, scratch);
    default: return prompt_item<T, 4>(a, it, scratch);
  }
}

void attention_kernel(const AttentionArgs& a, const AttentionItem* items, int64_t begin, int64_t end,
                      float* scratch) {
  for (int64_t i = begin; i < end; ++i) {
    if (a.dtype == DType::kFloat32) {
      attention_one<float>(a, items[i], scratch);
    } else {
      attention_one<bf16_t>(a, items[i], scratch);
    }
  }
}

}  // namespace
}  // namespace llmrt_cpu
