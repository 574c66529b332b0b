// Python bindings of llmrt_cuda._C: checks the tensors, then launches on the current stream.
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include "paged_decode_attention.h"

namespace {

void check_rows(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda() && t.dim() == 3 && t.stride(2) == 1, name, ": a CUDA tensor [tokens, heads, head_size]");
  TORCH_CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 && t.stride(0) % 8 == 0 && t.stride(1) % 8 == 0,
              name, ": rows must start on 16-byte boundaries");
}

void paged_decode_attention(torch::Tensor q, torch::Tensor k_new, torch::Tensor v_new, torch::Tensor k_cache,
                            torch::Tensor v_cache, torch::Tensor out, torch::Tensor part_out,
                            torch::Tensor part_stats, torch::Tensor seq_lens, torch::Tensor block_tables,
                            torch::Tensor slot_mapping, int64_t num_splits, double scale) {
  check_rows(q, "q");
  check_rows(k_new, "k_new");
  check_rows(v_new, "v_new");
  check_rows(out, "out");
  TORCH_CHECK(k_new.sizes() == v_new.sizes() && k_new.strides() == v_new.strides() && k_new.size(0) == q.size(0) &&
                  k_new.size(1) == k_cache.size(2) && k_new.size(2) == q.size(2) && k_new.stride(1) == q.size(2),
              "k_new and v_new: [num_seqs, num_kv_heads, head_size], heads contiguous");
  TORCH_CHECK(slot_mapping.scalar_type() == torch::kLong && slot_mapping.size(0) >= q.size(0),
              "slot_mapping: int64, one slot per sequence");
  const auto dtype = q.scalar_type();
  TORCH_CHECK(dtype == torch::kBFloat16 || dtype == torch::kHalf, "q: bfloat16 or float16");
  TORCH_CHECK(k_cache.scalar_type() == dtype && v_cache.scalar_type() == dtype && out.scalar_type() == dtype &&
                  k_new.scalar_type() == dtype && v_new.scalar_type() == dtype,
              "q, the caches and out must share a dtype");
  TORCH_CHECK(k_cache.dim() == 4 && k_cache.stride(3) == 1 && k_cache.sizes() == v_cache.sizes() &&
                  k_cache.strides() == v_cache.strides(),
              "caches: [num_blocks, block_size, num_kv_heads, head_size], same layout for keys and values");
  TORCH_CHECK(reinterpret_cast<uintptr_t>(k_cache.data_ptr()) % 16 == 0 &&
                  reinterpret_cast<uintptr_t>(v_cache.data_ptr()) % 16 == 0 && k_cache.stride(0) % 8 == 0 &&
                  k_cache.stride(1) % 8 == 0 && k_cache.stride(2) % 8 == 0,
              "caches: rows must start on 16-byte boundaries");
  TORCH_CHECK(seq_lens.size(0) >= q.size(0) && block_tables.size(0) >= q.size(0),
              "seq_lens and block_tables need a row per query token");
  TORCH_CHECK(seq_lens.scalar_type() == torch::kInt && block_tables.scalar_type() == torch::kInt &&
                  block_tables.stride(1) == 1,
              "seq_lens and block_tables: int32, block table rows contiguous");
  const int64_t head_size = q.size(2), num_heads = q.size(1), num_kv_heads = k_cache.size(2);
  TORCH_CHECK(head_size == 64 || head_size == 128 || head_size == 256, "head_size 64, 128 or 256");
  TORCH_CHECK(k_cache.size(3) == head_size && num_heads % num_kv_heads == 0 && num_heads / num_kv_heads <= 8,
              "1 to 8 query heads per kv head");
  TORCH_CHECK(out.size(0) == q.size(0) && out.size(1) == num_heads && out.size(2) == head_size,
              "out: [num_seqs, num_heads, head_size]");
  TORCH_CHECK(num_splits >= 1, "num_splits >= 1");
  if (num_splits > 1) {
    TORCH_CHECK(part_out.scalar_type() == torch::kFloat && part_stats.scalar_type() == torch::kFloat &&
                    part_out.is_contiguous() && part_stats.is_contiguous(),
                "several splits need contiguous float32 part_out and part_stats");
    TORCH_CHECK(part_out.dim() == 4 && part_out.size(0) >= q.size(0) && part_out.size(1) == num_heads &&
                    part_out.size(2) == num_splits && part_out.size(3) == head_size,
                "part_out: [num_seqs, num_heads, num_splits, head_size]");
    TORCH_CHECK(part_stats.dim() == 4 && part_stats.size(0) >= q.size(0) && part_stats.size(1) == num_heads &&
                    part_stats.size(2) == num_splits && part_stats.size(3) == 2,
                "part_stats: [num_seqs, num_heads, num_splits, 2]");
  }
  for (const auto* t : {&k_new, &v_new, &k_cache, &v_cache, &out, &seq_lens, &block_tables, &slot_mapping}) {
    TORCH_CHECK(t->device() == q.device(), "every tensor must be on the queries' device");
  }
  TORCH_CHECK(seq_lens.is_contiguous() && slot_mapping.is_contiguous(), "seq_lens and slot_mapping: contiguous");
  TORCH_CHECK(q.size(0) <= 65535, "at most 65535 sequences in one launch (the grid's second dimension)");
  if (q.size(0) == 0) return;
  llmrt_cuda::DecodeArgs args{};
  args.q = q.data_ptr();
  args.k_new = k_new.data_ptr();
  args.v_new = v_new.data_ptr();
  args.k_cache = k_cache.data_ptr();
  args.v_cache = v_cache.data_ptr();
  args.slot_mapping = slot_mapping.data_ptr<int64_t>();
  args.stride_nt = k_new.stride(0);
  args.out = out.data_ptr();
  args.part_out = num_splits > 1 ? part_out.data_ptr<float>() : nullptr;
  args.part_stats = num_splits > 1 ? part_stats.data_ptr<float>() : nullptr;
  args.seq_lens = seq_lens.data_ptr<int>();
  args.block_tables = block_tables.data_ptr<int>();
  args.stride_qt = q.stride(0);
  args.stride_qh = q.stride(1);
  args.stride_ot = out.stride(0);
  args.stride_oh = out.stride(1);
  args.stride_cb = k_cache.stride(0);
  args.stride_cs = k_cache.stride(1);
  args.stride_ch = k_cache.stride(2);
  args.stride_bt = block_tables.stride(0);
  args.num_seqs = static_cast<int>(q.size(0));
  args.num_heads = static_cast<int>(num_heads);
  args.num_kv_heads = static_cast<int>(num_kv_heads);
  args.head_size = static_cast<int>(head_size);
  args.group = static_cast<int>(num_heads / num_kv_heads);
  const int64_t block_size = k_cache.size(1);
  TORCH_CHECK(block_size > 0 && (block_size & (block_size - 1)) == 0, "block size: a power of two");
  args.block_shift = __builtin_ctzll(block_size);
  args.num_splits = static_cast<int>(num_splits);
  args.scale = static_cast<float>(scale);
  const c10::cuda::CUDAGuard guard(q.device());
  const cudaError_t error =
      llmrt_cuda::paged_decode_attention(args, dtype == torch::kBFloat16, c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(error == cudaSuccess, "paged_decode_attention: ", cudaGetErrorString(error));
}

int64_t decode_shared_bytes(int64_t head_size, int64_t group) {
  TORCH_CHECK(head_size == 64 || head_size == 128 || head_size == 256, "head_size 64, 128 or 256");
  TORCH_CHECK(group >= 1 && group <= 8, "1 to 8 query heads per kv head");
  return llmrt_cuda::paged_decode_shared_bytes(static_cast<int>(head_size), static_cast<int>(group));
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "llmrt-cuda's CUDA C++ kernels";
  m.def("paged_decode_attention", &paged_decode_attention,
        "Store each sequence's new key and value in the paged KV cache, then attend from it (one query token "
        "per sequence)",
        py::arg("q"), py::arg("k_new"), py::arg("v_new"), py::arg("k_cache"), py::arg("v_cache"), py::arg("out"),
        py::arg("part_out"), py::arg("part_stats"), py::arg("seq_lens"), py::arg("block_tables"),
        py::arg("slot_mapping"), py::arg("num_splits"), py::arg("scale"));
  m.def("decode_shared_bytes", &decode_shared_bytes,
        "Dynamic shared memory one block of paged_decode_attention needs for a head size and group",
        py::arg("head_size"), py::arg("group"));
}
