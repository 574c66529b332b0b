// The kernels built for the avx2 instruction set (flags: see setup.py's ISA_BUILDS).
#define LLMRT_TABLE_FN table_avx2
#define LLMRT_TABLE_NAME "avx2"
#include "kernel_table.h"
