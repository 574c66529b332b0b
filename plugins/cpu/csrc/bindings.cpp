// bindings.cpp: the Python module llmrt_cpu._C, tensors in, kernels out.
//
// Each function checks its tensors, fills the kernel's argument struct (kernels.h) and runs the
// selected build's range function on PyTorch's intra-op thread pool. Small inputs run on the
// calling thread: waking the pool costs more than they do (and on a busy machine much more).
// Callers (llmrt_cpu/ops.py, attention.py) only send cases these functions support and use the
// PyTorch reference otherwise.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <atomic>
#include <stdexcept>
#include <tuple>

#include "attention_plan.h"
#include "dispatch.h"
#include "kernels.h"
#include "panel_linear.h"

namespace llmrt_cpu {
namespace {

const KernelTable* g_table = select_table("auto");

// Elements of work below which a task is not split across threads.
constexpr int64_t kMinElementsPerTask = 1 << 15;

DType dtype_of(const at::Tensor& t) {
  if (t.scalar_type() == at::kFloat) return DType::kFloat32;
  if (t.scalar_type() == at::kBFloat16) return DType::kBFloat16;
  throw std::invalid_argument("llmrt_cpu kernels support float32 and bfloat16, got " +
                              std::string(c10::toString(t.scalar_type())));
}

void check_cpu_same_dtype(const at::Tensor& t, const at::Tensor& like, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), what, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), what, " has dtype ", t.scalar_type(), ", expected ",
              like.scalar_type());
}

// Run f(begin, end) over [0, n) rows, in parallel only when the work is large enough.
template <typename F>
void for_rows(int64_t n, int64_t elements_per_row, const F& f) {
  const int64_t grain = std::max<int64_t>(1, kMinElementsPerTask / std::max<int64_t>(1, elements_per_row));
  at::parallel_for(0, n, grain, f);
}

// Rows of x [..., H] (last dim contiguous, at most 3 dims) as a RowLayout.
RowLayout row_layout(const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1 && x.dim() <= 3 && x.stride(-1) == 1, "expected [..., H] with at most 3 dims and a contiguous last dim");
  if (x.dim() == 1) return {1, 0, 0};
  if (x.dim() == 2) return {x.size(0), 0, x.stride(0)};
  return {x.size(1), x.stride(0), x.stride(1)};
}

NormArgs norm_args(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& out, double eps, double offset,
                   bool cast_before_weight) {
  check_cpu_same_dtype(weight, x, "weight");
  TORCH_CHECK(weight.is_contiguous() && weight.numel() == x.size(-1), "weight must be contiguous [H]");
  return {dtype_of(x), x.data_ptr(), row_layout(x), nullptr, weight.data_ptr(), out.data_ptr(),
          x.size(-1), static_cast<float>(eps), static_cast<float>(offset), cast_before_weight};
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, double offset, bool cast_before_weight) {
  at::Tensor out = at::empty(x.sizes(), x.options());
  const NormArgs args = norm_args(x, weight, out, eps, offset, cast_before_weight);
  const int64_t rows = x.numel() / std::max<int64_t>(1, x.size(-1));
  for_rows(rows, x.size(-1), [&](int64_t b, int64_t e) { g_table->rms_norm(args, b, e); });
  return out;
}

// Writes x + residual into `residual` (in place) and returns the normalized rows.
at::Tensor fused_add_rms_norm(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight, double eps,
                              double offset, bool cast_before_weight) {
  check_cpu_same_dtype(residual, x, "residual");
  TORCH_CHECK(residual.is_contiguous() && residual.sizes() == x.sizes(), "residual must be contiguous, shaped like x");
  at::Tensor out = at::empty(x.sizes(), x.options());
  NormArgs args = norm_args(x, weight, out, eps, offset, cast_before_weight);
  args.residual = residual.data_ptr();
  const int64_t rows = x.numel() / std::max<int64_t>(1, x.size(-1));
  for_rows(rows, 2 * x.size(-1), [&](int64_t b, int64_t e) { g_table->rms_norm(args, b, e); });
  return out;
}

// The rotary kernel's arguments for query [>=T, Hq*D] and key [>=T, Hk*D] rows (strided views
// allowed), rotated in place at the T positions; checks what the kernel relies on.
RotaryArgs rotary_args(const at::Tensor& positions, const at::Tensor& query, const at::Tensor& key,
                       const at::Tensor& cos_sin, int64_t head_size, bool neox) {
  check_cpu_same_dtype(key, query, "key");
  check_cpu_same_dtype(cos_sin, query, "cos_sin_cache");
  TORCH_CHECK(positions.is_cpu() && positions.scalar_type() == at::kLong && positions.is_contiguous(),
              "positions must be contiguous int64 on the CPU");
  TORCH_CHECK(query.dim() == 2 && key.dim() == 2 && query.stride(1) == 1 && key.stride(1) == 1,
              "query and key must be [T, heads * head_size] with contiguous rows");
  TORCH_CHECK(cos_sin.is_contiguous() && cos_sin.dim() == 2 && cos_sin.size(1) <= head_size, "bad cos_sin_cache");
  TORCH_CHECK(query.size(0) >= positions.numel() && key.size(0) >= positions.numel(),
              "fewer query/key rows than positions");
  const int64_t* pos = positions.data_ptr<int64_t>();
  const int64_t rows = cos_sin.size(0);
  for (int64_t i = 0; i < positions.numel(); ++i) {
    TORCH_CHECK(pos[i] >= 0 && pos[i] < rows, "position ", pos[i], " is outside the rotary table's ", rows,
                " rows (the model's maximum length)");
  }
  return {dtype_of(query), pos, query.data_ptr(), key.data_ptr(),
          query.stride(0), key.stride(0), query.size(1) / head_size, key.size(1) / head_size,
          head_size, cos_sin.size(1), cos_sin.data_ptr(), neox};
}

// Rotates query [T, Hq*D] and key [T, Hk*D] in place (rows may be strided views).
void rotary_embedding(const at::Tensor& positions, at::Tensor& query, at::Tensor& key, const at::Tensor& cos_sin,
                      int64_t head_size, bool neox) {
  const RotaryArgs args = rotary_args(positions, query, key, cos_sin, head_size, neox);
  for_rows(positions.numel(), query.size(1) + key.size(1), [&](int64_t b, int64_t e) { g_table->rotary(args, b, e); });
}

// Per-head RMS norm of query [T, Hq*D] and key [T, Hk*D] (rows may be strided views, as split
// from the fused QKV product), then the rotary embedding: rms_norm and rotary_embedding's kernels
// and roundings, token by token in one call and one parallel region instead of three calls.
// Returns the new query and key, contiguous.
std::tuple<at::Tensor, at::Tensor> qk_norm_rotary(const at::Tensor& positions, const at::Tensor& query,
                                                  const at::Tensor& key, const at::Tensor& q_weight,
                                                  const at::Tensor& k_weight, double eps, double offset,
                                                  bool cast_before_weight, const at::Tensor& cos_sin,
                                                  int64_t head_size, bool neox) {
  const int64_t tokens = positions.numel();
  TORCH_CHECK(query.dim() == 2 && key.dim() == 2 && query.stride(1) == 1 && key.stride(1) == 1 &&
                  query.size(0) == tokens && key.size(0) == tokens && query.size(1) % head_size == 0 &&
                  key.size(1) % head_size == 0,
              "query and key must be [positions, heads * head_size] with contiguous rows");
  at::Tensor q_out = at::empty(query.sizes(), query.options()), k_out = at::empty(key.sizes(), key.options());
  const auto head_norm = [&](const at::Tensor& x, const at::Tensor& weight, const at::Tensor& out) {
    check_cpu_same_dtype(weight, x, "norm weight");
    TORCH_CHECK(weight.is_contiguous() && weight.numel() == head_size, "norm weights must be contiguous [head_size]");
    return NormArgs{dtype_of(x), x.data_ptr(), {x.size(1) / head_size, x.stride(0), head_size}, nullptr,
                    weight.data_ptr(), out.data_ptr(), head_size, static_cast<float>(eps), static_cast<float>(offset),
                    cast_before_weight};
  };
  const NormArgs q_norm = head_norm(query, q_weight, q_out), k_norm = head_norm(key, k_weight, k_out);
  const RotaryArgs rotary = rotary_args(positions, q_out, k_out, cos_sin, head_size, neox);
  const int64_t q_heads = rotary.num_q_heads, k_heads = rotary.num_k_heads;
  for_rows(tokens, 2 * (query.size(1) + key.size(1)), [&](int64_t b, int64_t e) {
    g_table->rms_norm(q_norm, b * q_heads, e * q_heads);
    g_table->rms_norm(k_norm, b * k_heads, e * k_heads);
    g_table->rotary(rotary, b, e);
  });
  return {q_out, k_out};
}

at::Tensor silu_and_mul(const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1 && x.stride(-1) == 1 && x.size(-1) % 2 == 0, "expected [..., 2d] with a contiguous last dim");
  const at::Tensor rows2d = x.reshape({-1, x.size(-1)});  // a view for the usual 2-D input
  const int64_t d = x.size(-1) / 2;
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = d;
  at::Tensor out = at::empty(shape, x.options());
  const GatedActArgs args = {dtype_of(x), rows2d.data_ptr(), rows2d.stride(0), out.data_ptr(), d};
  for_rows(rows2d.size(0), 2 * d, [&](int64_t b, int64_t e) { g_table->silu_and_mul(args, b, e); });
  return out;
}

// kv_cache [2, blocks, block_size, Hk, D]; key/value [>=T, Hk*D] with contiguous rows.
void write_kv_cache(const at::Tensor& key, const at::Tensor& value, at::Tensor& kv_cache, const at::Tensor& slot_mapping) {
  check_cpu_same_dtype(key, kv_cache, "key");
  check_cpu_same_dtype(value, kv_cache, "value");
  TORCH_CHECK(kv_cache.is_contiguous() && kv_cache.dim() == 5 && kv_cache.size(0) == 2, "bad kv_cache layout");
  TORCH_CHECK(slot_mapping.scalar_type() == at::kLong && slot_mapping.is_contiguous(), "slot_mapping must be int64");
  const int64_t row = kv_cache.size(3) * kv_cache.size(4);
  TORCH_CHECK(key.dim() == 2 && value.dim() == 2 && key.size(1) == row && value.size(1) == row &&
                  key.stride(1) == 1 && value.stride(1) == 1,
              "key/value must be [T, num_kv_heads * head_size] with contiguous rows");
  const int64_t tokens = slot_mapping.numel();
  TORCH_CHECK(key.size(0) >= tokens && value.size(0) >= tokens, "fewer key/value rows than slots");
  const CacheWriteArgs args = {dtype_of(key), key.data_ptr(), value.data_ptr(), key.stride(0), value.stride(0),
                               kv_cache[0].data_ptr(), kv_cache[1].data_ptr(), row,
                               slot_mapping.data_ptr<int64_t>()};
  for_rows(tokens, 2 * row, [&](int64_t b, int64_t e) { g_table->write_cache(args, b, e); });
}

// Work items [N, 6] int32 (seq, kv_head, token_begin, token_end, head_begin, head_end).
at::Tensor plan_attention_items(const at::Tensor& query_start_loc, const at::Tensor& seq_lens, int64_t num_heads,
                          int64_t num_kv_heads) {
  TORCH_CHECK(query_start_loc.scalar_type() == at::kInt && seq_lens.scalar_type() == at::kInt &&
                  query_start_loc.is_contiguous() && seq_lens.is_contiguous(),
              "query_start_loc and seq_lens must be contiguous int32");
  TORCH_CHECK(num_kv_heads > 0 && num_heads % num_kv_heads == 0, "num_heads must be a multiple of num_kv_heads");
  const std::vector<AttentionItem> items =
      plan_attention(query_start_loc.data_ptr<int32_t>(), seq_lens.data_ptr<int32_t>(),
                     static_cast<int>(seq_lens.numel()), static_cast<int>(num_heads), static_cast<int>(num_kv_heads),
                     g_table->vector_width, at::get_num_threads());
  static_assert(sizeof(AttentionItem) == 6 * sizeof(int32_t), "AttentionItem must be six int32");
  at::Tensor out = at::empty({static_cast<int64_t>(items.size()), 6}, at::kInt);
  if (!items.empty()) std::memcpy(out.data_ptr<int32_t>(), items.data(), items.size() * sizeof(AttentionItem));
  return out;
}

AttentionArgs attention_args(const at::Tensor& query, const at::Tensor& kv_cache, const at::Tensor& block_tables,
                             const at::Tensor& query_start_loc, const at::Tensor& seq_lens, const at::Tensor& out,
                             int64_t num_heads, int64_t head_size, double scale, int64_t window, double softcap) {
  check_cpu_same_dtype(kv_cache, query, "kv_cache");
  TORCH_CHECK(kv_cache.is_contiguous() && kv_cache.dim() == 5 && kv_cache.size(0) == 2 && kv_cache.size(4) == head_size,
              "kv_cache must be contiguous [2, blocks, block_size, num_kv_heads, head_size]");
  TORCH_CHECK(query.dim() == 2 && query.stride(1) == 1 && query.size(1) == num_heads * head_size,
              "query must be [T, num_heads * head_size] with contiguous rows");
  TORCH_CHECK(block_tables.scalar_type() == at::kInt && block_tables.dim() == 2 && block_tables.stride(1) == 1,
              "block_tables must be int32 [S, max_blocks] with contiguous rows");
  TORCH_CHECK(query_start_loc.scalar_type() == at::kInt && seq_lens.scalar_type() == at::kInt &&
                  query_start_loc.is_contiguous() && seq_lens.is_contiguous(),
              "query_start_loc and seq_lens must be contiguous int32");
  return {dtype_of(query), query.data_ptr(), query.stride(0), kv_cache[0].data_ptr(), kv_cache[1].data_ptr(),
          kv_cache.stride(1), out.data_ptr(), block_tables.data_ptr<int32_t>(), block_tables.stride(0),
          query_start_loc.data_ptr<int32_t>(), seq_lens.data_ptr<int32_t>(), static_cast<int>(num_heads),
          static_cast<int>(kv_cache.size(3)), static_cast<int>(head_size), static_cast<int>(kv_cache.size(2)),
          static_cast<float>(scale), static_cast<int>(window), static_cast<float>(softcap)};
}

// Attention of every query row over the cache (this step's keys must already be written).
// Items come from plan_attention; threads take them one at a time from a shared counter.
at::Tensor paged_attention(const at::Tensor& query, const at::Tensor& kv_cache, const at::Tensor& block_tables,
                           const at::Tensor& query_start_loc, const at::Tensor& seq_lens, const at::Tensor& items,
                           int64_t num_heads, int64_t head_size, double scale, int64_t window, double softcap) {
  TORCH_CHECK(items.scalar_type() == at::kInt && items.is_contiguous() && items.dim() == 2 && items.size(1) == 6,
              "items must come from plan_attention");
  at::Tensor out = at::empty({query.size(0), num_heads * head_size}, query.options());
  const AttentionArgs args = attention_args(query, kv_cache, block_tables, query_start_loc, seq_lens, out, num_heads,
                                            head_size, scale, window, softcap);
  const auto* work = reinterpret_cast<const AttentionItem*>(items.data_ptr<int32_t>());
  const int64_t count = items.size(0);
  const int64_t scratch_floats = g_table->attention_scratch_floats(args);
  std::atomic<int64_t> next{0};
  const int64_t tasks = std::min<int64_t>(at::get_num_threads(), count);
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
    std::vector<float> scratch(scratch_floats);
    for (int64_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
      g_table->attention(args, work, i, i + 1, scratch.data());
    }
  });
  return out;
}

// One token per row of logits [rows, vocab] (float32, contiguous rows): a draw from
// softmax(logits / temperature) at uniform[row], or the argmax where the temperature is 0.
at::Tensor sample_categorical(const at::Tensor& logits, const at::Tensor& temperature, const at::Tensor& uniform) {
  TORCH_CHECK(logits.device().is_cpu() && logits.scalar_type() == at::kFloat && logits.dim() == 2 &&
                  logits.stride(1) == 1,
              "logits must be float32 [rows, vocab] with contiguous rows");
  const int64_t rows = logits.size(0);
  for (const at::Tensor* t : {&temperature, &uniform}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat && t->is_contiguous() && t->numel() == rows,
                "temperature and uniform must be contiguous float32 [rows]");
  }
  at::Tensor out = at::empty({rows}, at::kLong);
  const SampleArgs args = {logits.data_ptr<float>(), logits.stride(0), logits.size(1), temperature.data_ptr<float>(),
                           uniform.data_ptr<float>(), out.data_ptr<int64_t>()};
  for_rows(rows, 2 * logits.size(1), [&](int64_t b, int64_t e) { g_table->sample(args, b, e); });
  return out;
}

std::string isa() { return g_table->name; }

std::string set_isa(const std::string& name) {
  g_table = select_table(name);
  return g_table->name;
}

}  // namespace
}  // namespace llmrt_cpu

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace llmrt_cpu;
  m.doc() = "llmrt CPU kernels: norms, rotary, activation, KV cache writes, paged attention and sampling";
  m.def("isa", &isa, "the instruction-set build in use");
  m.def("set_isa", &set_isa, "use build NAME ('auto' for the best); returns the build chosen");
  m.def("supported_isas", &supported_isas, "builds this CPU can run, best first");
  m.def("rms_norm", &rms_norm);
  m.def("fused_add_rms_norm", &fused_add_rms_norm);
  m.def("rotary_embedding", &rotary_embedding);
  m.def("qk_norm_rotary", &qk_norm_rotary);
  m.def("silu_and_mul", &silu_and_mul);
  m.def("write_kv_cache", &write_kv_cache);
  m.def("plan_attention", &plan_attention_items);
  m.def("paged_attention", &paged_attention);
  m.def("sample_categorical", &sample_categorical);
  m.def("pack_panels", &pack_panels, "a float32 weight [N, K] packed for panel_linear");
  m.def("panel_linear", &panel_linear, "x [M, K] @ W^T (+ bias) on a weight packed by pack_panels",
        py::arg("x"), py::arg("panels"), py::arg("n"), py::arg("bias") = py::none());
}
