/*
 * SM partitions on CUDA: green contexts (compute capability 9.0 and later).
 *
 * The CUDA 13.0 runtime API has no green-context functions, and libsched
 * never links libcuda (it must load where no driver is), so every driver
 * function below comes from cudaGetDriverEntryPointByVersion; <cuda.h>
 * supplies types only.
 *
 * A layout is made from ONE split of the whole device into groups of the
 * minimum partition size: cuDevResourceGenerateDesc combines only groups of
 * the same split, so each partition's descriptor takes consecutive groups
 * and the rest takes the groups left over plus the split's remainder.
 *
 * The split ignores SM co-scheduling (GPC boundaries): so split, an H200's
 * 132 SMs make 16 groups of 8 and 4 left over, and two halves of the device
 * get 64 SMs each; split by GPC they make 15 groups and 12 left over, and
 * two halves cannot both have 64. The price is that a partition's SMs need
 * not share a GPC, which may limit large thread-block clusters; kernels
 * with clusters of 2 ran in such partitions of 8 and of 64 SMs on an H200.
 *
 * cuGreenCtxCreate waits for the whole device to go idle (measured on an
 * H200: 300 ms behind a 300 ms kernel), so every new layout costs a drain of
 * the device; cuGreenCtxDestroy does not wait.
 *
 * Green contexts are therefore made once per SM set and kept for the life of
 * the process, across layouts and across shutdown and initialize: driver
 * 580 keeps about 1.7 MiB of host memory and 5 MiB of device memory of every
 * green context created and destroyed while the primary context is retained
 * (H200, 2026-12-01, bench/native/green_ctx_runtime_probe.cu: the same with
 * no CUDA runtime call at all; 0.6 KiB of host memory without a primary
 * context), so a create/destroy per layout change grew both without bound. Every green context libsched uses
 * comes from the set cache below; only a cache overflow (more distinct sets
 * than SET_CACHE_SIZE on one device) still destroys one.
 *
 * Lifetime: a partition is referenced by its owner (the dispatch layer's
 * handle) and by each native stream made in it. A green context must
 * outlive its streams and the work they queued, so when the last reference
 * goes the partition joins a retiring list; partitions_reap destroys it once
 * the tail events recorded on its streams have completed. Reaping runs at
 * each partition create and destroy, and at shutdown.
 *
 * Locking: one mutex guards the retiring list and every partition's tail
 * events. It may be taken under the watcher's lock (a stream released by
 * the watcher retires here) and never the other way round.
 */
#include <cuda.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../libsched/src/partition_plan.h"
#include "cuda_common.h"

/* The driver ABI these declarations (CUDA 13.0's cuda.h) describe. */
#define DRIVER_ABI_VERSION 13000

static const unsigned int SPLIT_FLAGS = CU_DEV_SM_RESOURCE_SPLIT_IGNORE_SM_COSCHEDULING;

struct driver_fns {
  decltype(&cuDeviceGet) device_get;
  decltype(&cuDeviceGetDevResource) device_get_dev_resource;
  decltype(&cuDevSmResourceSplitByCount) sm_resource_split_by_count;
  decltype(&cuDevResourceGenerateDesc) dev_resource_generate_desc;
  decltype(&cuGreenCtxCreate) green_ctx_create;
  decltype(&cuGreenCtxDestroy) green_ctx_destroy;
  decltype(&cuGreenCtxStreamCreate) green_ctx_stream_create;
  decltype(&cuGreenCtxGetDevResource) green_ctx_get_dev_resource;
  decltype(&cuGetErrorName) get_error_name;
  decltype(&cuGetErrorString) get_error_string;
};

struct tail_event {
  cudaEvent_t event;
  tail_event *next;
};

struct cuda_partition {
  CUgreenCtx ctx;
  /* One for the owner, one per native stream made in it and not yet retired. */
  std::atomic<int> refcount;
  uint32_t sm_count;             /* SMs its green context really has */
  tail_event *tails;             /* of its retired streams, not yet completed */
  cuda_partition *next_retiring; /* in `retiring` once unreferenced */
};

/* Written only by partitions_init, which runs at sched_init and so races
 * no other call. */
static driver_fns drv;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cuda_partition *retiring;

/* The one split that every SM set (sched_partition_create_sets) is made
 * from, taken at init: groups of `granularity` SMs in split order, and the
 * SMs left over. Sets of one split may share a descriptor; sets of
 * different splits may not, and a split costs nothing, but a green context
 * does (a wait for the device to drain), so sets are cached below. */
#define MAX_SET_GROUPS 64

/* The SM sets made so far, each holding one reference on its green context,
 * so that a layout change back to a set seen before (a reservation made
 * again, a partition deleted and re-created, the next initialize) makes no
 * new green context. The cache outlives shutdown (see the top of the file).
 * Touched only by calls of the dispatch layer (one JS thread at a time). */
#define SET_CACHE_SIZE 48
struct cached_set {
  uint64_t mask;
  bool with_remainder;
  cuda_partition *partition;
  uint64_t last_used;
};

/* What partitions_init learned about one device, and its split and SM-set
 * cache: partitions are per device. */
struct device_layout {
  bool available;
  char unavailable_reason[256];
  int granularity;
  int groups_total;
  CUdevice device;
  CUdevResource split_groups[MAX_SET_GROUPS];
  CUdevResource split_remainder;
  bool split_has_remainder;
  cached_set set_cache[SET_CACHE_SIZE];
  uint64_t set_clock;
  /* The split the cached sets come from; unlike the fields above, these
   * survive partitions_init. */
  int granularity_cached;
  int groups_cached;
};
static device_layout layouts[SCHED_MAX_DEVICES];

/* The layout of the device the current call acts on. */
static device_layout *here(void) { return &layouts[sched_acting_device()]; }

static int32_t cu_status(CUresult r) {
  switch (r) {
    case CUDA_ERROR_NOT_SUPPORTED:
      return SCHED_ERR_UNSUPPORTED;
    case CUDA_ERROR_INVALID_VALUE:
    case CUDA_ERROR_INVALID_RESOURCE_TYPE:
    case CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION:
      return SCHED_ERR_INVALID_ARGUMENT;
    case CUDA_ERROR_OUT_OF_MEMORY:
      return SCHED_ERR_OUT_OF_MEMORY;
    default:
      return SCHED_ERR_BACKEND;
  }
}

/* The driver-API twin of cuda_fail: "<what> failed: <text> (<name>)". */
static int32_t cu_fail(CUresult r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int32_t cu_fail(CUresult r, const char *fmt, ...) {
  const char *name = NULL;
  const char *text = NULL;
  if (drv.get_error_name == NULL || drv.get_error_name(r, &name) != CUDA_SUCCESS) name = NULL;
  if (drv.get_error_string == NULL || drv.get_error_string(r, &text) != CUDA_SUCCESS) text = NULL;
  char what[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return sched_fail(cu_status(r), "%s failed: %s (%s %d)", what, text != NULL ? text : "driver error",
                    name != NULL ? name : "CUresult", (int)r);
}

static bool load(const char *name, void **fn) {
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  cudaError_t err = cudaGetDriverEntryPointByVersion(name, fn, DRIVER_ABI_VERSION, cudaEnableDefault, &found);
  if (err == cudaSuccess && found == cudaDriverEntryPointSuccess && *fn != NULL) return true;
  if (err != cudaSuccess) (void)cudaGetLastError();
  *fn = NULL;
  snprintf(here()->unavailable_reason, sizeof here()->unavailable_reason, "the CUDA driver has no %s for CUDA 13.0 (%s)", name,
           found == cudaDriverEntryPointVersionNotSufficent ? "driver too old" : "symbol not found");
  return false;
}

#define LOAD(field, name) load(name, (void **)&drv.field)

static void partition_release(cuda_partition *p);

/* Drops the cache's references; each green context goes once its streams
 * and their work are gone. */
static void release_set_cache(device_layout *layout) {
  for (int i = 0; i < SET_CACHE_SIZE; i++) {
    cuda_partition *p = layout->set_cache[i].partition;
    memset(&layout->set_cache[i], 0, sizeof layout->set_cache[i]);
    if (p != NULL) partition_release(p);
  }
  layout->set_clock = 0;
}

void partitions_init(void) {
  here()->available = false;
  here()->granularity = 0;
  here()->groups_total = 0;
  memset(&drv, 0, sizeof drv);
  snprintf(here()->unavailable_reason, sizeof here()->unavailable_reason, "not initialized");
  /* Error texts first, so later failures can be described. */
  (void)LOAD(get_error_name, "cuGetErrorName");
  (void)LOAD(get_error_string, "cuGetErrorString");
  if (g_cuda.prop[sched_acting_device()].major < 9) {
    snprintf(here()->unavailable_reason, sizeof here()->unavailable_reason,
             "green contexts are used from compute capability 9.0 on, this device has %d.%d", g_cuda.prop[sched_acting_device()].major,
             g_cuda.prop[sched_acting_device()].minor);
    return;
  }
  if (!(LOAD(device_get, "cuDeviceGet") && LOAD(device_get_dev_resource, "cuDeviceGetDevResource") &&
        LOAD(sm_resource_split_by_count, "cuDevSmResourceSplitByCount") &&
        LOAD(dev_resource_generate_desc, "cuDevResourceGenerateDesc") &&
        LOAD(green_ctx_create, "cuGreenCtxCreate") && LOAD(green_ctx_destroy, "cuGreenCtxDestroy") &&
        LOAD(green_ctx_stream_create, "cuGreenCtxStreamCreate") &&
        LOAD(green_ctx_get_dev_resource, "cuGreenCtxGetDevResource"))) {
    return;
  }
  CUresult r = drv.device_get(&here()->device, sched_acting_device());
  CUdevResource all;
  memset(&all, 0, sizeof all);
  if (r == CUDA_SUCCESS) r = drv.device_get_dev_resource(here()->device, &all, CU_DEV_RESOURCE_TYPE_SM);
  /* The group size and count are what a split really produces: count the
   * groups of the co-scheduled minimum (8 from compute capability 9.0 on),
   * then make one and read its size. */
  CUdevResource first;
  memset(&first, 0, sizeof first);
  unsigned int groups = 0;
  unsigned int one = 1;
  if (r == CUDA_SUCCESS) {
    unsigned int min_count = all.sm.minSmPartitionSize > 0 ? all.sm.minSmPartitionSize : 8;
    r = drv.sm_resource_split_by_count(NULL, &groups, &all, NULL, SPLIT_FLAGS, min_count);
    if (r == CUDA_SUCCESS && groups > 0) {
      r = drv.sm_resource_split_by_count(&first, &one, &all, NULL, SPLIT_FLAGS, min_count);
    }
  }
  if (r != CUDA_SUCCESS || groups == 0 || first.sm.smCount == 0) {
    const char *text = NULL;
    if (drv.get_error_string == NULL || drv.get_error_string(r, &text) != CUDA_SUCCESS) text = NULL;
    snprintf(here()->unavailable_reason, sizeof here()->unavailable_reason, "the driver cannot split this device's SMs: %s",
             r != CUDA_SUCCESS && text != NULL ? text : "no SM group");
    return;
  }
  int groups_kept = (int)(groups > MAX_SET_GROUPS ? MAX_SET_GROUPS : groups);
  /* The split is the same on every initialize of a device, so sets cached
   * by an earlier one stay valid; should it ever differ, they go. */
  if (here()->granularity_cached != (int)first.sm.smCount || here()->groups_cached != groups_kept) {
    release_set_cache(here());
    here()->granularity_cached = (int)first.sm.smCount;
    here()->groups_cached = groups_kept;
  }
  here()->granularity = (int)first.sm.smCount;
  here()->groups_total = groups_kept;
  memset(here()->split_groups, 0, sizeof here()->split_groups);
  memset(&here()->split_remainder, 0, sizeof here()->split_remainder);
  unsigned int made = (unsigned int)here()->groups_total;
  CUdevResource *all_groups = (CUdevResource *)calloc(groups, sizeof *all_groups);
  if (all_groups == NULL) {
    snprintf(here()->unavailable_reason, sizeof here()->unavailable_reason, "out of host memory splitting the SMs");
    return;
  }
  unsigned int count = groups;
  r = drv.sm_resource_split_by_count(all_groups, &count, &all, &here()->split_remainder, SPLIT_FLAGS, (unsigned int)here()->granularity);
  if (r != CUDA_SUCCESS || count < made) {
    free(all_groups);
    snprintf(here()->unavailable_reason, sizeof here()->unavailable_reason, "the driver cannot split this device's SMs into groups");
    return;
  }
  memcpy(here()->split_groups, all_groups, made * sizeof *all_groups);
  free(all_groups);
  here()->split_has_remainder = here()->split_remainder.type == CU_DEV_RESOURCE_TYPE_SM && here()->split_remainder.sm.smCount > 0;
  here()->available = true;
}

int partitions_granularity(void) { return here()->available ? here()->granularity : 0; }

int partitions_groups(void) { return here()->available ? here()->groups_total : 0; }

static void partition_release(cuda_partition *p) {
  if (p->refcount.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  /* No CUDA call here: this may run on the watcher's thread. */
  pthread_mutex_lock(&lock);
  p->next_retiring = retiring;
  retiring = p;
  pthread_mutex_unlock(&lock);
}

/* Frees the tail events of p that have completed (all of them when wait).
 * Returns whether none is left. Caller holds the lock. */
static bool drop_completed_tails(cuda_partition *p, bool wait) {
  for (tail_event **link = &p->tails; *link != NULL;) {
    tail_event *t = *link;
    cudaError_t err = wait ? cudaEventSynchronize(t->event) : cudaEventQuery(t->event);
    if (err == cudaErrorNotReady) {
      link = &t->next;
      continue;
    }
    /* Another error means a failed context whose work will never run:
     * nothing is left to wait for. */
    if (err != cudaSuccess) (void)cudaGetLastError();
    (void)cudaEventDestroy(t->event);
    *link = t->next;
    free(t);
  }
  return p->tails == NULL;
}

void partitions_reap(bool wait) {
  /* At shutdown (wait) the cached sets stay: see the top of the file. */
  pthread_mutex_lock(&lock);
  for (cuda_partition **link = &retiring; *link != NULL;) {
    cuda_partition *p = *link;
    if (!drop_completed_tails(p, wait)) {
      link = &p->next_retiring;
      continue;
    }
    *link = p->next_retiring;
    CUresult r = drv.green_ctx_destroy(p->ctx);
    if (r != CUDA_SUCCESS) {
      /* Nobody can report it (this runs on behalf of earlier calls);
       * keep the text as this thread's last error for a debugger. */
      (void)cu_fail(r, "cuGreenCtxDestroy");
    }
    free(p);
  }
  pthread_mutex_unlock(&lock);
}

int32_t partition_stream_create(cuda_partition *p, int priority, cudaStream_t *out) {
  if (p == NULL) {
    /* Non-blocking: libsched streams must never synchronize implicitly
     * with the legacy default stream that user code might use. */
    CUDA_CHECK(cudaStreamCreateWithPriority(out, cudaStreamNonBlocking, priority),
               "cudaStreamCreateWithPriority with priority %d", priority);
    return SCHED_OK;
  }
  CUstream s = NULL;
  CUresult r = drv.green_ctx_stream_create(&s, p->ctx, CU_STREAM_NON_BLOCKING, priority);
  if (r != CUDA_SUCCESS) return cu_fail(r, "cuGreenCtxStreamCreate with priority %d", priority);
  p->refcount.fetch_add(1, std::memory_order_relaxed);
  *out = (cudaStream_t)s;
  return SCHED_OK;
}

int32_t partition_stream_retire(cuda_partition *p, cudaStream_t s, cudaEvent_t tail) {
  if (p == NULL) {
    if (tail != NULL) (void)cudaEventDestroy(tail);
    CUDA_CHECK(cudaStreamDestroy(s), "cudaStreamDestroy");
    return SCHED_OK;
  }
  if (tail == NULL) {
    cudaError_t err = cudaEventCreateWithFlags(&tail, cudaEventDisableTiming);
    if (err == cudaSuccess && cudaEventRecord(tail, s) != cudaSuccess) {
      (void)cudaEventDestroy(tail);
      err = cudaErrorUnknown;
    }
    if (err != cudaSuccess) {
      /* Without a tail event the only safe way to let the green context
       * go later is to wait for the stream now. */
      (void)cudaGetLastError();
      (void)cudaStreamSynchronize(s);
      tail = NULL;
    }
  }
  tail_event *t = tail != NULL ? (tail_event *)calloc(1, sizeof *t) : NULL;
  if (tail != NULL && t == NULL) {
    (void)cudaEventSynchronize(tail);
    (void)cudaEventDestroy(tail);
  }
  pthread_mutex_lock(&lock);
  /* Streams come and go in a long-lived partition: keep only pending tails. */
  (void)drop_completed_tails(p, false);
  if (t != NULL) {
    t->event = tail;
    t->next = p->tails;
    p->tails = t;
  }
  pthread_mutex_unlock(&lock);
  cudaError_t err = cudaStreamDestroy(s);
  partition_release(p);
  if (err != cudaSuccess) return cuda_fail(err, "cudaStreamDestroy of a partition's stream");
  return SCHED_OK;
}

/* A green context on `count` resources of one split; its real SM count is
 * read back from the context. */
static int32_t make_partition(CUdevResource *resources, unsigned int count, cuda_partition **out,
                              uint32_t *out_sms) {
  CUdevResourceDesc desc = NULL;
  CUresult r = drv.dev_resource_generate_desc(&desc, resources, count);
  if (r != CUDA_SUCCESS) return cu_fail(r, "cuDevResourceGenerateDesc of %u SM group(s)", count);
  CUgreenCtx ctx = NULL;
  r = drv.green_ctx_create(&ctx, desc, here()->device, CU_GREEN_CTX_DEFAULT_STREAM);
  if (r != CUDA_SUCCESS) return cu_fail(r, "cuGreenCtxCreate");
  CUdevResource got;
  memset(&got, 0, sizeof got);
  r = drv.green_ctx_get_dev_resource(ctx, &got, CU_DEV_RESOURCE_TYPE_SM);
  cuda_partition *p = r == CUDA_SUCCESS ? object_new<cuda_partition>() : NULL;
  if (p == NULL) {
    (void)drv.green_ctx_destroy(ctx);
    return r != CUDA_SUCCESS ? cu_fail(r, "cuGreenCtxGetDevResource")
                             : sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory for a partition");
  }
  p->ctx = ctx;
  p->sm_count = got.sm.smCount;
  p->refcount.store(1, std::memory_order_relaxed);
  *out = p;
  *out_sms = got.sm.smCount;
  return SCHED_OK;
}

/* The groups [first, first + count) of the split, as a set mask. */
static uint64_t group_run(unsigned int first, unsigned int count) {
  if (count == 0) return 0;
  uint64_t run = count >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << count) - 1);
  return run << first;
}

/* The green context of one SM set, from the cache or made and cached; the
 * caller gets a reference of its own. */
static int32_t set_acquire(uint64_t mask, bool with_remainder, cuda_partition **out_partition, uint32_t *out_sm_given) {
  bool remainder = with_remainder && here()->split_has_remainder;
  here()->set_clock++;
  for (int i = 0; i < SET_CACHE_SIZE; i++) {
    cached_set *c = &here()->set_cache[i];
    if (c->partition == NULL || c->mask != mask || c->with_remainder != remainder) continue;
    c->last_used = here()->set_clock;
    c->partition->refcount.fetch_add(1, std::memory_order_relaxed);
    *out_partition = c->partition;
    *out_sm_given = c->partition->sm_count;
    return SCHED_OK;
  }
  CUdevResource res[MAX_SET_GROUPS + 1];
  unsigned int count = 0;
  for (int g = 0; g < here()->groups_total; g++) {
    if ((mask >> g) & 1u) res[count++] = here()->split_groups[g];
  }
  if (count == 0 && !remainder) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "An SM set must name at least one SM");
  cuda_partition *p = NULL;
  uint32_t sms = 0;
  int32_t status = SCHED_ERR_BACKEND;
  if (remainder) {
    res[count] = here()->split_remainder;
    status = make_partition(res, count + 1, &p, &sms);
  }
  /* A descriptor may refuse to mix the remainder with groups (CUDA 13.1
   * documents that resources must share their co-scheduling alignment), so
   * without it as a second try; the SM count read back says what the set
   * really got. */
  if (status != SCHED_OK && count > 0) status = make_partition(res, count, &p, &sms);
  if (status != SCHED_OK) {
    return count > 0 ? status : sched_fail(SCHED_ERR_INVALID_ARGUMENT, "The SMs left over make no green context");
  }
  /* The cache keeps the reference make_partition gave; the caller gets one
   * more. A full cache gives up its least recently used set. */
  int slot = 0;
  for (int i = 0; i < SET_CACHE_SIZE; i++) {
    if (here()->set_cache[i].partition == NULL) {
      slot = i;
      break;
    }
    if (here()->set_cache[i].last_used < here()->set_cache[slot].last_used) slot = i;
  }
  cuda_partition *evicted = here()->set_cache[slot].partition;
  here()->set_cache[slot] = cached_set{mask, remainder, p, here()->set_clock};
  if (evicted != NULL) partition_release(evicted);
  p->refcount.fetch_add(1, std::memory_order_relaxed);
  *out_partition = p;
  *out_sm_given = sms;
  return SCHED_OK;
}

int32_t cuda_partition_create(const uint32_t *sm_counts, uint32_t n, void **out_partitions,
                              uint32_t *out_sm_given) {
  BIND_DEVICE();
  if (!here()->available) return sched_fail(SCHED_ERR_UNSUPPORTED, "SM partitions are unsupported here: %s", here()->unavailable_reason);
  partitions_reap(false);
  unsigned int groups = (unsigned int)here()->groups_total;
  uint32_t *units = (uint32_t *)calloc(n > 0 ? n : 1, sizeof *units);
  cuda_partition **made = (cuda_partition **)calloc((size_t)n + 1, sizeof *made);
  int32_t status = SCHED_OK;
  if (units == NULL || made == NULL) status = sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory planning partitions");
  if (status == SCHED_OK) status = partition_plan(sm_counts, n, (uint32_t)here()->granularity, groups, units);
  /* Each partition takes consecutive groups of the split taken at init;
   * the rest takes the groups left over plus the remainder. Every set
   * comes from the cache, so deleting and re-creating a layout makes no
   * green context. */
  unsigned int next = 0;
  for (uint32_t i = 0; i < n && status == SCHED_OK; i++) {
    status = set_acquire(group_run(next, units[i]), false, &made[i], &out_sm_given[i]);
    next += units[i];
  }
  if (status == SCHED_OK) {
    uint64_t rest = group_run(next, groups - next);
    out_sm_given[n] = 0;
    if (rest != 0) {
      status = set_acquire(rest, true, &made[n], &out_sm_given[n]);
    } else if (here()->split_has_remainder && set_acquire(0, true, &made[n], &out_sm_given[n]) != SCHED_OK) {
      /* A remainder alone that makes no green context: nothing remains. */
      made[n] = NULL;
      out_sm_given[n] = 0;
    }
  }
  if (status == SCHED_OK) {
    for (uint32_t i = 0; i <= n; i++) out_partitions[i] = made[i];
  } else if (made != NULL) {
    for (uint32_t i = 0; i <= n; i++) {
      if (made[i] != NULL) partition_release(made[i]);
    }
  }
  free(units);
  free(made);
  return status;
}

int32_t cuda_partition_destroy(void *partition) {
  BIND_DEVICE();
  partition_release((cuda_partition *)partition);
  partitions_reap(false);
  return SCHED_OK;
}

int32_t cuda_partition_create_set(uint64_t mask, bool with_remainder, void **out_partition, uint32_t *out_sm_given) {
  BIND_DEVICE();
  if (!here()->available) return sched_fail(SCHED_ERR_UNSUPPORTED, "SM partitions are unsupported here: %s", here()->unavailable_reason);
  partitions_reap(false);
  cuda_partition *p = NULL;
  int32_t status = set_acquire(mask, with_remainder, &p, out_sm_given);
  if (status == SCHED_OK) *out_partition = p;
  return status;
}
