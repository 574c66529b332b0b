// dispatch.cpp: runtime detection of instruction sets.
//
// The x86 builds are compiled only on x86-64 (setup.py defines LLMRT_X86_BUILDS); elsewhere
// only the portable build exists. Detection uses the compiler's cpuid wrapper, which also
// checks that the operating system saves the wider registers.
#include "dispatch.h"

#include <stdexcept>

namespace llmrt_cpu {
namespace {

struct Build {
  const char* name;
  const KernelTable* (*table)();
  bool (*supported)();
};

#if defined(LLMRT_X86_BUILDS)
bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
bool has_avx512_bf16() { return has_avx512() && __builtin_cpu_supports("avx512bf16"); }
#endif
bool always() { return true; }

const std::vector<Build>& builds() {  // best first
  static const std::vector<Build> all = {
#if defined(LLMRT_X86_BUILDS)
      {"avx512_bf16", table_avx512_bf16, has_avx512_bf16},
      {"avx512", table_avx512, has_avx512},
      {"avx2", table_avx2, has_avx2},
#endif
      {"generic", table_generic, always},
  };
  return all;
}

}  // namespace

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (const Build& b : builds())
    if (b.supported()) names.emplace_back(b.name);
  return names;
}

const KernelTable* select_table(const std::string& name) {
  for (const Build& b : builds()) {
    if (!b.supported()) continue;
    if (name == "auto" || name == b.name) return b.table();
  }
  std::string known;
  for (const std::string& n : supported_isas()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("instruction set '" + name + "' is not available here (available: " + known + ")");
}

}  // namespace llmrt_cpu
