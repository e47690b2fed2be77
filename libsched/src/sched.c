/*
 * The dispatch layer: every exported function lands here first.
 *
 * It owns what both backends share: the handle tables (so stale handles
 * are rejected before a backend sees them), the registry of live device
 * allocations (so frees and copy ranges are checked), per-pool byte caps,
 * which streams are bound to which partition (so a partition is never
 * destroyed under a stream), and teardown order. Backends get only live
 * objects and in-bounds ranges.
 *
 * Several devices: every entry remembers its device, and before each call
 * into the backend the dispatch layer sets the "acting device" (the
 * handle's device, or the calling thread's current device for a creation),
 * which backends read with sched_acting_device().
 */
#define _GNU_SOURCE /* dladdr, RTLD_NODELETE */
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "handles.h"
#include "registry.h"
#include "vmm.h"

typedef struct pool_entry {
  void *backend_pool;
  int32_t device;
  uint64_t max_bytes; /* 0: no cap */
  uint64_t used;      /* bytes in live allocations; guarded by pools_lock */
  uint64_t live;      /* live allocations; a pool with any cannot be destroyed */
} pool_entry;

typedef struct stream_entry {
  void *backend_stream;
  /* Read and written atomically: a rebind changes it while other threads
   * may scan every entry (sched_launch_host_func_native). */
  void *native;
  uint32_t partition; /* 0: the whole device */
  int32_t device;
} stream_entry;

typedef struct partition_entry {
  void *backend_partition;
  uint32_t streams; /* streams bound to it; guarded by partitions_lock */
  int32_t device;
} partition_entry;

typedef struct event_entry {
  void *backend_event;
  int32_t device;
} event_entry;

static const backend_ops *B; /* NULL when not initialized */
static int32_t active_backend;
/* Per device, from device_info at init. */
static int32_t priority_least[SCHED_MAX_DEVICES], priority_greatest[SCHED_MAX_DEVICES];
static int32_t device_sm_count[SCHED_MAX_DEVICES], device_sm_groups[SCHED_MAX_DEVICES];
static int32_t device_total, default_device;
/* Bumped by every sched_init, so a thread's current device set before a
 * shutdown does not leak into the next initialization. */
static uint32_t init_generation;
static _Thread_local int32_t thread_device;
static _Thread_local uint32_t thread_device_generation;
static _Thread_local int32_t acting_device;
static handle_table streams, partitions, events, pools;
static registry device_allocations, pinned_allocations;
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t partitions_lock = PTHREAD_MUTEX_INITIALIZER;

#define REQUIRE_INIT()                                                                          \
  do {                                                                                          \
    if (B == NULL)                                                                              \
      return sched_fail(SCHED_ERR_NOT_INITIALIZED, "libsched is not initialized: call sched_init first"); \
  } while (0)

int32_t sched_acting_device(void) { return acting_device; }

static inline void act_on(int32_t device) { acting_device = device; }

void sched_set_acting_device(int32_t device) { act_on(device); }

int32_t sched_devices_initialized(void) { return B != NULL ? device_total : 0; }

static int32_t current_device(void) {
  return thread_device_generation == init_generation ? thread_device : default_device;
}

static int32_t bad_handle(const char *kind, uint32_t handle) {
  return sched_fail(SCHED_ERR_INVALID_HANDLE, "Unknown %s handle %" PRIu32 ": never created or already destroyed",
                    kind, handle);
}

/* A handle in use until the end of the enclosing scope (see handles_acquire). */
typedef struct handle_use {
  handle_table *from; /* NULL until acquired */
  uint32_t handle;
} handle_use;

static void end_use(handle_use *use) {
  if (use->from != NULL) handles_release(use->from, use->handle);
}

#define LOOKUP(table, kind, handle, var)                                  \
  __attribute__((cleanup(end_use))) handle_use var##_use = {NULL, handle}; \
  void *var = handles_acquire(&(table), (handle));                         \
  if (var == NULL) return bad_handle(kind, handle);                        \
  var##_use.from = &(table)

#define LOOKUP_STREAM(handle, var)                                        \
  LOOKUP(streams, "stream", handle, var##_entry_any);                      \
  stream_entry *var##_entry = var##_entry_any;                             \
  act_on(var##_entry->device);                                             \
  void *var = var##_entry->backend_stream

#define LOOKUP_EVENT(handle, var)                                         \
  LOOKUP(events, "event", handle, var##_entry_any);                        \
  event_entry *var##_entry = var##_entry_any;                              \
  void *var = var##_entry->backend_event

static const backend_ops *ops_for(int32_t backend) {
  switch (backend) {
    case SCHED_BACKEND_HOST: return host_backend_ops();
    case SCHED_BACKEND_CUDA: return cuda_backend_ops();
    default: return NULL;
  }
}

/* ---------------------------------------------------------------- lifecycle */

SCHED_API int32_t sched_abi_version(void) { return SCHED_ABI_VERSION; }

SCHED_API int32_t sched_backend_active(void) { return B ? active_backend : SCHED_BACKEND_NONE; }

/* ---------------------------------------------------------------- ownership
 *
 * One initialized libsched per process, owned by the thread that called
 * sched_init (a Deno isolate runs its synchronous FFI calls on its own
 * thread). A thread-local value with a destructor tells when that thread
 * ends: a terminated Worker's thread exits without calling sched_shutdown,
 * and without this the scheduler would stay taken forever. The dead
 * owner's objects are torn down by the next sched_init, on the caller's
 * thread, so nothing runs from a thread that is going away.
 */

static pthread_once_t owner_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t owner_key;
static int owner_alive; /* atomic: the owning thread has not exited */
static pthread_t owner_thread;
static pthread_mutex_t owner_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t owner_gone = PTHREAD_COND_INITIALIZER;
/* How long sched_init on another thread waits for a live owner to end: a
 * terminated Worker's thread takes a moment (seconds on a loaded machine)
 * to exit after Worker.terminate() returns. */
#define OWNER_EXIT_WAIT_MS 5000

static void owner_thread_exited(void *unused) {
  (void)unused;
  pthread_mutex_lock(&owner_lock);
  __atomic_store_n(&owner_alive, 0, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&owner_gone);
  pthread_mutex_unlock(&owner_lock);
}

/* Waits (bounded) for an owner on another thread to end; true when it has. */
static int wait_for_owner_exit(void) {
  if (!__atomic_load_n(&owner_alive, __ATOMIC_ACQUIRE)) return 1;
  if (pthread_equal(owner_thread, pthread_self())) return 0;
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += OWNER_EXIT_WAIT_MS / 1000;
  deadline.tv_nsec += (long)(OWNER_EXIT_WAIT_MS % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&owner_lock);
  while (__atomic_load_n(&owner_alive, __ATOMIC_ACQUIRE))
    if (pthread_cond_timedwait(&owner_gone, &owner_lock, &deadline) != 0) break;
  int gone = !__atomic_load_n(&owner_alive, __ATOMIC_ACQUIRE);
  pthread_mutex_unlock(&owner_lock);
  return gone;
}

static void make_owner_key(void) { (void)pthread_key_create(&owner_key, owner_thread_exited); }

static void become_owner(void) {
  pthread_once(&owner_key_once, make_owner_key);
  owner_thread = pthread_self();
  __atomic_store_n(&owner_alive, 1, __ATOMIC_RELEASE);
  (void)pthread_setspecific(owner_key, &owner_alive);
}

static void stop_owning(void) {
  __atomic_store_n(&owner_alive, 0, __ATOMIC_RELEASE);
  pthread_once(&owner_key_once, make_owner_key);
  (void)pthread_setspecific(owner_key, NULL);
}

/* ------------------------------------------------------------ process exit
 *
 * A program that ends by exit() without sched_shutdown (an uncaught
 * exception or unhandled rejection in Deno, which skips "unload") leaves
 * stream workers, the watcher and CUDA callback threads running while
 * exit handlers tear the process down: cudart's static destructors, the
 * allocator. Registered after the backend initialized CUDA, this handler
 * runs before cudart's own (atexit runs in reverse order) and parks every
 * libsched thread at its next step, so nothing of ours touches CUDA or
 * JavaScript after exit began. It frees nothing: the process is ending.
 */

static int exit_hooked;

static void quiesce_at_exit(void) {
  completions_exit();
  host_streams_quiesce();
  cuda_quiesce_at_exit();
}

/* Pins the shared object holding fn (a user's host "kernel") so that a
 * dlclose by its isolate (a terminated Worker, an exiting Deno) cannot
 * unmap code a stream worker is about to run or is running. Once per
 * object; a small cache of recent functions keeps repeated launches cheap. */
#define PINNED_CODE_CACHE 16
static const void *pinned_fns[PINNED_CODE_CACHE]; /* atomic slots */
static unsigned pinned_next;
static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;

static void pin_code(const void *fn) {
  for (unsigned i = 0; i < PINNED_CODE_CACHE; i++)
    if (__atomic_load_n(&pinned_fns[i], __ATOMIC_RELAXED) == fn) return;
  Dl_info info;
  if (dladdr(fn, &info) != 0 && info.dli_fname != NULL && info.dli_fname[0] != '\0') {
    /* RTLD_NOLOAD: only an object that is already loaded; NODELETE marks
     * it never to be unloaded. The handle is deliberately never closed. */
    (void)dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
  }
  pthread_mutex_lock(&pin_lock);
  __atomic_store_n(&pinned_fns[pinned_next++ % PINNED_CODE_CACHE], fn, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&pin_lock);
}

SCHED_API int32_t sched_init(int32_t backend, int32_t device, uint64_t host_capacity) {
  return sched_init_devices(backend, device, 1, host_capacity);
}

SCHED_API int32_t sched_init_devices(int32_t backend, int32_t device, int32_t host_devices, uint64_t host_capacity) {
  if (B != NULL && wait_for_owner_exit()) {
    /* The owner's thread ended without shutting down: take over. Its
     * queued work completes first; its pending completions belong to an
     * isolate that is gone. */
    sched_shutdown();
    completions_reset();
  }
  if (B != NULL)
    return sched_fail(SCHED_ERR_ALREADY_INITIALIZED,
                      "libsched is already initialized by a thread that is still running (waited %d ms for it to end): call sched_shutdown there first",
                      pthread_equal(owner_thread, pthread_self()) ? 0 : OWNER_EXIT_WAIT_MS);
  if (backend != SCHED_BACKEND_CUDA && backend != SCHED_BACKEND_HOST)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Unknown backend %" PRId32 ": expected 1 (cuda) or 2 (host)", backend);
  if (device < 0) return sched_fail(SCHED_ERR_NO_DEVICE, "Device index must not be negative, got %" PRId32, device);
  if (backend == SCHED_BACKEND_HOST && host_capacity == 0)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Host backend capacity must be positive, got 0");
  if (backend == SCHED_BACKEND_HOST && (host_devices < 1 || host_devices > SCHED_MAX_DEVICES))
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Host device count must be 1 to %d, got %" PRId32, SCHED_MAX_DEVICES,
                      host_devices);
  if (backend == SCHED_BACKEND_HOST && device >= host_devices)
    return sched_fail(SCHED_ERR_NO_DEVICE, "Host device %" PRId32 " does not exist: %" PRId32 " simulated device(s)", device,
                      host_devices);
  const backend_ops *ops = ops_for(backend);
  if (ops == NULL) return sched_fail(SCHED_ERR_UNSUPPORTED, "libsched was built without the CUDA backend (CMake found no CUDA toolkit)");
  int32_t count = 0;
  int32_t status = ops->init(device, host_devices, host_capacity, &count);
  if (status != SCHED_OK) return status;
  for (int32_t d = 0; d < count; d++) {
    sched_device_info info;
    act_on(d);
    status = ops->device_info(&info);
    if (status != SCHED_OK) {
      ops->shutdown();
      return status;
    }
    priority_least[d] = info.priority_least;
    priority_greatest[d] = info.priority_greatest;
    device_sm_count[d] = info.sm_count;
    device_sm_groups[d] = info.sm_groups;
  }
  device_total = count;
  default_device = device;
  init_generation++;
  handles_init(&streams);
  handles_init(&partitions);
  handles_init(&events);
  handles_init(&pools);
  registry_init(&device_allocations);
  registry_init(&pinned_allocations);
  active_backend = backend;
  B = ops;
  become_owner();
  if (!exit_hooked) {
    exit_hooked = 1;
    atexit(quiesce_at_exit);
  }
  return SCHED_OK;
}

static void sync_stream(void *object, void *unused) {
  (void)unused;
  act_on(((stream_entry *)object)->device);
  B->stream_synchronize(((stream_entry *)object)->backend_stream);
}
static void free_device_allocation(const allocation *a, void *unused) {
  (void)unused;
  act_on(a->device);
  B->free_sync(a->ptr);
}
static void free_pinned_allocation(const allocation *a, void *unused) {
  (void)unused;
  act_on(a->device);
  B->host_free(a->ptr);
}
static void destroy_event(void *object, void *unused) {
  (void)unused;
  act_on(((event_entry *)object)->device);
  B->event_destroy(((event_entry *)object)->backend_event);
  free(object);
}
static void destroy_stream(void *object, void *unused) {
  (void)unused;
  act_on(((stream_entry *)object)->device);
  B->stream_destroy(((stream_entry *)object)->backend_stream);
  free(object);
}
static void destroy_pool(void *object, void *unused) {
  (void)unused;
  act_on(((pool_entry *)object)->device);
  B->pool_destroy(((pool_entry *)object)->backend_pool);
  free(object);
}
static void destroy_partition(void *object, void *unused) {
  (void)unused;
  act_on(((partition_entry *)object)->device);
  B->partition_destroy(((partition_entry *)object)->backend_partition);
  free(object);
}

SCHED_API int32_t sched_shutdown(void) {
  if (B == NULL) return SCHED_OK;
  /* Finish queued work first so stream-ordered frees, copies and pending
   * completion tokens all land before their objects go away. */
  handles_each(&streams, sync_stream, NULL);
  vmm_shutdown(); /* before the events its pending decommits hold */
  registry_clear(&device_allocations, free_device_allocation, NULL);
  registry_clear(&pinned_allocations, free_pinned_allocation, NULL);
  handles_clear(&events, destroy_event, NULL);
  handles_clear(&streams, destroy_stream, NULL);
  handles_clear(&pools, destroy_pool, NULL);
  /* After the streams: a partition never goes before the streams in it. */
  handles_clear(&partitions, destroy_partition, NULL);
  B->shutdown();
  handles_destroy(&streams);
  handles_destroy(&partitions);
  handles_destroy(&events);
  handles_destroy(&pools);
  registry_destroy(&device_allocations);
  registry_destroy(&pinned_allocations);
  B = NULL;
  active_backend = SCHED_BACKEND_NONE;
  device_total = 0;
  default_device = 0;
  stop_owning();
  return SCHED_OK;
}

SCHED_API void sched_debug_counts(uint64_t *out, uint32_t n) {
  uint64_t counts[8] = {0};
  if (B != NULL) {
    counts[0] = handles_live(&streams);
    counts[1] = handles_live(&events);
    counts[2] = handles_live(&pools);
    counts[3] = handles_live(&partitions);
    registry_totals(&device_allocations, &counts[4], &counts[7]);
    registry_totals(&pinned_allocations, &counts[5], &counts[6]);
  }
  if (out == NULL) return;
  for (uint32_t i = 0; i < n && i < 8; i++) out[i] = counts[i];
}

/* ------------------------------------------------------------------ devices */

SCHED_API int32_t sched_device_count(int32_t backend, int32_t *out_count) {
  if (out_count == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_count must not be NULL");
  const backend_ops *ops = ops_for(backend);
  if (ops == NULL) {
    if (backend == SCHED_BACKEND_CUDA) {
      *out_count = 0;
      return sched_fail(SCHED_ERR_UNSUPPORTED, "libsched was built without the CUDA backend (CMake found no CUDA toolkit)");
    }
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Unknown backend %" PRId32 ": expected 1 (cuda) or 2 (host)", backend);
  }
  if (backend == SCHED_BACKEND_HOST && B != NULL && active_backend == SCHED_BACKEND_HOST) {
    *out_count = device_total;
    return SCHED_OK;
  }
  return ops->device_count(out_count);
}

static int32_t bad_device(const char *what, int32_t device) {
  return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "%s %" PRId32 " does not exist: %" PRId32 " device(s) initialized", what,
                    device, device_total);
}

SCHED_API int32_t sched_set_device(int32_t device) {
  REQUIRE_INIT();
  if (device < 0 || device >= device_total) return bad_device("Device", device);
  if (B->bind_device != NULL) {
    int32_t status = B->bind_device(device);
    if (status != SCHED_OK) return status;
  }
  thread_device = device;
  thread_device_generation = init_generation;
  return SCHED_OK;
}

SCHED_API int32_t sched_get_device(int32_t *out_device) {
  REQUIRE_INIT();
  if (out_device == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_device must not be NULL");
  *out_device = current_device();
  return SCHED_OK;
}

SCHED_API int32_t sched_device_can_access_peer(int32_t device, int32_t peer, int32_t *out_can) {
  REQUIRE_INIT();
  if (out_can == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_can must not be NULL");
  if (device < 0 || device >= device_total) return bad_device("Device", device);
  if (peer < 0 || peer >= device_total) return bad_device("Peer device", peer);
  if (device == peer) {
    *out_can = 1;
    return SCHED_OK;
  }
  act_on(device);
  return B->can_access_peer(device, peer, out_can);
}

SCHED_API int32_t sched_device_info_get(sched_device_info *out) {
  REQUIRE_INIT();
  if (out == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out must not be NULL");
  act_on(current_device());
  return B->device_info(out);
}

SCHED_API int32_t sched_mem_info(uint64_t *out_free, uint64_t *out_total) {
  REQUIRE_INIT();
  if (out_free == NULL || out_total == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_free and out_total must not be NULL");
  act_on(current_device());
  return B->mem_info(out_free, out_total);
}

/* ------------------------------------------------------------------ streams */

static void *load_native(stream_entry *entry) { return __atomic_load_n(&entry->native, __ATOMIC_ACQUIRE); }

static void store_native(stream_entry *entry) {
  __atomic_store_n(&entry->native, B->stream_native(entry->backend_stream), __ATOMIC_RELEASE);
}

/* Counts one more stream in partition (0: none) and gives its backend
 * object; counted before the backend call so that the partition cannot be
 * destroyed meanwhile. */
static int32_t bind_partition(uint32_t partition, int32_t device, void **out_backend) {
  *out_backend = NULL;
  if (partition == 0) return SCHED_OK;
  pthread_mutex_lock(&partitions_lock);
  partition_entry *entry = handles_get(&partitions, partition);
  int32_t partition_device = entry != NULL ? entry->device : -1;
  if (entry != NULL && partition_device == device) {
    entry->streams++;
    *out_backend = entry->backend_partition;
  }
  pthread_mutex_unlock(&partitions_lock);
  if (entry == NULL) return bad_handle("partition", partition);
  if (partition_device != device)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                      "Partition %" PRIu32 " is on device %" PRId32 ", the stream on device %" PRId32, partition,
                      partition_device, device);
  return SCHED_OK;
}

static void unbind_partition(uint32_t partition) {
  if (partition == 0) return;
  pthread_mutex_lock(&partitions_lock);
  partition_entry *entry = handles_get(&partitions, partition);
  if (entry != NULL) entry->streams--;
  pthread_mutex_unlock(&partitions_lock);
}

SCHED_API int32_t sched_stream_create(int32_t priority, uint32_t partition, uint32_t *out_stream,
                                      int32_t *out_priority) {
  REQUIRE_INIT();
  if (out_stream == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_stream must not be NULL");
  int32_t device = current_device();
  act_on(device);
  /* CUDA clamps silently too; report the effective value so callers can see it. */
  if (priority > priority_least[device]) priority = priority_least[device];
  if (priority < priority_greatest[device]) priority = priority_greatest[device];
  stream_entry *entry = malloc(sizeof *entry);
  if (entry == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory creating a stream");
  void *backend_partition;
  int32_t status = bind_partition(partition, device, &backend_partition);
  if (status == SCHED_OK) {
    status = B->stream_create(priority, backend_partition, &entry->backend_stream);
    if (status != SCHED_OK) unbind_partition(partition);
  }
  if (status != SCHED_OK) {
    free(entry);
    return status;
  }
  entry->partition = partition;
  entry->device = device;
  store_native(entry);
  uint32_t handle = handles_add(&streams, entry);
  if (handle == 0) {
    B->stream_destroy(entry->backend_stream);
    unbind_partition(partition);
    free(entry);
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Too many streams: the handle table is full");
  }
  *out_stream = handle;
  if (out_priority != NULL) *out_priority = priority;
  return SCHED_OK;
}

SCHED_API int32_t sched_stream_destroy(uint32_t stream) {
  REQUIRE_INIT();
  stream_entry *entry = handles_remove(&streams, stream);
  if (entry == NULL) return bad_handle("stream", stream);
  act_on(entry->device);
  int32_t status = B->stream_destroy(entry->backend_stream);
  unbind_partition(entry->partition);
  free(entry);
  return status;
}

SCHED_API int32_t sched_stream_rebind(uint32_t stream, uint32_t partition) {
  REQUIRE_INIT();
  stream_entry *entry = handles_get(&streams, stream);
  if (entry == NULL) return bad_handle("stream", stream);
  if (entry->partition == partition) return SCHED_OK;
  act_on(entry->device);
  void *backend_partition;
  int32_t status = bind_partition(partition, entry->device, &backend_partition);
  if (status != SCHED_OK) return status;
  status = B->stream_rebind(entry->backend_stream, backend_partition);
  if (status != SCHED_OK) {
    unbind_partition(partition);
    return status;
  }
  unbind_partition(entry->partition);
  entry->partition = partition;
  store_native(entry);
  return SCHED_OK;
}

SCHED_API int32_t sched_stream_query(uint32_t stream) {
  REQUIRE_INIT();
  LOOKUP_STREAM(stream, s);
  return B->stream_query(s);
}

SCHED_API int32_t sched_stream_synchronize(uint32_t stream) {
  REQUIRE_INIT();
  LOOKUP_STREAM(stream, s);
  return B->stream_synchronize(s);
}

SCHED_API int32_t sched_stream_native(uint32_t stream, void **out_native) {
  REQUIRE_INIT();
  if (out_native == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_native must not be NULL");
  LOOKUP_STREAM(stream, s);
  (void)s;
  *out_native = load_native(s_entry);
  return SCHED_OK;
}

SCHED_API int32_t sched_stream_wait_event(uint32_t stream, uint32_t event) {
  REQUIRE_INIT();
  LOOKUP_STREAM(stream, s);
  LOOKUP_EVENT(event, e);
  (void)e_entry;
  return B->stream_wait_event(s, e);
}

SCHED_API int32_t sched_launch_host_func(uint32_t stream, sched_host_fn fn, void *user_data) {
  REQUIRE_INIT();
  if (fn == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Host function must not be NULL");
  LOOKUP_STREAM(stream, s);
  pin_code((const void *)fn);
  return B->launch_host_func(s, fn, user_data);
}

static int is_native(void *object, void *native) { return load_native(object) == native; }

SCHED_API int32_t sched_launch_host_func_native(void *native_stream, sched_host_fn fn, void *user_data) {
  REQUIRE_INIT();
  if (fn == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Host function must not be NULL");
  /* A linear scan: streams are few, and a pointer from user code must be
   * proven live before the host backend dereferences it. */
  void *found = NULL;
  uint32_t stream = native_stream != NULL ? handles_acquire_match(&streams, is_native, native_stream, &found) : 0;
  if (stream == 0)
    return sched_fail(SCHED_ERR_INVALID_HANDLE, "Native stream %p is not a live libsched stream", native_stream);
  act_on(((stream_entry *)found)->device);
  pin_code((const void *)fn);
  int32_t status = B->launch_host_func(((stream_entry *)found)->backend_stream, fn, user_data);
  handles_release(&streams, stream);
  return status;
}

/* --------------------------------------------------------------- partitions */

SCHED_API int32_t sched_partition_create(const uint32_t *sm_counts, uint32_t n, uint32_t *out_partitions,
                                         uint32_t *out_sm_given) {
  REQUIRE_INIT();
  if (sm_counts == NULL || out_partitions == NULL || out_sm_given == NULL)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "sm_counts, out_partitions and out_sm_given must not be NULL");
  if (n == 0) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Partition count must be positive, got 0");
  uint64_t sum = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (sm_counts[i] == 0)
      return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "SM count of partition %" PRIu32 " must be positive, got 0", i);
    sum += sm_counts[i];
  }
  int32_t device = current_device();
  act_on(device);
  if (sum > (uint64_t)device_sm_count[device])
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Partitions ask for %" PRIu64 " SMs, the device has %" PRId32, sum,
                      device_sm_count[device]);
  void **objects = calloc((size_t)n + 1, sizeof *objects);
  uint32_t *given = calloc((size_t)n + 1, sizeof *given);
  uint32_t *handles = calloc((size_t)n + 1, sizeof *handles);
  int32_t status = SCHED_OK;
  if (objects == NULL || given == NULL || handles == NULL) {
    status = sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory creating %" PRIu32 " partitions", n);
  } else {
    status = B->partition_create(sm_counts, n, objects, given);
  }
  if (status == SCHED_OK) {
    /* One allocation per entry, since each is freed on its own at destroy. */
    for (uint32_t i = 0; i <= n && status == SCHED_OK; i++) {
      if (objects[i] == NULL) continue; /* only the rest, when no SM remains */
      partition_entry *entry = malloc(sizeof *entry);
      if (entry != NULL) {
        *entry = (partition_entry){objects[i], 0, device};
        handles[i] = handles_add(&partitions, entry);
      }
      if (entry == NULL || handles[i] == 0) {
        free(entry);
        status = sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Too many partitions: the handle table is full");
      }
    }
    if (status != SCHED_OK) {
      for (uint32_t i = 0; i <= n; i++) {
        if (handles[i] != 0) free(handles_remove(&partitions, handles[i]));
        if (objects[i] != NULL) B->partition_destroy(objects[i]);
      }
    }
  }
  if (status == SCHED_OK) {
    memcpy(out_partitions, handles, ((size_t)n + 1) * sizeof *handles);
    memcpy(out_sm_given, given, ((size_t)n + 1) * sizeof *given);
  }
  free(objects);
  free(given);
  free(handles);
  return status;
}

SCHED_API int32_t sched_partition_create_sets(const uint64_t *group_masks, const uint8_t *with_remainder,
                                              uint32_t n, uint32_t *out_partitions, uint32_t *out_sm_given) {
  REQUIRE_INIT();
  if (group_masks == NULL || with_remainder == NULL || out_partitions == NULL || out_sm_given == NULL)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                      "group_masks, with_remainder, out_partitions and out_sm_given must not be NULL");
  if (n == 0) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Partition count must be positive, got 0");
  int32_t device = current_device();
  act_on(device);
  const int32_t groups = device_sm_groups[device];
  if (groups <= 0)
    return sched_fail(SCHED_ERR_UNSUPPORTED, "SM partitions are unsupported here: the device reports no SM groups");
  const uint64_t valid = groups >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << groups) - 1);
  for (uint32_t i = 0; i < n; i++) {
    if (group_masks[i] == 0 && with_remainder[i] == 0)
      return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "SM set %" PRIu32 " names no SM", i);
    if ((group_masks[i] & ~valid) != 0)
      return sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                        "SM set %" PRIu32 " names a group past the device's %" PRId32 " (mask 0x%" PRIx64 ")", i,
                        groups, group_masks[i]);
  }
  uint32_t *handles = calloc(n, sizeof *handles);
  if (handles == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory creating %" PRIu32 " SM sets", n);
  int32_t status = SCHED_OK;
  for (uint32_t i = 0; i < n && status == SCHED_OK; i++) {
    void *object = NULL;
    status = B->partition_create_set(group_masks[i], with_remainder[i] != 0, &object, &out_sm_given[i]);
    if (status != SCHED_OK) break;
    partition_entry *entry = malloc(sizeof *entry);
    if (entry != NULL) {
      *entry = (partition_entry){object, 0, device};
      handles[i] = handles_add(&partitions, entry);
    }
    if (entry == NULL || handles[i] == 0) {
      free(entry);
      B->partition_destroy(object);
      status = sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Too many partitions: the handle table is full");
    }
  }
  if (status != SCHED_OK) {
    for (uint32_t i = 0; i < n; i++) {
      if (handles[i] == 0) continue;
      partition_entry *entry = handles_remove(&partitions, handles[i]);
      B->partition_destroy(entry->backend_partition);
      free(entry);
    }
  } else {
    memcpy(out_partitions, handles, (size_t)n * sizeof *handles);
  }
  free(handles);
  return status;
}

SCHED_API int32_t sched_partition_destroy(uint32_t partition) {
  REQUIRE_INIT();
  pthread_mutex_lock(&partitions_lock);
  partition_entry *entry = handles_get(&partitions, partition);
  if (entry == NULL) {
    pthread_mutex_unlock(&partitions_lock);
    return bad_handle("partition", partition);
  }
  if (entry->streams > 0) {
    uint32_t bound = entry->streams;
    pthread_mutex_unlock(&partitions_lock);
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                      "Partition %" PRIu32 " still has %" PRIu32 " stream(s) bound to it: rebind or destroy them first",
                      partition, bound);
  }
  handles_remove(&partitions, partition);
  pthread_mutex_unlock(&partitions_lock);
  act_on(entry->device);
  int32_t status = B->partition_destroy(entry->backend_partition);
  free(entry);
  return status;
}

/* ------------------------------------------------------------------- events */

SCHED_API int32_t sched_event_create(uint32_t flags, uint32_t *out_event) {
  REQUIRE_INIT();
  if (out_event == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_event must not be NULL");
  if (flags & ~SCHED_EVENT_TIMING) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Unknown event flags 0x%" PRIx32, flags);
  event_entry *entry = malloc(sizeof *entry);
  if (entry == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory creating an event");
  entry->device = current_device();
  act_on(entry->device);
  int32_t status = B->event_create(flags, &entry->backend_event);
  if (status != SCHED_OK) {
    free(entry);
    return status;
  }
  uint32_t handle = handles_add(&events, entry);
  if (handle == 0) {
    B->event_destroy(entry->backend_event);
    free(entry);
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Too many events: the handle table is full");
  }
  *out_event = handle;
  return SCHED_OK;
}

int32_t sched_event_create_for(uint32_t stream, uint32_t *out_event) {
  REQUIRE_INIT();
  int32_t device;
  {
    LOOKUP_STREAM(stream, s);
    (void)s;
    device = s_entry->device;
  }
  int32_t keep_thread = thread_device, keep_generation = (int32_t)thread_device_generation;
  thread_device = device;
  thread_device_generation = init_generation;
  int32_t status = sched_event_create(0, out_event);
  thread_device = keep_thread;
  thread_device_generation = (uint32_t)keep_generation;
  return status;
}

SCHED_API int32_t sched_event_destroy(uint32_t event) {
  REQUIRE_INIT();
  event_entry *entry = handles_remove(&events, event);
  if (entry == NULL) return bad_handle("event", event);
  act_on(entry->device);
  int32_t status = B->event_destroy(entry->backend_event);
  free(entry);
  return status;
}

SCHED_API int32_t sched_event_record(uint32_t event, uint32_t stream) {
  REQUIRE_INIT();
  LOOKUP_EVENT(event, e);
  LOOKUP_STREAM(stream, s);
  if (e_entry->device != s_entry->device)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                      "Event %" PRIu32 " is on device %" PRId32 ", stream %" PRIu32 " on device %" PRId32
                      ": record it on a stream of its device",
                      event, e_entry->device, stream, s_entry->device);
  return B->event_record(e, s);
}

SCHED_API int32_t sched_event_query(uint32_t event) {
  REQUIRE_INIT();
  LOOKUP_EVENT(event, e);
  act_on(e_entry->device);
  return B->event_query(e);
}

SCHED_API int32_t sched_event_synchronize(uint32_t event) {
  REQUIRE_INIT();
  LOOKUP_EVENT(event, e);
  act_on(e_entry->device);
  return B->event_synchronize(e);
}

SCHED_API int32_t sched_event_elapsed_ms(uint32_t start, uint32_t end, float *out_ms) {
  REQUIRE_INIT();
  if (out_ms == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_ms must not be NULL");
  LOOKUP_EVENT(start, s);
  LOOKUP_EVENT(end, e);
  if (s_entry->device != e_entry->device)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Elapsed time needs two events of one device, got devices %" PRId32 " and %" PRId32,
                      s_entry->device, e_entry->device);
  act_on(s_entry->device);
  return B->event_elapsed_ms(s, e, out_ms);
}

/* ------------------------------------------------------------------- memory */

SCHED_API int32_t sched_pool_create(uint64_t max_bytes, uint64_t release_threshold, uint32_t *out_pool) {
  REQUIRE_INIT();
  if (out_pool == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_pool must not be NULL");
  pool_entry *entry = calloc(1, sizeof *entry);
  if (entry == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory creating a pool");
  entry->device = current_device();
  act_on(entry->device);
  int32_t status = B->pool_create(max_bytes, release_threshold, &entry->backend_pool);
  if (status != SCHED_OK) {
    free(entry);
    return status;
  }
  entry->max_bytes = max_bytes;
  uint32_t handle = handles_add(&pools, entry);
  if (handle == 0) {
    B->pool_destroy(entry->backend_pool);
    free(entry);
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Too many pools: the handle table is full");
  }
  *out_pool = handle;
  return SCHED_OK;
}

SCHED_API int32_t sched_pool_destroy(uint32_t pool) {
  REQUIRE_INIT();
  pthread_mutex_lock(&pools_lock);
  pool_entry *entry = handles_get(&pools, pool);
  if (entry == NULL) {
    pthread_mutex_unlock(&pools_lock);
    return bad_handle("pool", pool);
  }
  if (entry->live > 0) {
    uint64_t live = entry->live;
    pthread_mutex_unlock(&pools_lock);
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Pool %" PRIu32 " still has %" PRIu64 " live allocation(s): free them first",
                      pool, live);
  }
  handles_remove(&pools, pool);
  pthread_mutex_unlock(&pools_lock);
  act_on(entry->device);
  int32_t status = B->pool_destroy(entry->backend_pool);
  free(entry);
  return status;
}

SCHED_API int32_t sched_pool_trim(uint32_t pool, uint64_t keep_bytes) {
  REQUIRE_INIT();
  pool_entry *entry = handles_get(&pools, pool);
  if (entry == NULL) return bad_handle("pool", pool);
  act_on(entry->device);
  return B->pool_trim(entry->backend_pool, keep_bytes);
}

SCHED_API int32_t sched_pool_usage(uint32_t pool, uint64_t *out_used, uint64_t *out_reserved) {
  REQUIRE_INIT();
  if (out_used == NULL || out_reserved == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_used and out_reserved must not be NULL");
  pool_entry *entry = handles_get(&pools, pool);
  if (entry == NULL) return bad_handle("pool", pool);
  uint64_t reserved;
  act_on(entry->device);
  int32_t status = B->pool_reserved(entry->backend_pool, &reserved);
  if (status != SCHED_OK) return status;
  pthread_mutex_lock(&pools_lock);
  *out_used = entry->used;
  pthread_mutex_unlock(&pools_lock);
  *out_reserved = reserved;
  return SCHED_OK;
}

SCHED_API int32_t sched_malloc_async(uint32_t pool, uint32_t stream, uint64_t bytes, void **out_ptr) {
  REQUIRE_INIT();
  if (out_ptr == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_ptr must not be NULL");
  if (bytes == 0) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Allocation size must be positive, got 0");
  LOOKUP_STREAM(stream, s);
  pthread_mutex_lock(&pools_lock);
  pool_entry *entry = handles_get(&pools, pool);
  if (entry == NULL) {
    pthread_mutex_unlock(&pools_lock);
    return bad_handle("pool", pool);
  }
  if (entry->device != s_entry->device) {
    int32_t pool_device = entry->device;
    pthread_mutex_unlock(&pools_lock);
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                      "Pool %" PRIu32 " is on device %" PRId32 ", stream %" PRIu32 " on device %" PRId32
                      ": allocate on a stream of the pool's device",
                      pool, pool_device, stream, s_entry->device);
  }
  /* Charge before the backend call so two threads cannot both pass the cap. */
  if (entry->max_bytes != 0 && (bytes > entry->max_bytes || entry->used > entry->max_bytes - bytes)) {
    uint64_t used = entry->used, max = entry->max_bytes;
    pthread_mutex_unlock(&pools_lock);
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY,
                      "Pool %" PRIu32 " cannot allocate %" PRIu64 " bytes: %" PRIu64 " of its %" PRIu64 " bytes in use",
                      pool, bytes, used, max);
  }
  entry->used += bytes;
  entry->live++;
  pthread_mutex_unlock(&pools_lock);
  void *ptr = NULL;
  int32_t status = B->malloc_async(entry->backend_pool, s, bytes, &ptr);
  if (status == SCHED_OK && registry_insert(&device_allocations, (allocation){ptr, bytes, pool, entry->device}) != 0) {
    B->free_async(ptr, s);
    status = sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory tracking a device allocation");
  }
  if (status != SCHED_OK) {
    pthread_mutex_lock(&pools_lock);
    entry->used -= bytes;
    entry->live--;
    pthread_mutex_unlock(&pools_lock);
    return status;
  }
  *out_ptr = ptr;
  return SCHED_OK;
}

static void uncharge_pool(const allocation *a) {
  if (a->pool == 0) return;
  pthread_mutex_lock(&pools_lock);
  pool_entry *entry = handles_get(&pools, a->pool);
  if (entry != NULL) {
    entry->used -= a->size;
    entry->live--;
  }
  pthread_mutex_unlock(&pools_lock);
}

static int32_t unknown_device_pointer(const void *ptr) {
  return sched_fail(SCHED_ERR_INVALID_HANDLE, "Device pointer %p is not a live allocation: never allocated, already freed, or not a base pointer", ptr);
}

SCHED_API int32_t sched_free_async(void *ptr, uint32_t stream) {
  REQUIRE_INIT();
  LOOKUP_STREAM(stream, s);
  /* Remove first: of two racing frees of one pointer, exactly one proceeds. */
  allocation a;
  if (registry_remove(&device_allocations, ptr, &a) != 0) return unknown_device_pointer(ptr);
  if (a.pool == 0) {
    registry_insert(&device_allocations, a);
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Pointer %p came from sched_malloc: free it with sched_free", ptr);
  }
  int32_t status = B->free_async(ptr, s);
  if (status != SCHED_OK) {
    registry_insert(&device_allocations, a);
    return status;
  }
  uncharge_pool(&a);
  return SCHED_OK;
}

SCHED_API int32_t sched_malloc(uint64_t bytes, void **out_ptr) {
  REQUIRE_INIT();
  if (out_ptr == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_ptr must not be NULL");
  if (bytes == 0) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Allocation size must be positive, got 0");
  void *ptr = NULL;
  int32_t device = current_device();
  act_on(device);
  int32_t status = B->malloc_sync(bytes, &ptr);
  if (status != SCHED_OK) return status;
  if (registry_insert(&device_allocations, (allocation){ptr, bytes, 0, device}) != 0) {
    B->free_sync(ptr);
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory tracking a device allocation");
  }
  *out_ptr = ptr;
  return SCHED_OK;
}

SCHED_API int32_t sched_free(void *ptr) {
  REQUIRE_INIT();
  allocation a;
  if (registry_remove(&device_allocations, ptr, &a) != 0) return unknown_device_pointer(ptr);
  if (a.pool != 0) {
    registry_insert(&device_allocations, a);
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Pointer %p came from a pool: free it with sched_free_async", ptr);
  }
  act_on(a.device);
  int32_t status = B->free_sync(ptr);
  if (status != SCHED_OK) registry_insert(&device_allocations, a);
  return status;
}

SCHED_API int32_t sched_host_alloc(uint64_t bytes, void **out_ptr) {
  REQUIRE_INIT();
  if (out_ptr == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_ptr must not be NULL");
  if (bytes == 0) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Allocation size must be positive, got 0");
  void *ptr = NULL;
  int32_t device = current_device();
  act_on(device);
  int32_t status = B->host_alloc(bytes, &ptr);
  if (status != SCHED_OK) return status;
  if (registry_insert(&pinned_allocations, (allocation){ptr, bytes, 0, device}) != 0) {
    B->host_free(ptr);
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory tracking a pinned allocation");
  }
  *out_ptr = ptr;
  return SCHED_OK;
}

SCHED_API int32_t sched_host_free(void *ptr) {
  REQUIRE_INIT();
  allocation a;
  if (registry_remove(&pinned_allocations, ptr, &a) != 0)
    return sched_fail(SCHED_ERR_INVALID_HANDLE, "Host pointer %p is not a live pinned allocation", ptr);
  act_on(a.device);
  int32_t status = B->host_free(ptr);
  if (status != SCHED_OK) registry_insert(&pinned_allocations, a);
  return status;
}

/* Resolves base + offset for a device range, checking it lies inside one live allocation. */
static int32_t device_range(void *base, uint64_t offset, uint64_t bytes, const char *side, char **out,
                            int32_t *out_device) {
  allocation a;
  if (registry_find(&device_allocations, base, &a) != 0 && vmm_find_block(base, &a) != 0)
    return unknown_device_pointer(base);
  if (offset > a.size || bytes > a.size - offset)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                      "Copy %s range [%" PRIu64 ", %" PRIu64 " + %" PRIu64 ") is outside the %" PRIu64 "-byte allocation",
                      side, offset, offset, bytes, a.size);
  *out = (char *)base + offset;
  if (out_device != NULL) *out_device = a.device;
  return SCHED_OK;
}

static int32_t host_range(const void *base, uint64_t offset, uint64_t bytes, const char *side, char **out) {
  /* An empty typed array arrives as NULL; an empty copy touches nothing. */
  if (base == NULL && bytes > 0) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Copy %s host pointer must not be NULL", side);
  *out = (char *)base + offset;
  return SCHED_OK;
}

SCHED_API int32_t sched_memcpy_async(void *dst, uint64_t dst_offset, const void *src, uint64_t src_offset,
                                     uint64_t bytes, int32_t kind, uint32_t stream) {
  REQUIRE_INIT();
  LOOKUP_STREAM(stream, s);
  char *d = NULL, *from = NULL;
  int32_t dst_device = -1, src_device = -1;
  int32_t status;
  switch (kind) {
    case SCHED_COPY_HOST_TO_DEVICE:
      status = device_range(dst, dst_offset, bytes, "destination", &d, NULL);
      if (status == SCHED_OK) status = host_range(src, src_offset, bytes, "source", &from);
      break;
    case SCHED_COPY_DEVICE_TO_HOST:
      status = host_range(dst, dst_offset, bytes, "destination", &d);
      if (status == SCHED_OK) status = device_range((void *)src, src_offset, bytes, "source", &from, NULL);
      break;
    case SCHED_COPY_DEVICE_TO_DEVICE:
      status = device_range(dst, dst_offset, bytes, "destination", &d, &dst_device);
      if (status == SCHED_OK) status = device_range((void *)src, src_offset, bytes, "source", &from, &src_device);
      break;
    default:
      return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Unknown copy kind %" PRId32 ": expected 1 (H2D), 2 (D2H) or 3 (D2D)", kind);
  }
  if (status != SCHED_OK) return status;
  if (bytes == 0) return SCHED_OK;
  if (dst_device != src_device) return B->memcpy_peer(d, dst_device, from, src_device, bytes, s);
  return B->memcpy_async(d, from, bytes, kind, s);
}

SCHED_API int32_t sched_memset_async(void *dst, uint64_t offset, uint8_t value, uint64_t bytes, uint32_t stream) {
  REQUIRE_INIT();
  LOOKUP_STREAM(stream, s);
  char *d = NULL;
  int32_t status = device_range(dst, offset, bytes, "destination", &d, NULL);
  if (status != SCHED_OK) return status;
  if (bytes == 0) return SCHED_OK;
  return B->memset_async(d, value, bytes, s);
}

/* ---------------------------------------------------------- fault injection */

SCHED_API int32_t sched_host_inject_fault(int32_t kind, uint32_t count) {
  REQUIRE_INIT();
  if (B->inject_fault == NULL)
    return sched_fail(SCHED_ERR_UNSUPPORTED, "Fault injection exists only on the host backend");
  if (kind < SCHED_FAULT_ALLOC || kind > SCHED_FAULT_STREAM)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Unknown fault kind %" PRId32 ": expected 1 (alloc), 2 (copy) or 3 (stream)", kind);
  B->inject_fault(kind, count);
  return SCHED_OK;
}

/* -------------------------------------------------------------- completions */

SCHED_API int32_t sched_stream_notify(uint32_t stream, uint32_t token) {
  REQUIRE_INIT();
  LOOKUP_STREAM(stream, s);
  return B->stream_notify(s, token);
}

SCHED_API int32_t sched_event_notify(uint32_t event, uint32_t token) {
  REQUIRE_INIT();
  LOOKUP_EVENT(event, e);
  act_on(e_entry->device);
  return B->event_notify(e, token);
}

/* ------------------------------------------------------------------ devices */

SCHED_API int32_t sched_stream_device(uint32_t stream, int32_t *out_device) {
  REQUIRE_INIT();
  if (out_device == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_device must not be NULL");
  LOOKUP_STREAM(stream, s);
  (void)s;
  *out_device = s_entry->device;
  return SCHED_OK;
}

SCHED_API int32_t sched_pointer_device(const void *ptr, int32_t *out_device) {
  REQUIRE_INIT();
  if (out_device == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_device must not be NULL");
  allocation a;
  if (registry_find(&device_allocations, ptr, &a) != 0) return unknown_device_pointer(ptr);
  *out_device = a.device;
  return SCHED_OK;
}
