/*
 * Virtual device memory, the part both backends share (see vmm.h).
 *
 * Model. A caller reserves address ranges (sched_vmm_reserve) and commits
 * and decommits blocks inside them. A committed block is backed by
 * physical "runs": a block whose ends both fall on the granularity and that
 * spans two or more granules gets one run of its own (one physical
 * allocation, one mapping: a large block maps in a single call); any other
 * block is backed granule by granule, and each granule is a run of its own
 * shared, with a reference count, by every committed block that touches it.
 * That is how blocks smaller than the granularity get stable addresses:
 * they live side by side in granules, and a granule is unmapped when the
 * last block in it is decommitted.
 *
 * Stream order. VMM calls are not stream-ordered, so a decommit never
 * unmaps at once: it records an event on the caller's stream and puts the
 * runs whose count fell to 0 on a pending list; they are unmapped once the
 * event has completed, i.e. after every copy or kernel queued before the
 * decommit. Pending runs are reaped at every call (by query), and by
 * waiting when a commit finds the device full, at sched_vmm_flush and at
 * shutdown. A run committed again before it was reaped is simply kept (its
 * contents are still there); each run remembers which decommit released it
 * last, so an older pending entry never unmaps a run that was revived and
 * released again later. A commit that overlaps a pending run of another
 * shape (a block of another size reusing the range) waits for the pending
 * unmaps first, since that run can neither be revived nor left to be
 * unmapped under the new block.
 *
 * Copies name committed blocks by base pointer, like any allocation: the
 * dispatch layer's range check asks vmm_find_block. A decommitted block is
 * no longer found, so a copy queued after its decommit is refused instead
 * of faulting.
 *
 * Locking: one mutex guards everything here, held across backend calls;
 * libsched calls made under it (events) never call back into this file.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "vmm.h"

const vmm_phys_ops *cuda_vmm_ops(void) __attribute__((weak));

typedef struct run {
  uint64_t base, size, handle;
  int32_t device; /* where its physical memory is */
  uint32_t refs;
  uint64_t release_gen; /* the pending decommit that will unmap it, 0: none */
  struct run *next;     /* in its hash bucket */
} run;

typedef struct pending {
  uint32_t event;
  uint64_t gen;
  uint64_t charge; /* committed bytes to uncharge when reaped */
  int32_t device;  /* of those bytes */
  uint32_t count;
  uint64_t *bases; /* runs it releases */
  struct pending *next;
} pending;

typedef struct reservation {
  uint64_t base, size;
} reservation;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const vmm_phys_ops *P; /* chosen at the first call after sched_init */
static int32_t P_backend;
static uint64_t G;
static run **buckets;
static uint64_t nbuckets, nruns;
static registry blocks; /* committed blocks: ptr, size */
static int blocks_ready;
static pending *pendings, *pendings_tail;
static uint64_t next_gen = 1;
static reservation *reservations;
static uint32_t nreservations, reservations_cap;
/* By device (the sums over every device are what shutdown releases). */
static uint64_t mapped_on[SCHED_MAX_DEVICES], committed_on[SCHED_MAX_DEVICES];

/* ------------------------------------------------------------- run table */

static uint64_t hash_of(uint64_t base) { return ((base / G) * 0x9E3779B97F4A7C15ull) >> 17; }

static run *run_find(uint64_t base) {
  if (nbuckets == 0) return NULL;
  for (run *r = buckets[hash_of(base) & (nbuckets - 1)]; r != NULL; r = r->next)
    if (r->base == base) return r;
  return NULL;
}

static int run_table_grow(void) {
  uint64_t cap = nbuckets ? nbuckets * 2 : 1024;
  run **fresh = calloc(cap, sizeof *fresh);
  if (fresh == NULL) return -1;
  for (uint64_t i = 0; i < nbuckets; i++) {
    for (run *r = buckets[i], *next; r != NULL; r = next) {
      next = r->next;
      uint64_t b = hash_of(r->base) & (cap - 1);
      r->next = fresh[b];
      fresh[b] = r;
    }
  }
  free(buckets);
  buckets = fresh;
  nbuckets = cap;
  return 0;
}

static run *run_add(uint64_t base, uint64_t size, uint64_t handle) {
  if ((nruns + 1) > nbuckets && run_table_grow() != 0) return NULL;
  run *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->base = base;
  r->size = size;
  r->handle = handle;
  r->device = sched_acting_device();
  uint64_t b = hash_of(base) & (nbuckets - 1);
  r->next = buckets[b];
  buckets[b] = r;
  nruns++;
  return r;
}

static void run_remove(run *gone) {
  run **link = &buckets[hash_of(gone->base) & (nbuckets - 1)];
  while (*link != gone) link = &(*link)->next;
  *link = gone->next;
  nruns--;
  free(gone);
}

/* Unmaps a run nobody references any more and forgets it. */
static void run_unmap(run *r) {
  sched_set_acting_device(r->device);
  P->unmap((void *)(uintptr_t)r->base, r->size, r->handle);
  mapped_on[r->device] -= r->size;
  run_remove(r);
}

/* ---------------------------------------------------------- pending list */

/* Unmaps what entry p releases; p has completed. */
static void pending_finish(pending *p) {
  for (uint32_t i = 0; i < p->count; i++) {
    run *r = run_find(p->bases[i]);
    if (r == NULL || r->release_gen != p->gen) continue;
    /* Revived meanwhile: keep it, and nothing is pending on it any more. */
    if (r->refs == 0) run_unmap(r);
    else r->release_gen = 0;
  }
  sched_set_acting_device(p->device);
  if (P->uncharge != NULL && p->charge > 0) P->uncharge(p->charge);
  if (p->event != 0) sched_event_destroy(p->event);
  free(p->bases);
  free(p);
}

/* Reaps completed entries; with wait, waits for every entry first. */
static void reap(int wait) {
  int32_t acting = sched_acting_device(); /* finishing entries acts on their devices */
  pending **link = &pendings;
  pendings_tail = NULL;
  while (*link != NULL) {
    pending *p = *link;
    int32_t status = SCHED_OK;
    if (p->event != 0) status = wait ? sched_event_synchronize(p->event) : sched_event_query(p->event);
    if (status == SCHED_ERR_NOT_READY) {
      pendings_tail = p;
      link = &p->next;
      continue;
    }
    /* Done, or failed (the stream died): nothing can use the range any more. */
    *link = p->next;
    pending_finish(p);
  }
  sched_set_acting_device(acting);
}

/* ----------------------------------------------------------- validation */

static int32_t begin(int32_t device) {
  if (sched_backend_active() == SCHED_BACKEND_NONE)
    return sched_fail(SCHED_ERR_NOT_INITIALIZED, "libsched is not initialized: call sched_init first");
  int32_t backend = sched_backend_active();
  if (P == NULL || P_backend != backend) {
    const vmm_phys_ops *ops = backend == SCHED_BACKEND_HOST ? host_vmm_ops()
                              : cuda_vmm_ops != NULL        ? cuda_vmm_ops()
                                                            : NULL;
    if (ops == NULL) return sched_fail(SCHED_ERR_UNSUPPORTED, "Virtual memory is not available on this backend");
    uint64_t g = 0;
    int32_t status = ops->granularity(&g);
    if (status != SCHED_OK) return status;
    P = ops;
    P_backend = backend;
    G = g;
  }
  int32_t devices = sched_devices_initialized();
  if (device < 0 || device >= devices)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Device %" PRId32 " does not exist: %" PRId32 " device(s) initialized",
                      device, devices);
  sched_set_acting_device(device);
  if (!blocks_ready) {
    registry_init(&blocks);
    blocks_ready = 1;
  }
  if (pendings != NULL) reap(0);
  return SCHED_OK;
}

static const reservation *reservation_of(uint64_t addr, uint64_t bytes) {
  for (uint32_t i = 0; i < nreservations; i++) {
    const reservation *r = &reservations[i];
    if (addr >= r->base && addr - r->base <= r->size && bytes <= r->size - (addr - r->base)) return r;
  }
  return NULL;
}

/* The runs backing [addr, addr + bytes), in order; returns their count. */
static uint64_t runs_of(uint64_t addr, uint64_t bytes, uint64_t *first, uint64_t *run_size) {
  uint64_t start = addr / G * G, end = (addr + bytes + G - 1) / G * G;
  *first = start;
  if (start == addr && end == addr + bytes && bytes > G) {
    *run_size = bytes;
    return 1;
  }
  *run_size = G;
  return (end - start) / G;
}

/* ---------------------------------------------------------------- ABI */

SCHED_API int32_t sched_vmm_granularity(int32_t device, uint64_t *out_bytes) {
  if (out_bytes == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_bytes must not be NULL");
  pthread_mutex_lock(&lock);
  int32_t status = begin(device);
  if (status == SCHED_OK) *out_bytes = G;
  pthread_mutex_unlock(&lock);
  return status;
}

SCHED_API int32_t sched_vmm_reserve(int32_t device, uint64_t bytes, void **out_base) {
  if (out_base == NULL) return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_base must not be NULL");
  pthread_mutex_lock(&lock);
  int32_t status = begin(device);
  if (status == SCHED_OK && (bytes == 0 || bytes % G != 0))
    status = sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                        "Reservation size must be a positive multiple of the granularity %" PRIu64 ", got %" PRIu64, G,
                        bytes);
  if (status == SCHED_OK && nreservations == reservations_cap) {
    uint32_t cap = reservations_cap ? reservations_cap * 2 : 8;
    reservation *fresh = realloc(reservations, cap * sizeof *fresh);
    if (fresh == NULL) status = sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory recording a reservation");
    else {
      reservations = fresh;
      reservations_cap = cap;
    }
  }
  void *base = NULL;
  if (status == SCHED_OK) status = P->reserve(bytes, &base);
  if (status == SCHED_OK) {
    reservations[nreservations++] = (reservation){(uint64_t)(uintptr_t)base, bytes};
    *out_base = base;
  }
  pthread_mutex_unlock(&lock);
  return status;
}

SCHED_API int32_t sched_vmm_unreserve(int32_t device, void *base) {
  pthread_mutex_lock(&lock);
  int32_t status = begin(device);
  uint32_t index = nreservations;
  for (uint32_t i = 0; status == SCHED_OK && i < nreservations; i++)
    if (reservations[i].base == (uint64_t)(uintptr_t)base) index = i;
  if (status == SCHED_OK && index == nreservations)
    status = sched_fail(SCHED_ERR_INVALID_HANDLE, "Address %p is not the base of a live reservation", base);
  if (status == SCHED_OK) {
    reservation r = reservations[index];
    if (pendings != NULL) reap(1);
    for (uint64_t i = 0; i < nbuckets && status == SCHED_OK; i++)
      for (run *x = buckets[i]; x != NULL; x = x->next)
        if (x->base >= r.base && x->base - r.base < r.size) {
          status = sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                              "Reservation %p still has committed memory at %p: decommit it first", base,
                              (void *)(uintptr_t)x->base);
          break;
        }
    if (status == SCHED_OK) {
      P->unreserve(base, r.size);
      reservations[index] = reservations[--nreservations];
    }
  }
  pthread_mutex_unlock(&lock);
  return status;
}

/*
 * Does a run waiting for its stream-ordered unmap overlap [addr, addr + bytes)
 * laid out otherwise than a commit of that block would lay it out? Such a
 * run cannot be revived (its physical memory has another shape) and must not
 * be unmapped under the new block later, so the commit waits for it first.
 */
static int pending_conflicts(uint64_t addr, uint64_t bytes) {
  uint64_t first, size;
  uint64_t n = runs_of(addr, bytes, &first, &size);
  uint64_t end = first + n * size;
  for (pending *p = pendings; p != NULL; p = p->next) {
    for (uint32_t i = 0; i < p->count; i++) {
      run *r = run_find(p->bases[i]);
      if (r == NULL || r->release_gen != p->gen || r->refs != 0) continue;
      if (r->base >= end || r->base + r->size <= first) continue;
      if (r->size != size || (r->base - first) % size != 0) return 1;
    }
  }
  return 0;
}

/* Maps or references every run of [addr, addr + bytes); all or nothing. */
static int32_t commit_runs(uint64_t addr, uint64_t bytes) {
  uint64_t first, size;
  uint64_t n = runs_of(addr, bytes, &first, &size);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t base = first + i * size;
    run *r = run_find(base);
    if (r != NULL && r->size != size) {
      for (uint64_t j = 0; j < i; j++) {
        run *back = run_find(first + j * size);
        if (--back->refs == 0 && back->release_gen == 0) run_unmap(back);
      }
      return sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                        "Block [%p, +%" PRIu64 ") overlaps committed memory laid out differently", (void *)(uintptr_t)addr,
                        bytes);
    }
    int32_t status = SCHED_OK;
    if (r == NULL) {
      uint64_t handle = 0;
      status = P->map((void *)(uintptr_t)base, size, &handle);
      if (status == SCHED_OK) {
        r = run_add(base, size, handle);
        if (r == NULL) {
          P->unmap((void *)(uintptr_t)base, size, handle);
          status = sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory tracking a mapping");
        } else {
          mapped_on[r->device] += size;
        }
      }
    }
    if (status != SCHED_OK) {
      for (uint64_t j = 0; j < i; j++) {
        run *back = run_find(first + j * size);
        if (--back->refs == 0 && back->release_gen == 0) run_unmap(back);
      }
      return status;
    }
    r->refs++;
  }
  return SCHED_OK;
}

SCHED_API int32_t sched_vmm_commit(int32_t device, void *ptr, uint64_t bytes) {
  pthread_mutex_lock(&lock);
  int32_t status = begin(device);
  uint64_t addr = (uint64_t)(uintptr_t)ptr;
  allocation existing;
  if (status != SCHED_OK) goto out;
  if (bytes == 0 || addr % 256 != 0) {
    status = sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                        "Committed blocks must be non-empty and 256-byte aligned, got %p + %" PRIu64, ptr, bytes);
    goto out;
  }
  if (reservation_of(addr, bytes) == NULL) {
    status = sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Block [%p, +%" PRIu64 ") is not inside a reservation", ptr, bytes);
    goto out;
  }
  if (registry_find(&blocks, ptr, &existing) == 0) {
    status = sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Block %p is already committed", ptr);
    goto out;
  }
  if (P->charge != NULL) {
    status = P->charge(bytes);
    if (status == SCHED_ERR_OUT_OF_MEMORY && pendings != NULL) {
      reap(1);
      status = P->charge(bytes);
    }
    if (status != SCHED_OK) goto out;
  }
  if (pendings != NULL && pending_conflicts(addr, bytes)) reap(1);
  status = commit_runs(addr, bytes);
  if (status == SCHED_ERR_OUT_OF_MEMORY && pendings != NULL) {
    /* Physical memory released in stream order is reusable: wait for it. */
    reap(1);
    status = commit_runs(addr, bytes);
  }
  if (status == SCHED_OK && registry_insert(&blocks, (allocation){ptr, bytes, 0, device}) != 0) {
    status = sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory tracking a committed block");
    uint64_t first, size;
    uint64_t n = runs_of(addr, bytes, &first, &size);
    for (uint64_t j = 0; j < n; j++) {
      run *back = run_find(first + j * size);
      if (--back->refs == 0 && back->release_gen == 0) run_unmap(back);
    }
  }
  if (status != SCHED_OK) {
    if (P->charge != NULL) P->uncharge(bytes);
    goto out;
  }
  committed_on[device] += bytes;
out:
  pthread_mutex_unlock(&lock);
  return status;
}

SCHED_API int32_t sched_vmm_decommit(int32_t device, void *ptr, uint32_t stream) {
  pthread_mutex_lock(&lock);
  int32_t status = begin(device);
  allocation a;
  pending *p = NULL;
  uint32_t event = 0;
  if (status != SCHED_OK) goto out;
  if (registry_find(&blocks, ptr, &a) != 0) {
    status = sched_fail(SCHED_ERR_INVALID_HANDLE, "Address %p is not a committed block", ptr);
    goto out;
  }
  uint64_t first, size;
  uint64_t n = runs_of((uint64_t)(uintptr_t)ptr, a.size, &first, &size);
  p = calloc(1, sizeof *p);
  if (p != NULL) p->bases = malloc(n * sizeof *p->bases);
  if (p == NULL || p->bases == NULL) {
    status = sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory queueing a decommit");
    goto out;
  }
  /* The event orders the unmap after everything queued on stream so far. */
  status = sched_event_create_for(stream, &event);
  if (status == SCHED_OK) {
    status = sched_event_record(event, stream);
    if (status != SCHED_OK) sched_event_destroy(event);
  }
  if (status != SCHED_OK) goto out;
  registry_remove(&blocks, ptr, &a);
  committed_on[a.device] -= a.size;
  p->device = a.device;
  p->event = event;
  p->gen = next_gen++;
  p->charge = a.size;
  for (uint64_t i = 0; i < n; i++) {
    run *r = run_find(first + i * size);
    if (--r->refs == 0) {
      r->release_gen = p->gen;
      p->bases[p->count++] = r->base;
    }
  }
  if (pendings_tail != NULL) pendings_tail->next = p;
  else pendings = p;
  pendings_tail = p;
  p = NULL;
out:
  if (p != NULL) {
    free(p->bases);
    free(p);
  }
  pthread_mutex_unlock(&lock);
  return status;
}

SCHED_API int32_t sched_vmm_flush(int32_t device) {
  pthread_mutex_lock(&lock);
  int32_t status = begin(device);
  if (status == SCHED_OK) reap(1);
  pthread_mutex_unlock(&lock);
  return status;
}

SCHED_API int32_t sched_vmm_reap(int32_t device) {
  pthread_mutex_lock(&lock);
  int32_t status = begin(device); /* begin reaps what has completed */
  pthread_mutex_unlock(&lock);
  return status;
}

SCHED_API int32_t sched_vmm_usage(int32_t device, uint64_t *out_committed, uint64_t *out_mapped) {
  if (out_committed == NULL || out_mapped == NULL)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT, "out_committed and out_mapped must not be NULL");
  pthread_mutex_lock(&lock);
  int32_t status = begin(device);
  if (status == SCHED_OK) {
    *out_committed = committed_on[device];
    *out_mapped = mapped_on[device];
  }
  pthread_mutex_unlock(&lock);
  return status;
}

/* ------------------------------------------------------- dispatch hooks */

int vmm_find_block(const void *ptr, allocation *out) {
  pthread_mutex_lock(&lock);
  int found = blocks_ready ? registry_find(&blocks, ptr, out) : -1;
  pthread_mutex_unlock(&lock);
  return found;
}

void vmm_shutdown(void) {
  pthread_mutex_lock(&lock);
  if (P != NULL) {
    reap(1);
    for (uint64_t i = 0; i < nbuckets; i++) {
      for (run *r = buckets[i], *next; r != NULL; r = next) {
        next = r->next;
        sched_set_acting_device(r->device);
        P->unmap((void *)(uintptr_t)r->base, r->size, r->handle);
        free(r);
      }
    }
    for (int32_t d = 0; d < SCHED_MAX_DEVICES; d++) {
      if (P->uncharge == NULL || committed_on[d] == 0) continue;
      sched_set_acting_device(d);
      P->uncharge(committed_on[d]);
    }
    for (uint32_t i = 0; i < nreservations; i++)
      P->unreserve((void *)(uintptr_t)reservations[i].base, reservations[i].size);
  }
  free(buckets);
  buckets = NULL;
  nbuckets = nruns = 0;
  free(reservations);
  reservations = NULL;
  nreservations = reservations_cap = 0;
  if (blocks_ready) registry_destroy(&blocks);
  blocks_ready = 0;
  memset(mapped_on, 0, sizeof mapped_on);
  memset(committed_on, 0, sizeof committed_on);
  P = NULL;
  pthread_mutex_unlock(&lock);
}
