// read_patterns.cpp: how fast one thread reads a paged KV cache in the orders decode attention
// could use. Why plugins/cpu/csrc/attention.h reads whole sequences row by row, and why the CPU
// backend's KV blocks hold 128 tokens (BENCHMARKS.md, section CPU).
//
//   g++ -O2 -mavx512f -o /tmp/read_patterns plugins/cpu/benchmarks/read_patterns.cpp && /tmp/read_patterns
//   (run two copies at once for the two-thread figures)
//
// The cache: token-major rows of 4 KV heads x 64 float32 channels (1 KiB a row), blocks of T rows
// placed at random in 1 GiB of huge-page-backed memory; 32 sequences of 192 positions over 48
// layers, so every pass comes from memory. GB/s counts each byte of every row once.
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

namespace {

constexpr int kHeads = 4, kDim = 64, kRow = kHeads * kDim;  // floats per cache row
constexpr int kSeqs = 32, kContext = 192, kLayers = 48;
constexpr size_t kPoolRows = size_t{1} << 20;  // 1 GiB of rows

enum class Order { kHeadByHead, kRows, kGroupsHeadByHead };

float* g_pool = nullptr;

double read_gbps(int block_rows, Order order, int group) {
  const int per_seq = kContext / block_rows;
  const size_t block_floats = static_cast<size_t>(block_rows) * kRow;
  std::vector<int> ids(kPoolRows / block_rows);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int>(i);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(block_rows));
  __m512 acc = _mm512_setzero_ps();
  auto add = [&](const float* p) { acc = _mm512_add_ps(acc, _mm512_loadu_ps(p)); };
  const auto start = std::chrono::steady_clock::now();
  for (int layer = 0; layer < kLayers; ++layer) {
    for (int seq = 0; seq < kSeqs; ++seq) {
      const int* table = &ids[(layer * kSeqs + seq) * per_seq];
      for (int b = 0; b < per_seq; ++b) {
        const float* block = g_pool + table[b] * block_floats;
        if (order == Order::kRows) {  // every head of a row before the next row
          for (size_t i = 0; i < block_floats; i += 16) add(block + i);
          continue;
        }
        const int step = order == Order::kHeadByHead ? block_rows : group;
        for (int t0 = 0; t0 < block_rows; t0 += step) {  // head by head over `step` rows
          for (int h = 0; h < kHeads; ++h) {
            for (int t = t0; t < t0 + step; ++t) {
              for (int v = 0; v < kDim; v += 16) add(block + t * kRow + h * kDim + v);
            }
          }
        }
      }
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  float out[16];
  _mm512_storeu_ps(out, acc);
  if (out[0] < 0) std::printf("impossible\n");  // keeps the loads
  return static_cast<double>(kLayers) * kSeqs * per_seq * block_floats * sizeof(float) / seconds / 1e9;
}

}  // namespace

int main() {
  const size_t bytes = kPoolRows * kRow * sizeof(float), huge = size_t{2} << 20;
  auto* raw = static_cast<char*>(mmap(nullptr, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  g_pool = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(raw) + huge - 1) & ~(huge - 1));
  madvise(g_pool, bytes, MADV_HUGEPAGE);
  for (size_t i = 0; i < bytes / sizeof(float); i += 16) g_pool[i] = 1.0f;
  for (int block_rows : {16, 64, 128}) {
    std::printf("blocks of %3d rows: head by head %.1f GB/s, rows in order %.1f, 4-row groups head by head %.1f\n",
                block_rows, read_gbps(block_rows, Order::kHeadByHead, 0), read_gbps(block_rows, Order::kRows, 0),
                read_gbps(block_rows, Order::kGroupsHeadByHead, 4));
  }
}
