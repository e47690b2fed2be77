/* Built instead of the CUDA backend when CMake finds no CUDA toolkit. */
#include "backend.h"

const backend_ops *cuda_backend_ops(void) { return NULL; }

void cuda_quiesce_at_exit(void) {}
