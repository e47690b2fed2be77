/*
 * What the CUDA backend's files share: error translation, the device
 * state set by init, and the stream and event objects.
 */
#ifndef GPUSCHED_CUDA_COMMON_H
#define GPUSCHED_CUDA_COMMON_H

#include <cuda_runtime.h>

#include <atomic>
#include <new>
#include <stdint.h>
#include <stdlib.h>

#include "../libsched/src/backend.h"

/* ------------------------------------------------------------------ errors */

/* Maps a CUDA error to the sched_status the ABI promises for it. */
int32_t map_cuda_error(cudaError_t err);

/*
 * Turns a failed CUDA call into a sched_status and records the message
 * "<what> failed: <CUDA text> (<CUDA error name>)" for sched_last_error.
 * fmt/... describe the operation, e.g. "cudaMallocHost of %" PRIu64 " bytes".
 */
int32_t cuda_fail(cudaError_t err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Runs a CUDA call; on failure, returns from the enclosing function with the
 * mapped status after recording the message. The trailing arguments are the
 * printf-style description of the operation. */
#define CUDA_CHECK(call, ...)                    \
  do {                                           \
    cudaError_t check_err_ = (call);             \
    if (check_err_ != cudaSuccess) {             \
      return cuda_fail(check_err_, __VA_ARGS__); \
    }                                            \
  } while (0)

/* ------------------------------------------------------------------- state */

/* What init learned about each device. Written only by init and shutdown,
 * which by contract never race any other call, so reads need no lock. */
struct cuda_state {
  int count; /* devices initialized */
  bool ready;
  cudaDeviceProp prop[SCHED_MAX_DEVICES];
  int priority_least[SCHED_MAX_DEVICES];
  int priority_greatest[SCHED_MAX_DEVICES];
  /* peer[a][b]: device a reads and writes b's memory directly (enabled at init). */
  bool peer[SCHED_MAX_DEVICES][SCHED_MAX_DEVICES];
};
extern cuda_state g_cuda;

/*
 * The CUDA runtime's current device is per host thread and defaults to 0,
 * while libsched is called from arbitrary threads. Every entry point that
 * creates or uses device resources binds the device the call acts on first
 * (sched_acting_device: the handle's device, or the caller's current
 * device for a creation); cudaSetDevice on an already-current device is a
 * cheap thread-local check.
 */
int32_t bind_device(void);

#define BIND_DEVICE()                  \
  do {                                 \
    int32_t bind_st_ = bind_device();  \
    if (bind_st_ != SCHED_OK) {        \
      return bind_st_;                 \
    }                                  \
  } while (0)

/* ----------------------------------------------------------------- objects */

/* A spin lock for critical sections of a few instructions (no CUDA calls,
 * no allocation inside), where a sleeping mutex would cost more than it
 * saves. */
static inline void spin_lock(std::atomic_flag *flag) {
  while (flag->test_and_set(std::memory_order_acquire)) {
  }
}

static inline void spin_unlock(std::atomic_flag *flag) { flag->clear(std::memory_order_release); }

struct watch_item;
struct cuda_partition;

/* Completion markers recorded on one CUDA stream, oldest first. A stream
 * runs in order, so only the oldest can be the next to complete: the
 * watcher polls heads only, whatever the number of waiters. */
struct watch_queue {
  watch_item *head, *tail;
  watch_item *armed;         /* head that a wake-up host function was queued for */
  cudaStream_t waker;        /* lazily created: carries those wake-up host functions */
  watch_queue *next_active;  /* in the watcher's list while non-empty */
  struct cuda_stream *owner; /* referenced while the queue is non-empty */
};

/*
 * A stream, refcounted because events keep a reference to the stream they
 * were last recorded on (event waits are queued on its shadow stream), and
 * the watcher keeps one while markers on it are pending.
 */
struct cuda_stream {
  /* Replaced by a rebind (under the watcher's lock): readers on other
   * threads are excluded by the ABI's rule that a rebind races no other
   * call naming the stream. */
  cudaStream_t s;
  /* The green context s was made in (holding a reference), NULL for the
   * whole device; changes with s. */
  cuda_partition *partition;
  int priority;
  int device; /* every CUDA stream of the object (shadow, wakers) is on it */
  /* Created on the first wait for an event recorded on s: it waits on that
   * event, then records the watcher's marker. One per source stream,
   * because events recorded on one stream complete in order anyway, while
   * one global shadow would make an event on an idle stream wait behind one
   * on a busy stream. Guarded by the watcher's lock. */
  cudaStream_t shadow;
  watch_queue direct;   /* markers recorded on s (stream waits) */
  watch_queue indirect; /* markers recorded on shadow (event waits) */
  /* One reference for the owner (dropped by stream_destroy), one for each
   * event whose latest record was made on this stream, one per non-empty
   * watch queue. */
  std::atomic<int> refcount;
};

struct cuda_event {
  cudaEvent_t e;
  uint32_t flags;
  /* Guards `last`, so that a wait can take a reference on it before a
   * concurrent event_record drops the event's own reference. */
  std::atomic_flag last_lock;
  /* Stream of the latest record (holding a reference); NULL until the
   * event is first recorded. */
  cuda_stream *last;
};

/*
 * Objects live in calloc'd memory constructed in place rather than in
 * operator new'd memory: that keeps this backend free of C++ runtime
 * library dependencies (the rest of libsched is C), and every member has a
 * trivial destructor, so free() is all that destruction takes.
 */
template <typename T>
static inline T *object_new(void) {
  void *mem = calloc(1, sizeof(T));
  return mem != NULL ? new (mem) T() : NULL;
}

static inline void stream_retain(cuda_stream *st) { st->refcount.fetch_add(1, std::memory_order_relaxed); }

/* Drops one reference; the last one destroys the CUDA streams. Pending work
 * on them is not lost: cudaStreamDestroy lets queued work complete first. */
int32_t stream_release(cuda_stream *st);

/* -------------------------------------------------------------- partitions */

/* Finds the driver's green-context entry points (at init; never fails:
 * without them, partitions are unsupported and say why). */
void partitions_init(void); /* for the acting device */
/* Destroys the green contexts whose last work has completed, all of them
 * when `wait` (at shutdown, after the device was synchronized). */
void partitions_reap(bool wait);
/* SMs per partition group, and how many such groups the device splits
 * into; 0 when SM partitions are unsupported here. */
int partitions_granularity(void);
int partitions_groups(void);
int32_t cuda_partition_create(const uint32_t *sm_counts, uint32_t n, void **out_partitions,
                              uint32_t *out_sm_given);
int32_t cuda_partition_destroy(void *partition);
/* A green context over the groups of mask of the split made at init (plus
 * its remainder when asked), reused from a cache of recent sets. */
int32_t cuda_partition_create_set(uint64_t mask, bool with_remainder, void **out_partition, uint32_t *out_sm_given);
/* A non-blocking stream in partition p (NULL: the whole device); the
 * stream holds a reference on p until partition_stream_retire. */
int32_t partition_stream_create(cuda_partition *p, int priority, cudaStream_t *out);
/* Destroys s (its queued work still completes) and drops its reference on
 * p. tail: an event already recorded at the end of s's work, taken over, or
 * NULL to record one; p's green context lives until that event completes. */
int32_t partition_stream_retire(cuda_partition *p, cudaStream_t s, cudaEvent_t tail);

/* ----------------------------------------------------------------- watcher */

/* Starts the watcher thread (at init). */
int32_t watcher_start(void);
/* Completes every pending token whose work is done, then stops the
 * thread (at shutdown, after the device was synchronized). */
void watcher_stop(void);
/* Completes token once all work queued on st so far is done. */
int32_t watcher_stream_notify(cuda_stream *st, uint32_t token);
/* Completes token once ev's latest record (made on source) is done. */
int32_t watcher_event_notify(cuda_stream *source, cudaEvent_t ev, uint32_t token);
/* Swaps st's native stream and partition under the watcher's lock, so no
 * marker is recorded on the old stream after the swap; returns the old ones.
 * Markers already recorded on the old stream still complete first, as long
 * as fresh waits for the old stream's tail. */
void watcher_replace_stream(cuda_stream *st, cudaStream_t fresh, cuda_partition *p, cudaStream_t *old_s,
                            cuda_partition **old_p);

#endif /* GPUSCHED_CUDA_COMMON_H */
