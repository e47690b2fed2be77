/*
 * Host "device" memory: heap blocks counted against the configured
 * capacity. Each block carries a small header (its pool and size) in front
 * of the pointer handed out, so a stream-ordered free needs no lookup.
 * Frees are stream-ordered like cudaFreeAsync: the bytes return to the
 * capacity when the stream reaches the free.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

/* Device pointers are 256-byte aligned, as cudaMalloc guarantees. */
#define BLOCK_ALIGN 256

typedef struct host_pool {
  _Atomic uint64_t reserved; /* bytes held by live blocks, freed in stream order */
  _Atomic int refs;          /* owner + live blocks */
} host_pool;

typedef struct block_header {
  host_pool *pool; /* NULL for synchronous allocations */
  uint64_t size;
  int32_t device; /* whose capacity it is charged to */
} block_header;

static _Atomic uint64_t capacity[SCHED_MAX_DEVICES], used[SCHED_MAX_DEVICES];

/* Bytes whose stream-ordered free is queued but has not run yet. CUDA lets
 * an allocation reuse such memory by making the allocating stream wait for
 * the free (cudaMemPoolReuseAllowInternalDependencies); the host backend
 * cannot delay an allocation into a stream, so it waits for those frees
 * instead, which gives the same result a moment later. */
static pthread_mutex_t frees_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t frees_ran = PTHREAD_COND_INITIALIZER;
static uint64_t pending_free_bytes[SCHED_MAX_DEVICES];

void host_memory_reset(int32_t devices, uint64_t bytes) {
  for (int32_t d = 0; d < SCHED_MAX_DEVICES; d++) {
    atomic_store(&capacity[d], d < devices ? bytes : 0);
    atomic_store(&used[d], 0);
  }
}

uint64_t host_memory_used(int32_t device) { return atomic_load(&used[device]); }
uint64_t host_memory_capacity(int32_t device) { return atomic_load(&capacity[device]); }

static block_header *header_of(void *ptr) { return (block_header *)((char *)ptr - BLOCK_ALIGN); }

static void pool_unref(host_pool *p) {
  if (atomic_fetch_sub(&p->refs, 1) == 1) free(p);
}

/* Charges bytes against the capacity; 0 on success. */
static int charge(int32_t device, uint64_t bytes) {
  uint64_t cap = atomic_load(&capacity[device]);
  uint64_t current = atomic_load(&used[device]);
  do {
    if (bytes > cap || current > cap - bytes) return -1;
  } while (!atomic_compare_exchange_weak(&used[device], &current, current + bytes));
  return 0;
}

int host_memory_charge(uint64_t bytes) { return charge(sched_acting_device(), bytes); }
void host_memory_uncharge(uint64_t bytes) { atomic_fetch_sub(&used[sched_acting_device()], bytes); }

static int32_t out_of_memory(int32_t device, uint64_t bytes) {
  return sched_fail(SCHED_ERR_OUT_OF_MEMORY,
                    "Host device %d out of memory: cannot allocate %llu bytes, %llu of %llu bytes in use", device,
                    (unsigned long long)bytes, (unsigned long long)atomic_load(&used[device]),
                    (unsigned long long)atomic_load(&capacity[device]));
}

static int32_t allocate(host_pool *pool, uint64_t bytes, void **out_ptr) {
  int32_t device = sched_acting_device();
  if (host_fault_hit(SCHED_FAULT_ALLOC))
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Host device out of memory: injected fault allocating %llu bytes",
                      (unsigned long long)bytes);
  if (charge(device, bytes) != 0) return out_of_memory(device, bytes);
  void *base = NULL;
  if (bytes > UINT64_MAX - BLOCK_ALIGN || posix_memalign(&base, BLOCK_ALIGN, BLOCK_ALIGN + bytes) != 0) {
    atomic_fetch_sub(&used[device], bytes);
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Host device out of memory: the heap refused %llu bytes",
                      (unsigned long long)bytes);
  }
  block_header *h = base;
  h->pool = pool;
  h->size = bytes;
  h->device = device;
  if (pool != NULL) {
    atomic_fetch_add(&pool->refs, 1);
    atomic_fetch_add(&pool->reserved, bytes);
  }
  *out_ptr = (char *)base + BLOCK_ALIGN;
  return SCHED_OK;
}

static void release(void *ptr) {
  block_header *h = header_of(ptr);
  atomic_fetch_sub(&used[h->device], h->size);
  if (h->pool != NULL) {
    atomic_fetch_sub(&h->pool->reserved, h->size);
    pool_unref(h->pool);
  }
  free(h);
}

static int32_t pool_create(uint64_t max_bytes, uint64_t release_threshold, void **out_pool) {
  /* The cap is enforced by the dispatch layer; blocks are not cached here
   * (gpusched's TypeScript pool caches), so the threshold has nothing to keep. */
  (void)max_bytes;
  (void)release_threshold;
  host_pool *p = calloc(1, sizeof *p);
  if (p == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory creating a pool");
  atomic_store(&p->refs, 1);
  *out_pool = p;
  return SCHED_OK;
}

static int32_t pool_destroy(void *pool) {
  pool_unref(pool);
  return SCHED_OK;
}

static int32_t pool_trim(void *pool, uint64_t keep_bytes) {
  (void)pool;
  (void)keep_bytes;
  return SCHED_OK;
}

static int32_t pool_reserved(void *pool, uint64_t *out_reserved) {
  *out_reserved = atomic_load(&((host_pool *)pool)->reserved);
  return SCHED_OK;
}

static int32_t malloc_async(void *pool, void *stream, uint64_t bytes, void **out_ptr) {
  (void)stream;
  int32_t status = allocate(pool, bytes, out_ptr);
  while (status == SCHED_ERR_OUT_OF_MEMORY) {
    /* Memory already freed in stream order is reusable: let those frees
     * land, then retry. Give up only when none is pending. */
    pthread_mutex_lock(&frees_lock);
    uint64_t pending = pending_free_bytes[sched_acting_device()];
    if (pending > 0) pthread_cond_wait(&frees_ran, &frees_lock);
    pthread_mutex_unlock(&frees_lock);
    if (pending == 0) break;
    status = allocate(pool, bytes, out_ptr);
  }
  return status;
}

static void run_free(host_op *op) {
  uint64_t size = header_of(op->u.block.ptr)->size;
  int32_t device = header_of(op->u.block.ptr)->device;
  release(op->u.block.ptr);
  pthread_mutex_lock(&frees_lock);
  pending_free_bytes[device] -= size;
  pthread_cond_broadcast(&frees_ran);
  pthread_mutex_unlock(&frees_lock);
}

static int32_t free_async(void *ptr, void *stream) {
  host_op *op = host_op_new(run_free);
  if (op == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory queueing a free");
  op->u.block.ptr = ptr;
  pthread_mutex_lock(&frees_lock);
  pending_free_bytes[header_of(ptr)->device] += header_of(ptr)->size;
  pthread_mutex_unlock(&frees_lock);
  return host_stream_enqueue(stream, op);
}

static int32_t malloc_sync(uint64_t bytes, void **out_ptr) { return allocate(NULL, bytes, out_ptr); }

static int32_t free_sync(void *ptr) {
  /* cudaFree waits for the device; do the same so no queued copy touches freed memory. */
  int32_t status = host_streams_synchronize_all();
  if (status != SCHED_OK) return status;
  release(ptr);
  return SCHED_OK;
}

static int32_t host_alloc(uint64_t bytes, void **out_ptr) {
  void *p = NULL;
  if (posix_memalign(&p, 4096, bytes) != 0)
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory allocating %llu pinned bytes", (unsigned long long)bytes);
  *out_ptr = p;
  return SCHED_OK;
}

static int32_t host_free(void *ptr) {
  free(ptr);
  return SCHED_OK;
}

static void run_copy(host_op *op) { memmove(op->u.copy.dst, op->u.copy.src, op->u.copy.bytes); }

static int32_t memcpy_async(void *dst, const void *src, uint64_t bytes, int32_t kind, void *stream) {
  (void)kind;
  if (host_fault_hit(SCHED_FAULT_COPY)) return sched_fail(SCHED_ERR_BACKEND, "Copy of %llu bytes failed: injected fault", (unsigned long long)bytes);
  host_op *op = host_op_new(run_copy);
  if (op == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory queueing a copy");
  op->u.copy.dst = dst;
  op->u.copy.src = src;
  op->u.copy.bytes = bytes;
  return host_stream_enqueue(stream, op);
}

/* Simulated devices share the address space: a copy between two is a memmove too. */
static int32_t memcpy_peer(void *dst, int32_t dst_device, const void *src, int32_t src_device, uint64_t bytes,
                           void *stream) {
  (void)dst_device;
  (void)src_device;
  return memcpy_async(dst, src, bytes, SCHED_COPY_DEVICE_TO_DEVICE, stream);
}

static void run_set(host_op *op) { memset(op->u.set.dst, op->u.set.value, op->u.set.bytes); }

static int32_t memset_async(void *dst, uint8_t value, uint64_t bytes, void *stream) {
  if (host_fault_hit(SCHED_FAULT_COPY)) return sched_fail(SCHED_ERR_BACKEND, "Memset of %llu bytes failed: injected fault", (unsigned long long)bytes);
  host_op *op = host_op_new(run_set);
  if (op == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory queueing a memset");
  op->u.set.dst = dst;
  op->u.set.value = value;
  op->u.set.bytes = bytes;
  return host_stream_enqueue(stream, op);
}

void host_memory_ops(backend_ops *ops) {
  ops->pool_create = pool_create;
  ops->pool_destroy = pool_destroy;
  ops->pool_trim = pool_trim;
  ops->pool_reserved = pool_reserved;
  ops->malloc_async = malloc_async;
  ops->free_async = free_async;
  ops->malloc_sync = malloc_sync;
  ops->free_sync = free_sync;
  ops->host_alloc = host_alloc;
  ops->host_free = host_free;
  ops->memcpy_async = memcpy_async;
  ops->memset_async = memset_async;
  ops->memcpy_peer = memcpy_peer;
}
