// rotary.h: rotary position embedding, in place on the query and key rows of each token.
//
// Matches llmrt.ops.torch_ops.rotary_embedding operation for operation: each product with
// cos/sin is rounded to the model dtype before the sum (PyTorch computes x1*cos and x2*sin as
// separate dtype tensors), and no product is fused into an FMA, so float32 results are
// bitwise equal to the reference.
#pragma once

#include "kernels.h"
#include "simd.h"

namespace llmrt_cpu {
namespace {

// Neox style: channel i pairs with i + rot_dim/2.
template <typename T>
void rotate_neox(T* x, const T* cos, const T* sin, int64_t half) {
  for (int64_t i = 0; i < half; i += Vec::W) {
    int n = static_cast<int>(min_i(Vec::W, half - i));
    Vec x1 = Vec::load(x + i, n), x2 = Vec::load(x + half + i, n);
    Vec c = Vec::load(cos + i, n), s = Vec::load(sin + i, n);
    Vec first = round_vec<T>(round_vec<T>(x1 * c) - round_vec<T>(x2 * s));
    Vec second = round_vec<T>(round_vec<T>(x2 * c) + round_vec<T>(x1 * s));
    first.store(x + i, n);
    second.store(x + half + i, n);
  }
}

// GPT-J style: channel 2i pairs with 2i + 1 (interleaved; scalar, rarely used).
template <typename T>
void rotate_gptj(T* x, const T* cos, const T* sin, int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    float even = to_float(x[2 * i]), odd = to_float(x[2 * i + 1]);
    float c = to_float(cos[i]), s = to_float(sin[i]);
    float new_even = round_to<T>(round_to<T>(even * c) - round_to<T>(odd * s));
    float new_odd = round_to<T>(round_to<T>(odd * c) + round_to<T>(even * s));
    from_float(new_even, x + 2 * i);
    from_float(new_odd, x + 2 * i + 1);
  }
}

template <typename T>
void rotate_heads(const RotaryArgs& a, T* row, int64_t heads, const T* cos, const T* sin) {
  const int64_t half = a.rot_dim / 2;
  for (int64_t h = 0; h < heads; ++h) {
    T* head = row + h * a.head_size;
    if (a.neox) {
      rotate_neox(head, cos, sin, half);
    } else {
      rotate_gptj(head, cos, sin, half);
    }
  }
}

template <typename T>
void rotary_tokens(const RotaryArgs& a, int64_t begin, int64_t end) {
  const T* table = static_cast<const T*>(a.cos_sin);
  for (int64_t t = begin; t < end; ++t) {
    const T* cos = table + a.positions[t] * a.rot_dim;
    const T* sin = cos + a.rot_dim / 2;
    rotate_heads(a, static_cast<T*>(a.query) + t * a.query_stride, a.num_q_heads, cos, sin);
    rotate_heads(a, static_cast<T*>(a.key) + t * a.key_stride, a.num_k_heads, cos, sin);
  }
}

void rotary_kernel(const RotaryArgs& a, int64_t begin, int64_t end) {
  if (a.dtype == DType::kFloat32) {
    rotary_tokens<float>(a, begin, end);
  } else {
    rotary_tokens<bf16_t>(a, begin, end);
  }
}

}  // namespace
}  // namespace llmrt_cpu
