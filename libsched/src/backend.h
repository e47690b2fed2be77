/*
 * The table of functions each backend implements. The dispatch layer
 * (sched.c) validates handles, pointers and ranges before calling in, so
 * a backend receives only live objects and in-bounds ranges. Objects are
 * the backend's own opaque pointers; the dispatch layer maps handles to them.
 */
#ifndef GPUSCHED_BACKEND_H
#define GPUSCHED_BACKEND_H

#include <stdbool.h>

#include "../include/sched.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct backend_ops {
  const char *name;
  /* Works before init. */
  int32_t (*device_count)(int32_t *out_count);
  /* Starts every device (host: host_devices of them), or none; device is
   * the default one, already checked against the count. Writes how many. */
  int32_t (*init)(int32_t device, int32_t host_devices, uint64_t host_capacity, int32_t *out_devices);
  /* Called after the dispatch layer destroyed every object. */
  void (*shutdown)(void);
  int32_t (*device_info)(sched_device_info *out);
  int32_t (*mem_info)(uint64_t *out_free, uint64_t *out_total);

  /* priority already clamped to the device range; partition: a live
   * partition object, or NULL for the whole device. */
  int32_t (*stream_create)(int32_t priority, void *partition, void **out_stream);
  /* Moves stream to partition (NULL: whole device), keeping its order;
   * stream_native may answer differently afterwards. */
  int32_t (*stream_rebind)(void *stream, void *partition);
  int32_t (*stream_destroy)(void *stream);
  int32_t (*stream_query)(void *stream);
  int32_t (*stream_synchronize)(void *stream);
  void *(*stream_native)(void *stream);
  int32_t (*stream_wait_event)(void *stream, void *event);
  int32_t (*launch_host_func)(void *stream, sched_host_fn fn, void *user_data);
  int32_t (*stream_notify)(void *stream, uint32_t token);

  /* n >= 1, counts > 0, their sum <= the device's SMs. Writes n + 1
   * partitions (the rest last, NULL when no SMs remain) and their SM counts,
   * or makes none. */
  int32_t (*partition_create)(const uint32_t *sm_counts, uint32_t n, void **out_partitions,
                              uint32_t *out_sm_given);
  /* No stream is bound to it any more (streams that left may still run). */
  int32_t (*partition_destroy)(void *partition);
  /* One partition over the groups set in mask (bit g: group g of the one
   * split; never 0, never past sm_groups) plus the split's remainder when
   * with_remainder; its real SM count in out_sm_given. */
  int32_t (*partition_create_set)(uint64_t mask, bool with_remainder, void **out_partition,
                                  uint32_t *out_sm_given);

  int32_t (*event_create)(uint32_t flags, void **out_event);
  int32_t (*event_destroy)(void *event);
  int32_t (*event_record)(void *event, void *stream);
  int32_t (*event_query)(void *event);
  int32_t (*event_synchronize)(void *event);
  int32_t (*event_elapsed_ms)(void *start, void *end, float *out_ms);
  int32_t (*event_notify)(void *event, uint32_t token);

  int32_t (*pool_create)(uint64_t max_bytes, uint64_t release_threshold, void **out_pool);
  int32_t (*pool_destroy)(void *pool);
  int32_t (*pool_trim)(void *pool, uint64_t keep_bytes);
  int32_t (*pool_reserved)(void *pool, uint64_t *out_reserved);
  int32_t (*malloc_async)(void *pool, void *stream, uint64_t bytes, void **out_ptr);
  int32_t (*free_async)(void *ptr, void *stream);
  int32_t (*malloc_sync)(uint64_t bytes, void **out_ptr);
  int32_t (*free_sync)(void *ptr);
  int32_t (*host_alloc)(uint64_t bytes, void **out_ptr);
  int32_t (*host_free)(void *ptr);
  /* dst/src already include offsets. */
  int32_t (*memcpy_async)(void *dst, const void *src, uint64_t bytes, int32_t kind, void *stream);
  int32_t (*memset_async)(void *dst, uint8_t value, uint64_t bytes, void *stream);

  /* Several devices. Both devices are initialized ones. */
  int32_t (*can_access_peer)(int32_t device, int32_t peer, int32_t *out_can);
  /* A device-to-device copy between two devices (dst/src include offsets),
   * in order on stream (of either device). */
  int32_t (*memcpy_peer)(void *dst, int32_t dst_device, const void *src, int32_t src_device, uint64_t bytes,
                         void *stream);

  /* Tests only: arms `count` failures of `kind` (already checked). NULL
   * where the backend has no fault injection (cuda). */
  void (*inject_fault)(int32_t kind, uint32_t count);

  /* Makes device current for code outside libsched on the calling thread
   * (cuda: cudaSetDevice, so the user's kernels and libraries such as
   * cuBLAS launch there). NULL where nothing needs it (host). */
  int32_t (*bind_device)(int32_t device);
} backend_ops;

/* Defined by each backend. cuda_backend_ops() returns NULL when the CUDA
 * backend was not built. */
const backend_ops *host_backend_ops(void);
const backend_ops *cuda_backend_ops(void);

/* Shared services (errors.c, completions.c) that backends call. */

/** Records the calling thread's last error and returns status. printf-style. */
int32_t sched_fail(int32_t status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/**
 * The device the current backend call acts on: the dispatch layer sets it
 * before every call into a backend (the handle's device, or for a
 * creation the calling thread's current device). Backends create objects
 * there and bind it (CUDA: cudaSetDevice) before using a handle.
 */
int32_t sched_acting_device(void);

/** For a backend's init, which prepares every device in turn (and vmm.c, which acts per device). */
void sched_set_acting_device(int32_t device);

/** How many devices are initialized (0 when none). */
int32_t sched_devices_initialized(void);

/** Creates an event on the device of stream (live), for internal waits. */
int32_t sched_event_create_for(uint32_t stream, uint32_t *out_event);

/** Queues a completed token; callable from any thread, including CUDA's callback thread. */
void completions_push(uint32_t token, int32_t status);
/* At process exit (sched.c's atexit handler): park every worker at its next step. */
void host_streams_quiesce(void);
void cuda_quiesce_at_exit(void);
/* Drops queued completions and wakes every waiter (a new owner takes over). */
void completions_reset(void);
/* At process exit: waiters return, later pushes are dropped, the notifier calls nothing more. */
void completions_exit(void);

#ifdef __cplusplus
}
#endif

#endif /* GPUSCHED_BACKEND_H */
