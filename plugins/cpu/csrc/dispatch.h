// dispatch.h: choose the kernel build for the CPU this process runs on.
#pragma once

#include <string>
#include <vector>

#include "kernels.h"

namespace llmrt_cpu {

// Builds this CPU can run, best first (always ends with "generic").
std::vector<std::string> supported_isas();

// The table of build `name` ("auto": the best supported one). Throws std::invalid_argument
// naming the supported builds when `name` is unknown, not compiled in, or not supported here.
const KernelTable* select_table(const std::string& name);

}  // namespace llmrt_cpu
