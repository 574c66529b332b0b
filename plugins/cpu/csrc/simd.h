// simd.h: one float32 vector type per instruction set, with bfloat16 loads and stores.
//
// Every kernel in this directory is a template over `Vec`. Each instruction-set translation
// unit (isa_*.cpp) is compiled with its own -m flags, so the preprocessor picks exactly one of
// the implementations below for it: AVX-512 (16 lanes), AVX2/FMA (8 lanes), or a portable
// 8-lane array that compilers auto-vectorize (SSE2 on x86-64, NEON on Arm).
//
// Arithmetic is always float32. bfloat16 data is widened on load and rounded to nearest-even on
// store, exactly as PyTorch converts, so kernels can reproduce PyTorch's intermediate roundings.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace llmrt_cpu {
// Everything below has internal linkage: each instruction-set translation unit gets its own
// copy, compiled with its own flags, and the linker can never substitute one build's inline
// function (say, an AVX-512 one) for another's on a CPU that lacks the instructions.
namespace {

using bf16_t = uint16_t;  // raw bfloat16 bits

inline int64_t min_i(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max_i(int64_t a, int64_t b) { return a > b ? a : b; }
inline float max_f(float a, float b) { return a > b ? a : b; }

inline float bf16_to_float(bf16_t value) {
  uint32_t bits = static_cast<uint32_t>(value) << 16;
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

inline bf16_t float_to_bf16(float value) {
  if (std::isnan(value)) return 0x7FC0;
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  bits += 0x7FFFu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<bf16_t>(bits >> 16);
}

// Load/store one scalar of storage type T as float.
inline float to_float(float value) { return value; }
inline float to_float(bf16_t value) { return bf16_to_float(value); }
inline void from_float(float value, float* out) { *out = value; }
inline void from_float(float value, bf16_t* out) { *out = float_to_bf16(value); }

// `value` rounded to T's precision and widened back: emulates a T-typed intermediate result.
template <typename T>
inline float round_to(float value) {
  if constexpr (std::is_same_v<T, float>) {
    return value;
  } else {
    return bf16_to_float(float_to_bf16(value));
  }
}

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

#if defined(__AVX512F__)
// ---------------------------------------------------------------------------------- AVX-512
struct Vec {
  static constexpr int W = 16;
  __m512 v;

  static Vec zero() { return {_mm512_setzero_ps()}; }
  static Vec set1(float x) { return {_mm512_set1_ps(x)}; }
  static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static Vec load(const bf16_t* p) {
    __m256i half = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16))};
  }
  static Vec load(const float* p, int n) { return {_mm512_maskz_loadu_ps(mask(n), p)}; }
  static Vec load(const bf16_t* p, int n) {
    __m256i half = _mm256_maskz_loadu_epi16(mask(n), p);
    return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16))};
  }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store(bf16_t* p) const { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), to_bf16()); }
  void store(float* p, int n) const { _mm512_mask_storeu_ps(p, mask(n), v); }
  void store(bf16_t* p, int n) const { _mm256_mask_storeu_epi16(p, mask(n), to_bf16()); }

  friend Vec operator+(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
  friend Vec operator/(Vec a, Vec b) { return {_mm512_div_ps(a.v, b.v)}; }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  static Vec max(Vec a, Vec b) { return {_mm512_max_ps(a.v, b.v)}; }
  // Lanes where a > b take `yes`, others `no`.
  static Vec select_gt(Vec a, Vec b, Vec yes, Vec no) {
    return {_mm512_mask_blend_ps(_mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ), no.v, yes.v)};
  }
  static Vec select_eq(Vec a, Vec b, Vec yes, Vec no) {
    return {_mm512_mask_blend_ps(_mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ), no.v, yes.v)};
  }
  float reduce_add() const { return _mm512_reduce_add_ps(v); }
  float reduce_max() const { return _mm512_reduce_max_ps(v); }
  // out[i] = sum of the lanes of x[i], for four vectors at once (fewer shuffles than four sums).
  static void reduce_add4(const Vec* x, float* out) {
    __m256 h[4];
    for (int i = 0; i < 4; ++i) {
      h[i] = _mm256_add_ps(_mm512_castps512_ps256(x[i].v),
                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x[i].v), 1)));
    }
    const __m256 pairs = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(pairs), _mm256_extractf128_ps(pairs, 1)));
  }
  // e^x (see exp_impl below); exact zero below the float range, +inf above.
  Vec exp() const;
  // Round to the nearest integer, as float.
  Vec round() const { return {_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  // 2^n for integer-valued n in [-126, 127].
  static Vec pow2(Vec n) {
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127)), 23);
    return {_mm512_castsi512_ps(bits)};
  }

 private:
  static __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  __m256i to_bf16() const {
#if defined(__AVX512BF16__)
    return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
#else
    __m512i bits = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    rounded = _mm512_mask_blend_epi32(nan, rounded, _mm512_set1_epi32(0x7FC00000));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16));
#endif
  }
};

#elif defined(__AVX2__)
// ---------------------------------------------------------------------------------- AVX2 + FMA
struct Vec {
  static constexpr int W = 8;
  __m256 v;

  static Vec zero() { return {_mm256_setzero_ps()}; }
  static Vec set1(float x) { return {_mm256_set1_ps(x)}; }
  static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static Vec load(const bf16_t* p) {
    __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16))};
  }
  template <typename T>
  static Vec load(const T* p, int n) {  // tails go through a small zero-padded buffer
    T tmp[W] = {};
    std::memcpy(tmp, p, sizeof(T) * n);
    return load(tmp);
  }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store(bf16_t* p) const { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), to_bf16()); }
  template <typename T>
  void store(T* p, int n) const {
    T tmp[W];
    store(tmp);
    std::memcpy(p, tmp, sizeof(T) * n);
  }

  friend Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
  friend Vec operator/(Vec a, Vec b) { return {_mm256_div_ps(a.v, b.v)}; }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  static Vec max(Vec a, Vec b) { return {_mm256_max_ps(a.v, b.v)}; }
  static Vec select_gt(Vec a, Vec b, Vec yes, Vec no) {
    return {_mm256_blendv_ps(no.v, yes.v, _mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ))};
  }
  static Vec select_eq(Vec a, Vec b, Vec yes, Vec no) {
    return {_mm256_blendv_ps(no.v, yes.v, _mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ))};
  }
  float reduce_add() const {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static void reduce_add4(const Vec* x, float* out) {
    const __m256 pairs = _mm256_hadd_ps(_mm256_hadd_ps(x[0].v, x[1].v), _mm256_hadd_ps(x[2].v, x[3].v));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(pairs), _mm256_extractf128_ps(pairs, 1)));
  }
  float reduce_max() const {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  Vec exp() const;
  Vec round() const { return {_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  static Vec pow2(Vec n) {
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127)), 23);
    return {_mm256_castsi256_ps(bits)};
  }

 private:
  __m128i to_bf16() const {
    __m256i bits = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF)));
    __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    rounded = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(rounded), _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)), nan));
    __m256i shifted = _mm256_srli_epi32(rounded, 16);
    return _mm_packus_epi32(_mm256_castsi256_si128(shifted), _mm256_extracti128_si256(shifted, 1));
  }
};

#else
// ---------------------------------------------------------------------------------- portable
// Plain loops over 8 floats; compilers turn them into the target's baseline SIMD.
struct Vec {
  static constexpr int W = 8;
  float v[W];

  static Vec zero() { return set1(0.0f); }
  static Vec set1(float x) {
    Vec r;
    for (int i = 0; i < W; ++i) r.v[i] = x;
    return r;
  }
  template <typename T>
  static Vec load(const T* p, int n = W) {
    Vec r = zero();
    for (int i = 0; i < n; ++i) r.v[i] = to_float(p[i]);
    return r;
  }
  template <typename T>
  void store(T* p, int n = W) const {
    for (int i = 0; i < n; ++i) from_float(v[i], p + i);
  }
  template <typename F>
  static Vec map2(Vec a, Vec b, F f) {
    Vec r;
    for (int i = 0; i < W; ++i) r.v[i] = f(a.v[i], b.v[i]);
    return r;
  }
  friend Vec operator+(Vec a, Vec b) { return map2(a, b, [](float x, float y) { return x + y; }); }
  friend Vec operator-(Vec a, Vec b) { return map2(a, b, [](float x, float y) { return x - y; }); }
  friend Vec operator*(Vec a, Vec b) { return map2(a, b, [](float x, float y) { return x * y; }); }
  friend Vec operator/(Vec a, Vec b) { return map2(a, b, [](float x, float y) { return x / y; }); }
  // a * b + c (two roundings: baseline x86-64 has no FMA instruction, and std::fma would be a
  // slow library call there).
  static Vec fma(Vec a, Vec b, Vec c) {
    Vec r;
    for (int i = 0; i < W; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
    return r;
  }
  static Vec max(Vec a, Vec b) { return map2(a, b, [](float x, float y) { return x > y ? x : y; }); }
  static Vec select_gt(Vec a, Vec b, Vec yes, Vec no) {
    Vec r;
    for (int i = 0; i < W; ++i) r.v[i] = a.v[i] > b.v[i] ? yes.v[i] : no.v[i];
    return r;
  }
  static Vec select_eq(Vec a, Vec b, Vec yes, Vec no) {
    Vec r;
    for (int i = 0; i < W; ++i) r.v[i] = a.v[i] == b.v[i] ? yes.v[i] : no.v[i];
    return r;
  }
  float reduce_add() const {
    float s = 0.0f;
    for (int i = 0; i < W; ++i) s += v[i];
    return s;
  }
  static void reduce_add4(const Vec* x, float* out) {
    for (int i = 0; i < 4; ++i) out[i] = x[i].reduce_add();
  }
  float reduce_max() const {
    float m = v[0];
    for (int i = 1; i < W; ++i) m = v[i] > m ? v[i] : m;
    return m;
  }
  Vec exp() const {
    Vec r;
    for (int i = 0; i < W; ++i) r.v[i] = std::exp(v[i]);
    return r;
  }
};
#endif

#if defined(__AVX512F__) || defined(__AVX2__)
// e^x = 2^n * e^r with n = round(x / ln 2) and |r| <= ln(2) / 2; e^r by a degree-7 polynomial
// (Taylor coefficients; truncation error about 5e-9 relative on that interval). ln 2 is split in a high
// part exact in float and a low correction so that r is computed without cancellation error.
// Results below 2^-125 (x < -86.64) are flushed to 0, which also maps -inf to 0; x above the
// float range gives +inf. 2^n is applied as 2^(n-1) * 2 so that n = 128 stays representable.
inline Vec Vec::exp() const {
  const Vec hi = set1(88.3762626647949f), lo = set1(-86.64f);
  Vec x = max(Vec{v}, lo);
  x = select_gt(x, hi, hi, x);
  Vec n = (x * set1(1.44269504088896341f)).round();
  Vec r = Vec::fma(n, set1(-0.693359375f), x);
  r = Vec::fma(n, set1(2.12194440e-4f), r);
  Vec p = set1(1.0f / 5040);
  p = Vec::fma(p, r, set1(1.0f / 720));
  p = Vec::fma(p, r, set1(1.0f / 120));
  p = Vec::fma(p, r, set1(1.0f / 24));
  p = Vec::fma(p, r, set1(1.0f / 6));
  p = Vec::fma(p, r, set1(0.5f));
  p = Vec::fma(p, r, set1(1.0f));
  p = Vec::fma(p, r, set1(1.0f));
  Vec out = p * pow2(n - set1(1.0f)) * set1(2.0f);
  out = select_gt(lo, Vec{v}, zero(), out);
  return select_gt(Vec{v}, hi, set1(std::numeric_limits<float>::infinity()), out);
}
#endif

// v rounded to T's precision (a store/load round trip through L1 for bfloat16).
template <typename T>
inline Vec round_vec(Vec v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    T tmp[Vec::W];
    v.store(tmp);
    return Vec::load(tmp);
  }
}

}  // namespace
}  // namespace llmrt_cpu
