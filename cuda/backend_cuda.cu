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
 * Completion notification (stream_notify, event_notify) is the watcher's
 * job: see watcher.cu. SM partitions (green contexts) are partitions.cu's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cuda_common.h"

/* ------------------------------------------------------------ device level */

static int32_t cuda_device_count(int32_t *out_count) {
  int count = 0;
  /* Without a driver this fails with cudaErrorInsufficientDriver or
   * cudaErrorNoDevice, mapped to SCHED_ERR_NO_DEVICE with CUDA's text. */
  CUDA_CHECK(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  *out_count = count;
  return SCHED_OK;
}

/* Creates device d's primary context and reads what the backend needs of it. */
static int32_t init_device(int d) {
  sched_set_acting_device(d);
  CUDA_CHECK(cudaSetDevice(d), "cudaSetDevice(%d)", d);
  /* Forces creation of the primary context now, so a broken device fails
   * sched_init instead of the first stream or allocation. */
  CUDA_CHECK(cudaFree(0), "Creating the CUDA context on device %d", d);
  CUDA_CHECK(cudaGetDeviceProperties(&g_cuda.prop[d], d), "cudaGetDeviceProperties(%d)", d);
  CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&g_cuda.priority_least[d], &g_cuda.priority_greatest[d]),
             "cudaDeviceGetStreamPriorityRange on device %d", d);
  partitions_init();
  return SCHED_OK;
}

/* Enables direct access between every pair of devices that allows it;
 * copies between the others are staged through host memory by CUDA
 * (cudaMemcpyPeerAsync does that itself when peer access is off). */
static int32_t enable_peers(int count) {
  for (int a = 0; a < count; a++) {
    for (int b = 0; b < count; b++) {
      if (a == b) continue;
      int can = 0;
      CUDA_CHECK(cudaDeviceCanAccessPeer(&can, a, b), "cudaDeviceCanAccessPeer(%d, %d)", a, b);
      if (!can) continue;
      CUDA_CHECK(cudaSetDevice(a), "cudaSetDevice(%d)", a);
      cudaError_t err = cudaDeviceEnablePeerAccess(b, 0);
      /* Already enabled: another user of the primary context did it. Any
       * other refusal (too many peers, say) only costs speed: copies
       * between the two are then staged through host memory by CUDA. */
      if (err != cudaSuccess) (void)cudaGetLastError();
      g_cuda.peer[a][b] = err == cudaSuccess || err == cudaErrorPeerAccessAlreadyEnabled;
    }
  }
  return SCHED_OK;
}

static int32_t cuda_init(int32_t device, int32_t host_devices, uint64_t host_capacity, int32_t *out_devices) {
  (void)host_devices; /* only the host backend simulates devices */
  (void)host_capacity;

  int32_t count = 0;
  int32_t st = cuda_device_count(&count);
  if (st != SCHED_OK) {
    return st;
  }
  if (device < 0 || device >= count) {
    return sched_fail(SCHED_ERR_NO_DEVICE, "CUDA device %d does not exist: %d device(s) present", device,
                      count);
  }
  if (count > SCHED_MAX_DEVICES) count = SCHED_MAX_DEVICES;

  memset(&g_cuda, 0, sizeof g_cuda);
  for (int d = 0; d < count && st == SCHED_OK; d++) st = init_device(d);
  if (st == SCHED_OK) st = enable_peers(count);
  sched_set_acting_device(device);
  if (st == SCHED_OK) st = watcher_start();
  if (st != SCHED_OK) {
    memset(&g_cuda, 0, sizeof g_cuda);
    return st;
  }
  g_cuda.count = count;
  g_cuda.ready = true;
  *out_devices = count;
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
  for (int d = 0; d < g_cuda.count; d++) {
    cudaError_t err = cudaSetDevice(d);
    if (err == cudaSuccess) {
      err = cudaDeviceSynchronize();
      if (err != cudaSuccess) {
        (void)cuda_fail(err, "cudaDeviceSynchronize of device %d at shutdown", d);
      }
    } else {
      (void)cuda_fail(err, "cudaSetDevice(%d) at shutdown", d);
    }
  }
  watcher_stop();
  /* Last: the watcher's final sweep may have retired the last streams of
   * some green contexts. */
  partitions_reap(true);
  memset(&g_cuda, 0, sizeof g_cuda);
}

static int32_t cuda_device_info(sched_device_info *out) {
  BIND_DEVICE();
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");

  int d = sched_acting_device();
  const cudaDeviceProp *p = &g_cuda.prop[d];
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%s", p->name);
  out->total_memory = total_bytes;
  out->free_memory = free_bytes;
  out->sm_count = p->multiProcessorCount;
  out->priority_least = g_cuda.priority_least[d];
  out->priority_greatest = g_cuda.priority_greatest[d];
  out->compute_major = p->major;
  out->compute_minor = p->minor;
  out->sm_granularity = partitions_granularity();
  out->sm_groups = partitions_groups();
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

static int32_t cuda_stream_create(int32_t priority, void *partition, void **out_stream) {
  BIND_DEVICE();
  cuda_stream *st = object_new<cuda_stream>();
  if (st == NULL) {
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory for a stream");
  }
  int32_t status = partition_stream_create((cuda_partition *)partition, priority, &st->s);
  if (status != SCHED_OK) {
    free(st);
    return status;
  }
  st->partition = (cuda_partition *)partition;
  st->priority = priority;
  st->device = sched_acting_device();
  st->refcount.store(1, std::memory_order_relaxed);
  *out_stream = st;
  return SCHED_OK;
}

/*
 * A CUDA stream cannot change green context, so the stream object gets a
 * new native stream in the target partition that first waits for the old
 * one's tail: everything queued before the rebind (markers the watcher
 * holds included) completes before anything queued after it. The old
 * native stream is destroyed at once and finishes its queued work, as
 * cudaStreamDestroy allows; its partition keeps the green context alive
 * until then. Shadow and waker streams stay where they are: they only
 * wait and record, and never occupy an SM.
 */
static int32_t cuda_stream_rebind(void *stream, void *partition) {
  BIND_DEVICE();
  cuda_stream *st = (cuda_stream *)stream;
  cuda_partition *to = (cuda_partition *)partition;
  cudaStream_t fresh = NULL;
  int32_t status = partition_stream_create(to, st->priority, &fresh);
  if (status != SCHED_OK) {
    return status;
  }
  cudaEvent_t tail = NULL;
  cudaError_t err = cudaEventCreateWithFlags(&tail, cudaEventDisableTiming);
  if (err == cudaSuccess) {
    err = cudaEventRecord(tail, st->s);
    if (err == cudaSuccess) err = cudaStreamWaitEvent(fresh, tail, 0);
    if (err != cudaSuccess) (void)cudaEventDestroy(tail);
  }
  if (err != cudaSuccess) {
    status = cuda_fail(err, "Ordering a stream's new native stream after its old one");
    (void)partition_stream_retire(to, fresh, NULL);
    return status;
  }
  cudaStream_t old_s = NULL;
  cuda_partition *old_p = NULL;
  watcher_replace_stream(st, fresh, to, &old_s, &old_p);
  return partition_stream_retire(old_p, old_s, tail);
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

static int32_t cuda_stream_notify(void *stream, uint32_t token) {
  return watcher_stream_notify((cuda_stream *)stream, token);
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
  /* Same answer as the host backend, rather than CUDA's resource-handle error. */
  spin_lock(&a->last_lock);
  bool a_recorded = a->last != NULL;
  spin_unlock(&a->last_lock);
  spin_lock(&b->last_lock);
  bool b_recorded = b->last != NULL;
  spin_unlock(&b->last_lock);
  if (!a_recorded || !b_recorded) {
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Elapsed time needs both events recorded");
  }
  BIND_DEVICE();
  float ms = 0.0f;
  CUDA_CHECK(cudaEventElapsedTime(&ms, a->e, b->e), "cudaEventElapsedTime");
  *out_ms = ms;
  return SCHED_OK;
}

static int32_t cuda_event_notify(void *event, uint32_t token) {
  BIND_DEVICE();
  cuda_event *ev = (cuda_event *)event;

  /* Our own reference keeps the source stream, and so its shadow, alive
   * while the watcher queues on it, even if event_record replaces `last`
   * meanwhile (the watcher then takes its own). */
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
  int32_t st = watcher_event_notify(source, ev->e, token);
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
  int device = sched_acting_device();
  props.location.id = device;
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
  /* Pool memory is not covered by cudaDeviceEnablePeerAccess: grant each
   * peer that may access this device's memory its own access, so kernels
   * and copies on other devices can use it directly. */
  for (int peer = 0; peer < g_cuda.count; peer++) {
    if (!g_cuda.peer[peer][device]) continue;
    cudaMemAccessDesc access;
    memset(&access, 0, sizeof access);
    access.location.type = cudaMemLocationTypeDevice;
    access.location.id = peer;
    access.flags = cudaMemAccessFlagsProtReadWrite;
    err = cudaMemPoolSetAccess(pool, &access, 1);
    if (err != cudaSuccess) {
      (void)cudaMemPoolDestroy(pool);
      return cuda_fail(err, "Granting device %d access to a memory pool of device %d", peer, device);
    }
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
  /* Portable: pinned for every device's context, not only the current one. */
  CUDA_CHECK(cudaHostAlloc(&p, (size_t)bytes, cudaHostAllocPortable), "cudaHostAlloc of %" PRIu64 " bytes",
             bytes);
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

static int32_t cuda_can_access_peer(int32_t device, int32_t peer, int32_t *out_can) {
  *out_can = g_cuda.peer[device][peer] ? 1 : 0;
  return SCHED_OK;
}

/* Direct over NVLink or PCIe where peer access was enabled at init; CUDA
 * stages the copy through host memory itself where it was not. */
static int32_t cuda_memcpy_peer(void *dst, int32_t dst_device, const void *src, int32_t src_device, uint64_t bytes,
                                void *stream) {
  BIND_DEVICE();
  CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, (size_t)bytes, ((cuda_stream *)stream)->s),
             "cudaMemcpyPeerAsync of %" PRIu64 " bytes from device %d to %d", bytes, src_device, dst_device);
  return SCHED_OK;
}

static int32_t cuda_bind_device(int32_t device) {
  CUDA_CHECK(cudaSetDevice(device), "cudaSetDevice(%d)", device);
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
    cuda_stream_rebind,
    cuda_stream_destroy,
    cuda_stream_query,
    cuda_stream_synchronize,
    cuda_stream_native,
    cuda_stream_wait_event,
    cuda_launch_host_func,
    cuda_stream_notify,

    cuda_partition_create,
    cuda_partition_destroy,
    cuda_partition_create_set,

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

    cuda_can_access_peer,
    cuda_memcpy_peer,

    NULL, /* inject_fault: host only */
    cuda_bind_device,
};

extern "C" const backend_ops *cuda_backend_ops(void) { return &g_cuda_ops; }
