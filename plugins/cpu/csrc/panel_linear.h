// panel_linear.h: float32 products x @ W^T on PyTorch's brgemm micro-kernel, weights packed once.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace llmrt_cpu {

// The float32 CPU weight [N, K] packed into column panels [ceil(N / 64), K, 64].
at::Tensor pack_panels(const at::Tensor& weight);

// x [M, K] @ W^T (+ bias [N]) -> [M, N], for W [N, K] packed by pack_panels.
at::Tensor panel_linear(const at::Tensor& x, const at::Tensor& panels, int64_t n,
                        const std::optional<at::Tensor>& bias);

}  // namespace llmrt_cpu
