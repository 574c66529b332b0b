// kernel_table.h: the KernelTable of one instruction-set build.
//
// Included by exactly one isa_*.cpp, which first defines LLMRT_TABLE_FN (the exported function
// name) and LLMRT_TABLE_NAME, and is compiled with that instruction set's flags.
#pragma once

#include "activation.h"
#include "attention.h"
#include "cache_write.h"
#include "kernels.h"
#include "norm.h"
#include "rotary.h"
#include "sample.h"

namespace llmrt_cpu {
namespace {

constexpr KernelTable kTable = {
    LLMRT_TABLE_NAME,
    Vec::W,
    rms_norm_kernel,
    rotary_kernel,
    silu_and_mul_kernel,
    write_cache_kernel,
    attention_kernel,
    attention_scratch_floats,
    sample_kernel,
};

}  // namespace

const KernelTable* LLMRT_TABLE_FN() { return &kTable; }

}  // namespace llmrt_cpu
