// activation.h: SiLU-and-mul, silu(gate) * up for the gated MLP of Llama-like models.
//
// As in PyTorch, silu(g) = g / (1 + e^-g) in float32, rounded to the model dtype, then the
// product with `up` rounded again.
#pragma once

#include "kernels.h"
#include "simd.h"

namespace llmrt_cpu {
namespace {

template <typename T>
void silu_and_mul_rows(const GatedActArgs& a, int64_t begin, int64_t end) {
  const Vec one = Vec::set1(1.0f), zero = Vec::zero();
  for (int64_t row = begin; row < end; ++row) {
    const T* gate = static_cast<const T*>(a.x) + row * a.x_stride;
    const T* up = gate + a.d;
    T* out = static_cast<T*>(a.out) + row * a.d;
    for (int64_t i = 0; i < a.d; i += Vec::W) {
      int n = static_cast<int>(min_i(Vec::W, a.d - i));
      Vec g = Vec::load(gate + i, n);
      Vec silu = round_vec<T>(g / (one + (zero - g).exp()));
      (silu * Vec::load(up + i, n)).store(out + i, n);
    }
  }
}

void silu_and_mul_kernel(const GatedActArgs& a, int64_t begin, int64_t end) {
  if (a.dtype == DType::kFloat32) {
    silu_and_mul_rows<float>(a, begin, end);
  } else {
    silu_and_mul_rows<bf16_t>(a, begin, end);
  }
}

}  // namespace
}  // namespace llmrt_cpu
