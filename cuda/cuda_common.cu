/* Error translation, device binding and stream lifetime for the CUDA backend. */
#include <stdarg.h>
#include <stdio.h>

#include "cuda_common.h"

cuda_state g_cuda;

int32_t map_cuda_error(cudaError_t err) {
  switch (err) {
    case cudaSuccess:
      return SCHED_OK;
    case cudaErrorMemoryAllocation:
      return SCHED_ERR_OUT_OF_MEMORY;
    case cudaErrorNotReady:
      return SCHED_ERR_NOT_READY;
    case cudaErrorInvalidValue:
      return SCHED_ERR_INVALID_ARGUMENT;
    case cudaErrorInvalidResourceHandle:
      return SCHED_ERR_INVALID_HANDLE;
    /* All of these mean "CUDA cannot run here", which is what makes the
     * library fall back to the host backend. A stub libcuda (containers
     * without the driver mounted) and a kernel-module/userspace driver
     * mismatch are that case too, not a backend malfunction. */
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorStubLibrary:
    case cudaErrorSystemDriverMismatch:
      return SCHED_ERR_NO_DEVICE;
    default:
      return SCHED_ERR_BACKEND;
  }
}

int32_t cuda_fail(cudaError_t err, const char *fmt, ...) {
  /* The runtime also remembers a non-sticky error as the thread's "last
   * error". We have reported it, so clear it: otherwise the next
   * cudaGetLastError() on this thread (for instance after a user's kernel
   * launch) would return our stale error. Only clear it if it is ours, so
   * an unrelated pending error of the caller is left alone. */
  if (cudaPeekAtLastError() == err) {
    (void)cudaGetLastError();
  }

  /* "Not ready" only comes from queries, where it is an answer and not a
   * failure: no error text is recorded for it. */
  if (err == cudaErrorNotReady) {
    return SCHED_ERR_NOT_READY;
  }

  char what[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return sched_fail(map_cuda_error(err), "%s failed: %s (%s)", what, cudaGetErrorString(err),
                    cudaGetErrorName(err));
}

int32_t bind_device(void) {
  int device = sched_acting_device();
  CUDA_CHECK(cudaSetDevice(device), "cudaSetDevice(%d)", device);
  return SCHED_OK;
}

int32_t stream_release(cuda_stream *st) {
  if (st->refcount.fetch_sub(1, std::memory_order_acq_rel) != 1) {
    return SCHED_OK;
  }
  /* Nobody can reach the object any more (the watcher dropped its
   * reference only once both queues were empty), so it is freed even if
   * CUDA complained; the first error is still reported. */
  cudaStream_t extra[3] = {st->shadow, st->direct.waker, st->indirect.waker};
  /* The last reference may drop on any thread (the watcher's included):
   * act on the stream's own device. */
  cudaError_t first = cudaSetDevice(st->device);
  for (cudaStream_t s : extra) {
    if (s != NULL) {
      cudaError_t err = cudaStreamDestroy(s);
      if (first == cudaSuccess) first = err;
    }
  }
  int32_t st_status = first != cudaSuccess ? cuda_fail(first, "cudaStreamDestroy") : SCHED_OK;
  /* Through the partition, which keeps its green context until this
   * stream's last work is done. */
  int32_t retire_status = partition_stream_retire(st->partition, st->s, NULL);
  free(st);
  return st_status != SCHED_OK ? st_status : retire_status;
}
