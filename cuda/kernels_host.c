/*
 * Host versions of the sample kernels in kernels.cu, with the same C
 * signatures. On the host backend a stream handle is what
 * sched_launch_host_func_native accepts, so a "kernel launch" queues a host
 * function that runs in stream order on the stream's worker thread.
 */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "../libsched/include/sched.h"

#define GS_API __attribute__((visibility("default")))

typedef struct fill_args {
  uint32_t *dst;
  uint32_t value;
  uint64_t count;
} fill_args;

static void run_fill(void *p) {
  fill_args *a = p;
  for (uint64_t i = 0; i < a->count; i++) a->dst[i] = a->value + (uint32_t)i;
  free(a);
}

/** Writes value + i into dst[i] for i < count, in stream order. */
GS_API int32_t gs_fill_u32(void *stream, void *dst, uint32_t value, uint64_t count) {
  fill_args *a = malloc(sizeof *a);
  if (a == NULL) return SCHED_ERR_OUT_OF_MEMORY;
  *a = (fill_args){dst, value, count};
  int32_t status = sched_launch_host_func_native(stream, run_fill, a);
  if (status != SCHED_OK) free(a);
  return status;
}

static void run_spin(void *p) {
  uint64_t ns = (uint64_t)(uintptr_t)p;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  do {
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((uint64_t)(now.tv_sec - start.tv_sec) * 1000000000ull + (uint64_t)(now.tv_nsec - start.tv_nsec) < ns);
}

/** Keeps the stream busy for ns nanoseconds (blocks is ignored: one CPU worker). */
GS_API int32_t gs_spin_ns(void *stream, uint64_t ns, int32_t blocks) {
  (void)blocks;
  return sched_launch_host_func_native(stream, run_spin, (void *)(uintptr_t)ns);
}

typedef struct sm_ids_args {
  uint32_t *dst;
  int32_t blocks;
} sm_ids_args;

static void run_sm_ids(void *p) {
  sm_ids_args *a = p;
  /* One worker thread stands for the whole simulated device: "SM" 0. */
  for (int32_t i = 0; i < a->blocks; i++) a->dst[i] = 0;
  free(a);
}

/** Writes 0 (the worker, the host's only "SM") into dst[0..blocks); ns is ignored. */
GS_API int32_t gs_sm_ids(void *stream, void *dst, int32_t blocks, uint64_t ns) {
  (void)ns;
  if (blocks <= 0) return SCHED_ERR_INVALID_ARGUMENT;
  sm_ids_args *a = malloc(sizeof *a);
  if (a == NULL) return SCHED_ERR_OUT_OF_MEMORY;
  *a = (sm_ids_args){dst, blocks};
  int32_t status = sched_launch_host_func_native(stream, run_sm_ids, a);
  if (status != SCHED_OK) free(a);
  return status;
}

typedef struct wait_flag_args {
  const volatile uint32_t *flag;
  uint64_t timeout_ns;
} wait_flag_args;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void run_wait_flag(void *p) {
  wait_flag_args *a = p;
  uint64_t start = now_ns();
  while (*a->flag == 0 && now_ns() - start < a->timeout_ns) {
  }
  free(a);
}

/** Holds the stream until *flag is set or timeout_ns passes. */
GS_API int32_t gs_wait_flag(void *stream, void *flag, uint64_t timeout_ns) {
  wait_flag_args *a = malloc(sizeof *a);
  if (a == NULL) return SCHED_ERR_OUT_OF_MEMORY;
  *a = (wait_flag_args){flag, timeout_ns};
  int32_t status = sched_launch_host_func_native(stream, run_wait_flag, a);
  if (status != SCHED_OK) free(a);
  return status;
}
