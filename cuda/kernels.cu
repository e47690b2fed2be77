/*
 * A tiny kernel library for tests and benchmarks of the CUDA backend. It
 * stands in for "user kernels": each function launches on a stream that
 * libsched handed out (sched_stream_native) and reports the launch result.
 *
 * Return values are cudaError_t as int32_t (0 = cudaSuccess), the result of
 * cudaGetLastError() after the launch, so configuration errors show up at
 * once; faults during execution surface later, at the next synchronization.
 */
#include <cuda_runtime.h>

#include <stdint.h>

#define GS_API extern "C" __attribute__((visibility("default")))

/*
 * A kernel launch fails on a stream of a device other than the calling
 * thread's current one, and with several GPUs the current device is
 * whichever libsched last acted on: make the stream's device current
 * first, as a user's library must too. A failure here (a stream whose
 * device cannot be read) is left to the launch to report.
 */
static void use_device_of(void *stream) {
  int device = 0;
  if (cudaStreamGetDevice((cudaStream_t)stream, &device) != cudaSuccess || cudaSetDevice(device) != cudaSuccess) {
    (void)cudaGetLastError();
  }
}

/* Threads per block of gs_fill_u32. */
#define FILL_THREADS 256u
/* Cap on blocks of gs_fill_u32: enough to fill any current GPU many times
 * over; the grid-stride loop covers the rest of larger counts. */
#define FILL_MAX_BLOCKS 4096u

/* dst[i] = value + i (wrapping), so tests can check both that every element
 * was written and that it landed at the right index. */
static __global__ void gs_fill_u32_kernel(uint32_t *dst, uint32_t value, uint64_t count) {
  uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
    dst[i] = value + (uint32_t)i;
  }
}

/* The global nanosecond timer: unlike clock64(), it counts wall time at a
 * fixed rate, independent of SM clock boosts and throttling. */
__device__ __forceinline__ uint64_t global_timer_ns(void) {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

/* Busy-waits for ns nanoseconds, occupying its SM slot (no sleeping), so a
 * stream stays busy for a known time. */
static __global__ void gs_spin_ns_kernel(uint64_t ns) {
  uint64_t start = global_timer_ns();
  while (global_timer_ns() - start < ns) {
  }
}

/* Each block writes the id of the SM it ran on, after holding that SM for
 * ns nanoseconds so that the blocks spread over every SM they may use. */
static __global__ void gs_sm_ids_kernel(uint32_t *dst, uint64_t ns) {
  uint64_t start = global_timer_ns();
  while (global_timer_ns() - start < ns) {
  }
  uint32_t sm;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
  dst[blockIdx.x] = sm;
}

/* Holds the stream until the host sets *flag (pinned host memory) or
 * timeout_ns passes, so a test can keep work queued for as long as it needs
 * without guessing a duration. */
static __global__ void gs_wait_flag_kernel(const volatile uint32_t *flag, uint64_t timeout_ns) {
  uint64_t start = global_timer_ns();
  while (*flag == 0 && global_timer_ns() - start < timeout_ns) {
  }
}

GS_API int32_t gs_fill_u32(void *stream, void *dst, uint32_t value, uint64_t count) {
  use_device_of(stream);
  /* A grid of zero blocks is a launch error; filling nothing is not. */
  if (count == 0) {
    return (int32_t)cudaSuccess;
  }
  uint64_t blocks = (count + FILL_THREADS - 1) / FILL_THREADS;
  if (blocks > FILL_MAX_BLOCKS) {
    blocks = FILL_MAX_BLOCKS;
  }
  gs_fill_u32_kernel<<<(unsigned int)blocks, FILL_THREADS, 0, (cudaStream_t)stream>>>((uint32_t *)dst, value,
                                                                                     count);
  return (int32_t)cudaGetLastError();
}

GS_API int32_t gs_spin_ns(void *stream, uint64_t ns, int32_t blocks) {
  use_device_of(stream);
  if (blocks <= 0) {
    return (int32_t)cudaErrorInvalidValue;
  }
  /* One warp per block: the point is to hold the stream (and some SM
   * slots), not to load the GPU. */
  gs_spin_ns_kernel<<<(unsigned int)blocks, 32, 0, (cudaStream_t)stream>>>(ns);
  return (int32_t)cudaGetLastError();
}

GS_API int32_t gs_sm_ids(void *stream, void *dst, int32_t blocks, uint64_t ns) {
  use_device_of(stream);
  if (blocks <= 0) {
    return (int32_t)cudaErrorInvalidValue;
  }
  gs_sm_ids_kernel<<<(unsigned int)blocks, 32, 0, (cudaStream_t)stream>>>((uint32_t *)dst, ns);
  return (int32_t)cudaGetLastError();
}

GS_API int32_t gs_wait_flag(void *stream, void *flag, uint64_t timeout_ns) {
  use_device_of(stream);
  gs_wait_flag_kernel<<<1, 1, 0, (cudaStream_t)stream>>>((const volatile uint32_t *)flag, timeout_ns);
  return (int32_t)cudaGetLastError();
}
