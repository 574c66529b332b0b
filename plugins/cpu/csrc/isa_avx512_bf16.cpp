// The kernels built for the avx512_bf16 instruction set (flags: see setup.py's ISA_BUILDS).
#define LLMRT_TABLE_FN table_avx512_bf16
#define LLMRT_TABLE_NAME "avx512_bf16"
#include "kernel_table.h"
