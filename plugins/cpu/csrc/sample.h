// sample.h: the sample_categorical op, one draw per row of float32 logits.
//
// A row with temperature t > 0 draws token i with probability softmax(x / t)[i] by inverting
// the cumulative distribution: with weights w_i = e^(x_i / t - max) and u uniform in [0, 1),
// the token is the first i whose running sum of weights exceeds u * sum(w). Passes over a row:
// its maximum; the weights' sums per block of kSampleBlock entries; then, inside the one block
// the target falls in, sums per vector and finally entry by entry. Weights are recomputed, not
// stored, so a row costs two reads and one exp per entry (PyTorch's softmax + cumulative sums
// took about 0.9 ms for 32 rows of a 16k vocabulary; this, about a tenth of that).
//
// Entries at -inf weigh exactly 0 and are never drawn. Rows with t == 0, or without a finite
// maximum, take the first maximum, as torch.argmax does. Where float rounding leaves the target
// past the last running sum, the last entry of positive weight is drawn (as the reference does).
#pragma once

#include <vector>

#include "kernels.h"
#include "simd.h"

namespace llmrt_cpu {
namespace {

constexpr int64_t kSampleBlock = 1024;

inline float row_max(const float* x, int64_t n) {
  Vec mx = Vec::set1(kNegInf);
  int64_t i = 0;
  for (; i + Vec::W <= n; i += Vec::W) mx = Vec::max(mx, Vec::load(x + i));
  float m = mx.reduce_max();
  for (; i < n; ++i) m = max_f(m, x[i]);
  return m;
}

inline int64_t first_argmax(const float* x, int64_t n) {
  const float m = row_max(x, n);
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] == m) return i;
  }
  return 0;  // a row of NaNs
}

// Weights of the n <= W entries at x (lanes past n weigh 0).
inline Vec chunk_weights(const float* x, int n, Vec t, Vec m, bool scaled) {
  Vec v;
  if (n == Vec::W) {
    v = Vec::load(x);
  } else {
    float lanes[Vec::W];
    for (int k = 0; k < Vec::W; ++k) lanes[k] = k < n ? x[k] : kNegInf;
    v = Vec::load(lanes);
  }
  if (scaled) v = v / t;
  return (v - m).exp();
}

struct RowWeights {
  const float* x;
  int64_t vocab;
  Vec t, m;
  bool scaled;

  int chunk(int64_t i) const { return static_cast<int>(min_i(Vec::W, vocab - i)); }
  Vec at(int64_t i) const { return chunk_weights(x + i, chunk(i), t, m, scaled); }

  float block_sum(int64_t begin, int64_t end) const {
    Vec s = Vec::zero();
    for (int64_t i = begin; i < end; i += Vec::W) s = s + at(i);
    return s.reduce_add();
  }

  // The last entry of positive weight in [begin, end) (there is one when the block's sum is > 0).
  int64_t last_positive(int64_t begin, int64_t end) const {
    int64_t found = begin;
    for (int64_t i = begin; i < end; i += Vec::W) {
      float w[Vec::W];
      at(i).store(w);
      for (int k = 0; k < chunk(i); ++k) {
        if (w[k] > 0.0f) found = i + k;
      }
    }
    return found;
  }

  // The first entry of [begin, end) where `before` plus the running sum exceeds `target`.
  int64_t locate(int64_t begin, int64_t end, float before, float target) const {
    for (int64_t i = begin; i < end; i += Vec::W) {
      const Vec v = at(i);
      const float s = v.reduce_add();
      if (before + s > target) {
        float w[Vec::W];
        v.store(w);
        int64_t last = i;
        for (int k = 0; k < chunk(i); ++k) {
          if (w[k] <= 0.0f) continue;
          before += w[k];
          last = i + k;
          if (before > target) return last;
        }
        return last;
      }
      before += s;
    }
    return last_positive(begin, end);
  }
};

inline int64_t draw_row(const float* x, int64_t vocab, float t, float u, float* block_sums) {
  if (!(t > 0.0f)) return first_argmax(x, vocab);
  const float m = row_max(x, vocab) / t;  // dividing by t > 0 keeps the order: max(x / t)
  if (!std::isfinite(m)) return first_argmax(x, vocab);
  const RowWeights w = {x, vocab, Vec::set1(t), Vec::set1(m), t != 1.0f};
  const int64_t blocks = (vocab + kSampleBlock - 1) / kSampleBlock;
  float total = 0.0f;
  for (int64_t b = 0; b < blocks; ++b) {
    block_sums[b] = w.block_sum(b * kSampleBlock, min_i(vocab, (b + 1) * kSampleBlock));
    total += block_sums[b];
  }
  const float target = u * total;
  float before = 0.0f;
  int64_t last_positive = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    if (block_sums[b] <= 0.0f) continue;
    last_positive = b;
    if (before + block_sums[b] > target) {
      return w.locate(b * kSampleBlock, min_i(vocab, (b + 1) * kSampleBlock), before, target);
    }
    before += block_sums[b];
  }
  return w.last_positive(last_positive * kSampleBlock, min_i(vocab, (last_positive + 1) * kSampleBlock));
}

void sample_kernel(const SampleArgs& a, int64_t begin, int64_t end) {
  std::vector<float> block_sums((a.vocab + kSampleBlock - 1) / kSampleBlock + 1);
  for (int64_t row = begin; row < end; ++row) {
    a.out[row] = draw_row(a.logits + row * a.logits_stride, a.vocab, a.temperature[row], a.uniform[row],
                          block_sums.data());
  }
}

}  // namespace
}  // namespace llmrt_cpu
