/*
 * The CUDA backend: libsched's mechanism on a real device through the CUDA
 * runtime API (cudart is linked statically, so the only run-time
 * dependency is the driver; without one every call fails cleanly and the
 * library falls back to the host backend).
 *
 * The dispatch layer (sched.c) has already validated handles, pointers and
 * ranges, so functions here receive live objects and in-bounds ranges and
 * only have to translate to CUDA and translate CUDA's errors back.
 *
 * Completion notification never blocks and never needs a thread per waiter:
 * a token is carried through cudaLaunchHostFunc in the void * argument, and
 * the host function (run on CUDA's callback thread) only pushes it onto the
 * completion queue.
 *
 * Synchronization uses <atomic> only: the critical sections are a few
 * pointer operations and never cover a CUDA call.
 */
#include <cuda_runtime.h>

#include <atomic>
#include <inttypes.h>
#include <new>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../libsched/src/backend.h"

/* ------------------------------------------------------------------ errors */

/* Maps a CUDA error to the sched_status the ABI promises for it. */
static int32_t map_cuda_error(cudaError_t err) {
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

/*
 * Turns a failed CUDA call into a sched_status and records the message
 * "<what> failed: <CUDA text> (<CUDA error name>)" for sched_last_error.
 * fmt/... describe the operation, e.g. "cudaMallocHost of %" PRIu64 " bytes".
 */
static int32_t cuda_fail(cudaError_t err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int32_t cuda_fail(cudaError_t err, const char *fmt, ...) {
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

/* What init learned about the device. Written only by init and shutdown,
 * which by contract never race any other call, so reads need no lock. */
static struct {
  int device;
  bool ready;
  cudaDeviceProp prop;
  int priority_least;
  int priority_greatest;
} g_cuda;

/*
 * The CUDA runtime's current device is per host thread and defaults to 0,
 * while libsched is called from arbitrary threads. Every entry point that
 * creates or uses device resources binds the initialized device first;
 * cudaSetDevice on an already-current device is a cheap thread-local check.
 */
static int32_t bind_device(void) {
  CUDA_CHECK(cudaSetDevice(g_cuda.device), "cudaSetDevice(%d)", g_cuda.device);
  return SCHED_OK;
}

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
static void spin_lock(std::atomic_flag *flag) {
  while (flag->test_and_set(std::memory_order_acquire)) {
  }
}

static void spin_unlock(std::atomic_flag *flag) { flag->clear(std::memory_order_release); }

/*
 * A stream, refcounted because events keep a reference to the stream they
 * were last recorded on: event_notify needs that stream's shadow stream
 * even after the owner destroyed the stream itself.
 */
struct cuda_stream {
  cudaStream_t s;
  /* Created on first event_notify for an event recorded on s: a
   * highest-priority stream that waits on those events and then runs the
   * notification host function. One per source stream, because events
   * recorded on one stream complete in order anyway, so sharing a shadow
   * among them costs nothing, while one global shadow would make an
   * event on an idle stream wait behind one on a busy stream. */
  std::atomic<cudaStream_t> shadow;
  /* One reference for the owner (dropped by stream_destroy), one for each
   * event whose latest record was made on this stream. */
  std::atomic<int> refcount;
};

struct cuda_event {
  cudaEvent_t e;
  uint32_t flags;
  /* Guards `last`, so that event_notify can take a reference on it before
   * a concurrent event_record drops the event's own reference. */
  std::atomic_flag last_lock;
  /* Stream of the latest record (holding a reference); NULL until the
   * event is first recorded. */
  cuda_stream *last;
};

/*
 * Objects live in calloc'd memory constructed in place rather than in
 * operator new'd memory: that keeps this file free of C++ runtime library
 * dependencies (the rest of libsched is C), and every member has a trivial
 * destructor, so free() is all that destruction takes.
 */
template <typename T>
static T *object_new(void) {
  void *mem = calloc(1, sizeof(T));
  return mem != NULL ? new (mem) T() : NULL;
}

static void stream_retain(cuda_stream *st) { st->refcount.fetch_add(1, std::memory_order_relaxed); }

/* Drops one reference; the last one destroys the CUDA streams. Pending work
 * on them (including notification host functions still waiting) is not
 * lost: cudaStreamDestroy lets queued work complete before releasing. */
static int32_t stream_release(cuda_stream *st) {
  if (st->refcount.fetch_sub(1, std::memory_order_acq_rel) != 1) {
    return SCHED_OK;
  }
  cudaError_t shadow_err = cudaSuccess;
  cudaStream_t shadow = st->shadow.load(std::memory_order_acquire);
  if (shadow != NULL) {
    shadow_err = cudaStreamDestroy(shadow);
  }
  cudaError_t err = cudaStreamDestroy(st->s);
  /* Nobody can reach the object any more, so it is freed even if CUDA
   * complained; the first error is still reported. */
  free(st);
  if (shadow_err != cudaSuccess) {
    return cuda_fail(shadow_err, "cudaStreamDestroy of a shadow stream");
  }
  if (err != cudaSuccess) {
    return cuda_fail(err, "cudaStreamDestroy");
  }
  return SCHED_OK;
}

/* Host function that completes a notification token. It runs on CUDA's
 * callback thread, where CUDA calls are forbidden; completions_push makes
 * none. The token travels in the pointer itself, so nothing is allocated
 * per notification and nothing can leak if the callback never runs. */
static void CUDART_CB complete_token(void *payload) {
  completions_push((uint32_t)(uintptr_t)payload, SCHED_OK);
}

static void *token_payload(uint32_t token) { return (void *)(uintptr_t)token; }

/* ------------------------------------------------------------ device level */

static int32_t cuda_device_count(int32_t *out_count) {
  int count = 0;
  /* Without a driver this fails with cudaErrorInsufficientDriver or
   * cudaErrorNoDevice, mapped to SCHED_ERR_NO_DEVICE with CUDA's text. */
  CUDA_CHECK(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  *out_count = count;
  return SCHED_OK;
}

static int32_t cuda_init(int32_t device, uint64_t host_capacity) {
  (void)host_capacity; /* only the host backend simulates a capacity */

  int32_t count = 0;
  int32_t st = cuda_device_count(&count);
  if (st != SCHED_OK) {
    return st;
  }
  if (device < 0 || device >= count) {
    return sched_fail(SCHED_ERR_NO_DEVICE, "CUDA device %d does not exist: %d device(s) present", device,
                      count);
  }

  CUDA_CHECK(cudaSetDevice(device), "cudaSetDevice(%d)", device);
  /* Forces creation of the primary context now, so a broken device fails
   * sched_init instead of the first stream or allocation. */
  CUDA_CHECK(cudaFree(0), "Creating the CUDA context on device %d", device);

  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties(%d)", device);
  int least = 0;
  int greatest = 0;
  CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");

  /* Only commit the state once everything succeeded. */
  g_cuda.device = device;
  g_cuda.prop = prop;
  g_cuda.priority_least = least;
  g_cuda.priority_greatest = greatest;
  g_cuda.ready = true;
  return SCHED_OK;
}

static void cuda_shutdown(void) {
  if (!g_cuda.ready) {
    return;
  }
  /* The dispatch layer has destroyed every object, but destroyed streams
   * may still run queued work, notification host functions included.
   * Waiting here means no callback outlives shutdown. The primary context
   * is deliberately kept (no cudaDeviceReset): other code in the process,
   * such as user kernels, may share it. Failures can only be recorded as
   * the thread's last error, since shutdown reports no status. */
  cudaError_t err = cudaSetDevice(g_cuda.device);
  if (err == cudaSuccess) {
    err = cudaDeviceSynchronize();
    if (err != cudaSuccess) {
      (void)cuda_fail(err, "cudaDeviceSynchronize at shutdown");
    }
  } else {
    (void)cuda_fail(err, "cudaSetDevice(%d) at shutdown", g_cuda.device);
  }
  memset(&g_cuda, 0, sizeof g_cuda);
}

static int32_t cuda_device_info(sched_device_info *out) {
  BIND_DEVICE();
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");

  const cudaDeviceProp *p = &g_cuda.prop;
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%s", p->name);
  out->total_memory = total_bytes;
  out->free_memory = free_bytes;
  out->sm_count = p->multiProcessorCount;
  out->priority_least = g_cuda.priority_least;
  out->priority_greatest = g_cuda.priority_greatest;
  out->compute_major = p->major;
  out->compute_minor = p->minor;
  /* Green contexts split SMs in groups of 8 from compute capability 9.0 on;
   * earlier devices cannot be partitioned this way. */
  out->sm_granularity = p->major >= 9 ? 8 : 0;
  return SCHED_OK;
}

static int32_t cuda_mem_info(uint64_t *out_free, uint64_t *out_total) {
  BIND_DEVICE();
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  *out_free = free_bytes;
  *out_total = total_bytes;
  return SCHED_OK;
}

/* ----------------------------------------------------------------- streams */

static int32_t cuda_stream_create(int32_t priority, void **out_stream) {
  BIND_DEVICE();
  cuda_stream *st = object_new<cuda_stream>();
  if (st == NULL) {
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory for a stream");
  }
  /* Non-blocking: libsched streams must never synchronize implicitly with
   * the legacy default stream that user code might use. */
  cudaError_t err = cudaStreamCreateWithPriority(&st->s, cudaStreamNonBlocking, priority);
  if (err != cudaSuccess) {
    free(st);
    return cuda_fail(err, "cudaStreamCreateWithPriority with priority %d", priority);
  }
  st->shadow.store(NULL, std::memory_order_relaxed);
  st->refcount.store(1, std::memory_order_relaxed);
  *out_stream = st;
  return SCHED_OK;
}

static int32_t cuda_stream_destroy(void *stream) {
  BIND_DEVICE();
  /* Drops the owner's reference; events last recorded on the stream keep
   * it (and its shadow) alive until they are re-recorded or destroyed. */
  return stream_release((cuda_stream *)stream);
}

static int32_t cuda_stream_query(void *stream) {
  BIND_DEVICE();
  CUDA_CHECK(cudaStreamQuery(((cuda_stream *)stream)->s), "cudaStreamQuery");
  return SCHED_OK;
}

static int32_t cuda_stream_synchronize(void *stream) {
  BIND_DEVICE();
  CUDA_CHECK(cudaStreamSynchronize(((cuda_stream *)stream)->s), "cudaStreamSynchronize");
  return SCHED_OK;
}

static void *cuda_stream_native(void *stream) { return (void *)((cuda_stream *)stream)->s; }

static int32_t cuda_stream_wait_event(void *stream, void *event) {
  BIND_DEVICE();
  CUDA_CHECK(cudaStreamWaitEvent(((cuda_stream *)stream)->s, ((cuda_event *)event)->e, 0),
             "cudaStreamWaitEvent");
  return SCHED_OK;
}

static int32_t cuda_launch_host_func(void *stream, sched_host_fn fn, void *user_data) {
  BIND_DEVICE();
  CUDA_CHECK(cudaLaunchHostFunc(((cuda_stream *)stream)->s, fn, user_data), "cudaLaunchHostFunc");
  return SCHED_OK;
}

static int32_t cuda_launch_host_func_native(void *native, sched_host_fn fn, void *user_data) {
  BIND_DEVICE();
  /* native may be any cudaStream_t the caller owns (or NULL for the legacy
   * default stream); CUDA itself rejects the ones it does not know. */
  CUDA_CHECK(cudaLaunchHostFunc((cudaStream_t)native, fn, user_data), "cudaLaunchHostFunc");
  return SCHED_OK;
}

static int32_t cuda_stream_notify(void *stream, uint32_t token) {
  BIND_DEVICE();
  CUDA_CHECK(cudaLaunchHostFunc(((cuda_stream *)stream)->s, complete_token, token_payload(token)),
             "cudaLaunchHostFunc for stream notification");
  return SCHED_OK;
}

/* ------------------------------------------------------------------ events */

static int32_t cuda_event_create(uint32_t flags, void **out_event) {
  BIND_DEVICE();
  cuda_event *ev = object_new<cuda_event>();
  if (ev == NULL) {
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory for an event");
  }
  /* Timing costs a timestamp write per record; only pay for it on request. */
  unsigned int cuda_flags = (flags & SCHED_EVENT_TIMING) ? cudaEventDefault : cudaEventDisableTiming;
  cudaError_t err = cudaEventCreateWithFlags(&ev->e, cuda_flags);
  if (err != cudaSuccess) {
    free(ev);
    return cuda_fail(err, "cudaEventCreateWithFlags");
  }
  ev->flags = flags;
  ev->last_lock.clear(std::memory_order_relaxed);
  ev->last = NULL;
  *out_event = ev;
  return SCHED_OK;
}

static int32_t cuda_event_destroy(void *event) {
  BIND_DEVICE();
  cuda_event *ev = (cuda_event *)event;
  /* Streams (shadows included) already waiting on the event keep waiting
   * on the captured record: CUDA allows destroying it meanwhile. No lock:
   * the dispatch layer never lets a call on this event race its destruction. */
  cudaError_t err = cudaEventDestroy(ev->e);
  int32_t st = ev->last != NULL ? stream_release(ev->last) : SCHED_OK;
  /* The object is gone either way; the dispatch layer forgets the handle. */
  free(ev);
  if (err != cudaSuccess) {
    return cuda_fail(err, "cudaEventDestroy");
  }
  return st;
}

static int32_t cuda_event_record(void *event, void *stream) {
  BIND_DEVICE();
  cuda_event *ev = (cuda_event *)event;
  cuda_stream *st = (cuda_stream *)stream;

  CUDA_CHECK(cudaEventRecord(ev->e, st->s), "cudaEventRecord");
  /* Retain before releasing, so re-recording on the same stream never
   * lets its count touch zero. The release happens outside the lock: it
   * may destroy CUDA streams. */
  stream_retain(st);
  spin_lock(&ev->last_lock);
  cuda_stream *previous = ev->last;
  ev->last = st;
  spin_unlock(&ev->last_lock);
  return previous != NULL ? stream_release(previous) : SCHED_OK;
}

static int32_t cuda_event_query(void *event) {
  BIND_DEVICE();
  CUDA_CHECK(cudaEventQuery(((cuda_event *)event)->e), "cudaEventQuery");
  return SCHED_OK;
}

static int32_t cuda_event_synchronize(void *event) {
  BIND_DEVICE();
  CUDA_CHECK(cudaEventSynchronize(((cuda_event *)event)->e), "cudaEventSynchronize");
  return SCHED_OK;
}

static int32_t cuda_event_elapsed_ms(void *start, void *end, float *out_ms) {
  cuda_event *a = (cuda_event *)start;
  cuda_event *b = (cuda_event *)end;
  /* CUDA would answer cudaErrorInvalidResourceHandle, which reads like a
   * dead handle; say what is actually wrong instead. */
  if (!(a->flags & SCHED_EVENT_TIMING) || !(b->flags & SCHED_EVENT_TIMING)) {
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Elapsed time needs events created with SCHED_EVENT_TIMING");
  }
  BIND_DEVICE();
  float ms = 0.0f;
  CUDA_CHECK(cudaEventElapsedTime(&ms, a->e, b->e), "cudaEventElapsedTime");
  *out_ms = ms;
  return SCHED_OK;
}

/* Returns the shadow stream of st, creating it on first use. */
static int32_t shadow_stream(cuda_stream *st, cudaStream_t *out) {
  cudaStream_t shadow = st->shadow.load(std::memory_order_acquire);
  if (shadow != NULL) {
    *out = shadow;
    return SCHED_OK;
  }
  /* Highest priority: the shadow only runs tiny host functions, and a
   * notification should never queue behind bulk work. */
  cudaStream_t created = NULL;
  CUDA_CHECK(cudaStreamCreateWithPriority(&created, cudaStreamNonBlocking, g_cuda.priority_greatest),
             "cudaStreamCreateWithPriority of a notification stream");
  /* Publish with a compare-and-swap instead of holding a lock across the
   * creation call: if another thread won the race, use its shadow and drop
   * ours. Ours is empty, so destroying it cannot lose work, and a failure
   * there would not affect the notification, which proceeds either way. */
  cudaStream_t expected = NULL;
  if (st->shadow.compare_exchange_strong(expected, created, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
    *out = created;
  } else {
    (void)cudaStreamDestroy(created);
    *out = expected;
  }
  return SCHED_OK;
}

/* Queues "wait for e, then complete token" on the shadow of source. The
 * wait captures the event's latest record at this moment; re-recording the
 * event later does not move this notification. Should a concurrent
 * event_record slip in after `source` was read, the wait captures the newer
 * record: still a valid "latest record", merely queued on another shadow. */
static int32_t notify_on_shadow(cuda_stream *source, cudaEvent_t e, uint32_t token) {
  cudaStream_t shadow = NULL;
  int32_t st = shadow_stream(source, &shadow);
  if (st != SCHED_OK) {
    return st;
  }
  CUDA_CHECK(cudaStreamWaitEvent(shadow, e, 0), "cudaStreamWaitEvent for event notification");
  CUDA_CHECK(cudaLaunchHostFunc(shadow, complete_token, token_payload(token)),
             "cudaLaunchHostFunc for event notification");
  return SCHED_OK;
}

static int32_t cuda_event_notify(void *event, uint32_t token) {
  BIND_DEVICE();
  cuda_event *ev = (cuda_event *)event;

  /* Our own reference keeps the source stream, and so its shadow, alive
   * while we queue on it, even if event_record replaces `last` meanwhile. */
  spin_lock(&ev->last_lock);
  cuda_stream *source = ev->last;
  if (source != NULL) {
    stream_retain(source);
  }
  spin_unlock(&ev->last_lock);

  if (source == NULL) {
    /* Never recorded: CUDA treats such an event as complete. */
    completions_push(token, SCHED_OK);
    return SCHED_OK;
  }
  int32_t st = notify_on_shadow(source, ev->e, token);
  int32_t release_st = stream_release(source);
  return st != SCHED_OK ? st : release_st;
}

/* ------------------------------------------------------------------ memory */

static int32_t cuda_pool_create(uint64_t max_bytes, uint64_t release_threshold, void **out_pool) {
  BIND_DEVICE();
  cudaMemPoolProps props;
  memset(&props, 0, sizeof props); /* reserved fields must be zero */
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = g_cuda.device;
  /* 0 lets CUDA pick its (system dependent) default, i.e. no cap of ours. */
  props.maxSize = (size_t)max_bytes;

  cudaMemPool_t pool = NULL;
  CUDA_CHECK(cudaMemPoolCreate(&pool, &props), "cudaMemPoolCreate with a cap of %" PRIu64 " bytes", max_bytes);

  /* The default threshold (0) returns every freed byte to the device at
   * each synchronization, defeating the pool; keep what was asked for. */
  uint64_t threshold = release_threshold;
  cudaError_t err = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
  if (err != cudaSuccess) {
    (void)cudaMemPoolDestroy(pool);
    return cuda_fail(err, "Setting the release threshold of a memory pool to %" PRIu64 " bytes",
                     release_threshold);
  }
  /* cudaMemPool_t is itself an opaque pointer: no wrapper is needed. */
  *out_pool = (void *)pool;
  return SCHED_OK;
}

static int32_t cuda_pool_destroy(void *pool) {
  BIND_DEVICE();
  CUDA_CHECK(cudaMemPoolDestroy((cudaMemPool_t)pool), "cudaMemPoolDestroy");
  return SCHED_OK;
}

static int32_t cuda_pool_trim(void *pool, uint64_t keep_bytes) {
  BIND_DEVICE();
  CUDA_CHECK(cudaMemPoolTrimTo((cudaMemPool_t)pool, (size_t)keep_bytes),
             "cudaMemPoolTrimTo %" PRIu64 " bytes", keep_bytes);
  return SCHED_OK;
}

static int32_t cuda_pool_reserved(void *pool, uint64_t *out_reserved) {
  BIND_DEVICE();
  uint64_t reserved = 0; /* the attribute's value type is cuuint64_t */
  CUDA_CHECK(cudaMemPoolGetAttribute((cudaMemPool_t)pool, cudaMemPoolAttrReservedMemCurrent, &reserved),
             "Reading the reserved size of a memory pool");
  *out_reserved = reserved;
  return SCHED_OK;
}

static int32_t cuda_malloc_async(void *pool, void *stream, uint64_t bytes, void **out_ptr) {
  BIND_DEVICE();
  void *p = NULL;
  CUDA_CHECK(cudaMallocFromPoolAsync(&p, (size_t)bytes, (cudaMemPool_t)pool, ((cuda_stream *)stream)->s),
             "cudaMallocFromPoolAsync of %" PRIu64 " bytes", bytes);
  *out_ptr = p;
  return SCHED_OK;
}

static int32_t cuda_free_async(void *ptr, void *stream) {
  BIND_DEVICE();
  CUDA_CHECK(cudaFreeAsync(ptr, ((cuda_stream *)stream)->s), "cudaFreeAsync");
  return SCHED_OK;
}

static int32_t cuda_malloc_sync(uint64_t bytes, void **out_ptr) {
  BIND_DEVICE();
  void *p = NULL;
  CUDA_CHECK(cudaMalloc(&p, (size_t)bytes), "cudaMalloc of %" PRIu64 " bytes", bytes);
  *out_ptr = p;
  return SCHED_OK;
}

static int32_t cuda_free_sync(void *ptr) {
  BIND_DEVICE();
  CUDA_CHECK(cudaFree(ptr), "cudaFree");
  return SCHED_OK;
}

static int32_t cuda_host_alloc(uint64_t bytes, void **out_ptr) {
  BIND_DEVICE();
  void *p = NULL;
  CUDA_CHECK(cudaMallocHost(&p, (size_t)bytes), "cudaMallocHost of %" PRIu64 " bytes", bytes);
  *out_ptr = p;
  return SCHED_OK;
}

static int32_t cuda_host_free(void *ptr) {
  BIND_DEVICE();
  CUDA_CHECK(cudaFreeHost(ptr), "cudaFreeHost");
  return SCHED_OK;
}

static int32_t cuda_memcpy_async(void *dst, const void *src, uint64_t bytes, int32_t kind, void *stream) {
  cudaMemcpyKind cuda_kind;
  switch (kind) {
    case SCHED_COPY_HOST_TO_DEVICE:
      cuda_kind = cudaMemcpyHostToDevice;
      break;
    case SCHED_COPY_DEVICE_TO_HOST:
      cuda_kind = cudaMemcpyDeviceToHost;
      break;
    case SCHED_COPY_DEVICE_TO_DEVICE:
      cuda_kind = cudaMemcpyDeviceToDevice;
      break;
    default:
      return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Unknown copy kind %d", kind);
  }
  BIND_DEVICE();
  CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)bytes, cuda_kind, ((cuda_stream *)stream)->s),
             "cudaMemcpyAsync of %" PRIu64 " bytes", bytes);
  return SCHED_OK;
}

static int32_t cuda_memset_async(void *dst, uint8_t value, uint64_t bytes, void *stream) {
  BIND_DEVICE();
  CUDA_CHECK(cudaMemsetAsync(dst, value, (size_t)bytes, ((cuda_stream *)stream)->s),
             "cudaMemsetAsync of %" PRIu64 " bytes", bytes);
  return SCHED_OK;
}

/* ------------------------------------------------------------------- table */

/* In backend.h order; the compiler checks each slot's signature. */
static const backend_ops g_cuda_ops = {
    "cuda",
    cuda_device_count,
    cuda_init,
    cuda_shutdown,
    cuda_device_info,
    cuda_mem_info,

    cuda_stream_create,
    cuda_stream_destroy,
    cuda_stream_query,
    cuda_stream_synchronize,
    cuda_stream_native,
    cuda_stream_wait_event,
    cuda_launch_host_func,
    cuda_launch_host_func_native,
    cuda_stream_notify,

    cuda_event_create,
    cuda_event_destroy,
    cuda_event_record,
    cuda_event_query,
    cuda_event_synchronize,
    cuda_event_elapsed_ms,
    cuda_event_notify,

    cuda_pool_create,
    cuda_pool_destroy,
    cuda_pool_trim,
    cuda_pool_reserved,
    cuda_malloc_async,
    cuda_free_async,
    cuda_malloc_sync,
    cuda_free_sync,
    cuda_host_alloc,
    cuda_host_free,
    cuda_memcpy_async,
    cuda_memset_async,
};

extern "C" const backend_ops *cuda_backend_ops(void) { return &g_cuda_ops; }
