/*
 * Live allocations by base pointer. The dispatch layer checks every free
 * (double free, foreign pointer) and every copy range against it, so a bad
 * pointer from JavaScript becomes an error instead of memory corruption.
 * Open addressing with linear probing and backward-shift deletion: O(1)
 * per operation at any number of live blocks.
 */
#ifndef GPUSCHED_REGISTRY_H
#define GPUSCHED_REGISTRY_H

#include <pthread.h>
#include <stdint.h>

typedef struct allocation {
  void *ptr;      /* NULL marks an empty bucket */
  uint64_t size;
  uint32_t pool;  /* pool handle, 0 for synchronous or pinned allocations */
  int32_t device; /* the device it lives on (pinned: the one current at allocation) */
} allocation;

typedef struct registry {
  pthread_mutex_t lock;
  allocation *buckets;
  uint64_t cap; /* power of two */
  uint64_t len;
  uint64_t bytes; /* sum of the live allocations' sizes */
} registry;

void registry_init(registry *r);
void registry_destroy(registry *r);
/** 0 on success, -1 when out of memory. */
int registry_insert(registry *r, allocation a);
/** Copies the entry for ptr into out; 0 when found, -1 otherwise. */
int registry_find(registry *r, const void *ptr, allocation *out);
/** Removes ptr, copying its entry into out; 0 when found, -1 otherwise. */
int registry_remove(registry *r, const void *ptr, allocation *out);
/** Removes every entry, calling fn on each first (for teardown). */
/** Live allocations and their bytes, read under the lock. */
void registry_totals(registry *r, uint64_t *out_len, uint64_t *out_bytes);
void registry_clear(registry *r, void (*fn)(const allocation *a, void *arg), void *arg);

#endif /* GPUSCHED_REGISTRY_H */
