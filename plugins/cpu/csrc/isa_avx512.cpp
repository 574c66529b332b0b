// The kernels built for the avx512 instruction set (flags: see setup.py's ISA_BUILDS).
#define LLMRT_TABLE_FN table_avx512
#define LLMRT_TABLE_NAME "avx512"
#include "kernel_table.h"
