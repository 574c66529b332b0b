// panel_linear.cpp: float32 matrix products on PyTorch's batch-reduce GEMM micro-kernel.
//
// The weight [N, K] is packed once into column panels [ceil(N / 64), K, 64] (each panel 64 output
// columns, row k holding their k-th weights; the last panel zero-padded). A product multiplies
// row chunks of x by panels with at::native::cpublas::brgemm, which on x86-64 runs oneDNN's brgemm
// micro-kernel (the one oneDNN's own inner product uses: results are bitwise the same) and
// elsewhere PyTorch's gemm. The loops around it are ours because oneDNN's primitive API costs
// about 20 us of host time per call, which is most of a small decode product; the kernel
// lookup here is a hash-map probe. PyTorch generates a kernel for each row count on its first
// use (per thread, cached): rows go in chunks of at most kRowChunk, so there are few of them.
//
// Threads split the panels, each thread keeping its panels contiguous; rows go in chunks of
// kRowChunk, chunk by chunk, so a chunk of x stays in the cache while the thread's panels pass.
#include "panel_linear.h"

#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>

#include <algorithm>

namespace llmrt_cpu {
namespace {

constexpr int64_t kPanelWidth = 64;
constexpr int64_t kRowChunk = 128;

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
  const int64_t m = x.size(0), k = x.size(1), lda = x.stride(0);
  at::Tensor out = at::empty({m, n}, x.options());
  if (m == 0 || n == 0) return out;
  const float* a = x.data_ptr<float>();
  const float* w = panels.data_ptr<float>();
  const float* b = bias.has_value() ? bias->data_ptr<float>() : nullptr;
  float* c = out.data_ptr<float>();
  at::parallel_for(0, panels.size(0), 1, [&](int64_t first, int64_t last) {
    for (int64_t row = 0; row < m; row += kRowChunk) {
      const int64_t rows = std::min(kRowChunk, m - row);
      for (int64_t p = first; p < last; ++p) {
        const int64_t col = p * kPanelWidth, cols = std::min(kPanelWidth, n - col);
        float* tile = c + row * n + col;
        at::native::cpublas::brgemm(rows, cols, k, lda, kPanelWidth, n, false, a + row * lda, w + p * k * kPanelWidth,
                                    tile, false);
        if (b != nullptr) {
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < cols; ++j) tile[r * n + j] += b[col + j];
          }
        }
      }
    }
  });
  return out;
}

}  // namespace llmrt_cpu
