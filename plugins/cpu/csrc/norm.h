// norm.h: RMS norm and fused residual-add + RMS norm, matching llmrt.ops.torch_ops roundings.
//
// For bfloat16 the reference rounds at three places, reproduced here: the residual sum
// (x + residual, in the model dtype), the normalized value before the weight when
// cast_before_weight (Llama/Qwen order), and the final product. The sum of squares and the
// normalization are float32, as in the reference.
#pragma once

#include "kernels.h"
#include "simd.h"

namespace llmrt_cpu {
namespace {

inline int64_t row_offset(const RowLayout& rows, int64_t row) {
  return (row / rows.inner) * rows.outer_stride + (row % rows.inner) * rows.inner_stride;
}

// Pass 1: the row's values (after the fused add, written back to `residual`) and sum of squares.
template <typename T>
float sum_of_squares(const T* x, T* residual, int64_t hidden) {
  Vec acc = Vec::zero();
  for (int64_t i = 0; i < hidden; i += Vec::W) {
    int n = static_cast<int>(min_i(Vec::W, hidden - i));
    Vec v = Vec::load(x + i, n);
    if (residual != nullptr) {
      v = round_vec<T>(v + Vec::load(residual + i, n));
      v.store(residual + i, n);
    }
    acc = Vec::fma(v, v, acc);
  }
  return acc.reduce_add();
}

// Pass 2: out = normalized * weight, in the requested cast order.
template <typename T>
void scale_row(const NormArgs& a, const T* src, float inv_rms, T* out) {
  const T* weight = static_cast<const T*>(a.weight);
  const Vec inv = Vec::set1(inv_rms), offset = Vec::set1(a.weight_offset);
  for (int64_t i = 0; i < a.hidden; i += Vec::W) {
    int n = static_cast<int>(min_i(Vec::W, a.hidden - i));
    Vec normed = Vec::load(src + i, n) * inv;
    Vec w = Vec::load(weight + i, n);
    Vec result;
    if (a.cast_before_weight) {  // (weight + offset) * normed.to(dtype), all in dtype
      if (a.weight_offset != 0.0f) w = round_vec<T>(w + offset);
      result = w * round_vec<T>(normed);
    } else {  // (normed * (weight.float() + offset)).to(dtype)
      result = normed * (w + offset);
    }
    result.store(out + i, n);
  }
}

template <typename T>
void rms_norm_rows(const NormArgs& a, int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) {
    const T* x = static_cast<const T*>(a.x) + row_offset(a.x_rows, row);
    T* residual = a.residual ? static_cast<T*>(a.residual) + row * a.hidden : nullptr;
    float mean_square = sum_of_squares(x, residual, a.hidden) / static_cast<float>(a.hidden);
    float inv_rms = 1.0f / std::sqrt(mean_square + a.eps);
    scale_row<T>(a, residual ? residual : x, inv_rms, static_cast<T*>(a.out) + row * a.hidden);
  }
}

void rms_norm_kernel(const NormArgs& a, int64_t begin, int64_t end) {
  if (a.dtype == DType::kFloat32) {
    rms_norm_rows<float>(a, begin, end);
  } else {
    rms_norm_rows<bf16_t>(a, begin, end);
  }
}

}  // namespace
}  // namespace llmrt_cpu
