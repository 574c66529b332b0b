// The kernels built for the generic instruction set (flags: see setup.py's ISA_BUILDS).
#define LLMRT_TABLE_FN table_generic
#define LLMRT_TABLE_NAME "generic"
#include "kernel_table.h"
