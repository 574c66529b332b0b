// panel_linear.cpp: float32 matrix products on PyTorch's batch-reduce GEMM micro-kernel.
//
// The weight [N, K] is packed once into column panels [ceil(N / 64), K, 64] (each panel 64 output
// columns, row k holding their k-th weights; the last panel zero-padded). A product multiplies
// row chunks of x by panels with at::native::cpublas::brgemm, which on x86-64 runs oneDNN's brgemm
// micro-kernel (the one oneDNN's own inner product uses: results are bitwise the same) and
// elsewhere PyTorch's gemm. The loops around it are ours because oneDNN's primitive API costs
// about 20 us of host time per call, which is most of a small decode product; the kernel
// lookup here is a hash-map probe.
//
// PyTorch compiles a kernel for each row count on its first use and keeps it for the thread
// (about 13 KB and 0.1-0.2 ms each). So a chunk goes to the kernel as a multiple of kRowStep rows
// and the rest: at most 15 row counts per weight shape and thread, however many rows steps bring.
//
// Work items are (row chunk, panel) tiles, chunk by chunk. Threads take the panels of each chunk
// in contiguous runs (a chunk of x stays in the cache while a thread's panels pass), and split
// the chunks too when there are fewer panels than threads.
#include "panel_linear.h"

#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>

#include <algorithm>
#include <utility>

namespace llmrt_cpu {
namespace {

constexpr int64_t kPanelWidth = 64;
constexpr int64_t kRowChunk = 64;
constexpr int64_t kRowStep = 8;

struct Product {
  const float* x;  // [m, k], rows lda apart
  int64_t lda;
  const float* panels;  // [ceil(n / 64), k, 64]
  const float* bias;    // [n] or null
  float* out;           // [m, n]
  int64_t m, n, k;
};

// Rows [row, row + kRowChunk) of x (fewer at the end) times panel p, written (plus the bias) to
// their place in out: a multiple of kRowStep rows, then the rest, so that the kernel sees at most
// 15 row counts.
void multiply_tile(const Product& pr, int64_t row, int64_t p) {
  const int64_t rows = std::min(kRowChunk, pr.m - row);
  const int64_t col = p * kPanelWidth, cols = std::min(kPanelWidth, pr.n - col);
  const float* w = pr.panels + p * pr.k * kPanelWidth;
  float* tile = pr.out + row * pr.n + col;
  const int64_t bulk = rows / kRowStep * kRowStep;
  for (const auto& [first, count] : {std::pair<int64_t, int64_t>{0, bulk}, {bulk, rows - bulk}}) {
    if (count == 0) continue;
    at::native::cpublas::brgemm(count, cols, pr.k, pr.lda, kPanelWidth, pr.n, false,
                                pr.x + (row + first) * pr.lda, w, tile + first * pr.n, false);
  }
  if (pr.bias != nullptr) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) tile[r * pr.n + j] += pr.bias[col + j];
    }
  }
}

}  // namespace

at::Tensor pack_panels(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kFloat && weight.device().is_cpu(),
              "pack_panels expects a float32 CPU weight [N, K]");
  const at::Tensor w = weight.contiguous();
  const int64_t n = w.size(0), k = w.size(1);
  const int64_t full = n / kPanelWidth, rest = n % kPanelWidth;
  at::Tensor panels = at::empty({full + (rest > 0), k, kPanelWidth}, weight.options());
  if (full > 0) {  // rows [P * 64, K] seen as [P, 64, K], written as [P, K, 64]; no other copy
    panels.narrow(0, 0, full).copy_(w.narrow(0, 0, full * kPanelWidth).view({full, kPanelWidth, k}).transpose(1, 2));
  }
  if (rest > 0) {  // the partial last panel, zero-padded
    at::Tensor last = panels.select(0, full);
    last.zero_();
    last.narrow(1, 0, rest).copy_(w.narrow(0, full * kPanelWidth, rest).t());
  }
  return panels;
}

at::Tensor panel_linear(const at::Tensor& x, const at::Tensor& panels, int64_t n,
                        const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.device().is_cpu() && x.stride(1) == 1,
              "panel_linear expects float32 CPU rows x [M, K] with a contiguous last dimension");
  TORCH_CHECK(panels.dim() == 3 && panels.scalar_type() == at::kFloat && panels.is_contiguous() &&
                  panels.size(2) == kPanelWidth && panels.size(1) == x.size(1) &&
                  panels.size(0) == (n + kPanelWidth - 1) / kPanelWidth,
              "panels must come from pack_panels for a weight [", n, ", ", x.size(1), "]");
  TORCH_CHECK(!bias.has_value() || (bias->scalar_type() == at::kFloat && bias->device().is_cpu() &&
                                     bias->is_contiguous() && bias->numel() == n),
              "bias must be a contiguous float32 CPU tensor [N]");
  const int64_t m = x.size(0);
  at::Tensor out = at::empty({m, n}, x.options());
  if (m == 0 || n == 0) return out;
  const Product pr{x.data_ptr<float>(), x.stride(0), panels.data_ptr<float>(),
                   bias.has_value() ? bias->data_ptr<float>() : nullptr, out.data_ptr<float>(), m, n, x.size(1)};
  const int64_t num_panels = panels.size(0), chunks = (m + kRowChunk - 1) / kRowChunk;
  if (chunks == 1 || num_panels >= at::get_num_threads()) {
    // Each thread a contiguous run of panels, for every chunk in turn.
    at::parallel_for(0, num_panels, 1, [&](int64_t first, int64_t last) {
      for (int64_t row = 0; row < m; row += kRowChunk) {
        for (int64_t p = first; p < last; ++p) multiply_tile(pr, row, p);
      }
    });
  } else {
    // Fewer panels than threads: the (chunk, panel) tiles, chunk-major, split as one range.
    at::parallel_for(0, chunks * num_panels, 1, [&](int64_t first, int64_t last) {
      for (int64_t t = first; t < last; ++t) multiply_tile(pr, t / num_panels * kRowChunk, t % num_panels);
    });
  }
  return out;
}

}  // namespace llmrt_cpu
