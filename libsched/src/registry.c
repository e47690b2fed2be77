#include "registry.h"

#include <stdlib.h>
#include <string.h>

void registry_init(registry *r) {
  pthread_mutex_init(&r->lock, NULL);
  r->buckets = NULL;
  r->cap = r->len = r->bytes = 0;
}

void registry_destroy(registry *r) {
  free(r->buckets);
  r->buckets = NULL;
  r->cap = r->len = r->bytes = 0;
  pthread_mutex_destroy(&r->lock);
}

static uint64_t bucket_of(const registry *r, const void *ptr) {
  /* Fibonacci hashing: allocations are aligned, so the low bits carry nothing. */
  uint64_t x = (uint64_t)(uintptr_t)ptr * 0x9E3779B97F4A7C15ull;
  return (x >> 20) & (r->cap - 1);
}

static void place(registry *r, allocation a) {
  uint64_t i = bucket_of(r, a.ptr);
  while (r->buckets[i].ptr != NULL) i = (i + 1) & (r->cap - 1);
  r->buckets[i] = a;
}

static int grow(registry *r) {
  uint64_t old_cap = r->cap;
  allocation *old = r->buckets;
  uint64_t cap = old_cap ? old_cap * 2 : 1024;
  allocation *fresh = calloc(cap, sizeof *fresh);
  if (fresh == NULL) return -1;
  r->buckets = fresh;
  r->cap = cap;
  for (uint64_t i = 0; i < old_cap; i++) {
    if (old[i].ptr != NULL) place(r, old[i]);
  }
  free(old);
  return 0;
}

int registry_insert(registry *r, allocation a) {
  pthread_mutex_lock(&r->lock);
  /* Keep the load factor under 1/2 so probes stay short. */
  if ((r->len + 1) * 2 > r->cap && grow(r) != 0) {
    pthread_mutex_unlock(&r->lock);
    return -1;
  }
  place(r, a);
  r->len++;
  r->bytes += a.size;
  pthread_mutex_unlock(&r->lock);
  return 0;
}

/* Caller holds the lock. Returns the bucket index or -1. */
static int64_t locate(const registry *r, const void *ptr) {
  if (r->cap == 0 || ptr == NULL) return -1;
  uint64_t i = bucket_of(r, ptr);
  while (r->buckets[i].ptr != NULL) {
    if (r->buckets[i].ptr == ptr) return (int64_t)i;
    i = (i + 1) & (r->cap - 1);
  }
  return -1;
}

int registry_find(registry *r, const void *ptr, allocation *out) {
  pthread_mutex_lock(&r->lock);
  int64_t i = locate(r, ptr);
  if (i >= 0 && out != NULL) *out = r->buckets[i];
  pthread_mutex_unlock(&r->lock);
  return i >= 0 ? 0 : -1;
}

/* Caller holds the lock. Backward-shift deletion keeps probe chains intact without tombstones. */
static void erase(registry *r, uint64_t hole) {
  uint64_t mask = r->cap - 1;
  uint64_t i = hole;
  for (;;) {
    i = (i + 1) & mask;
    if (r->buckets[i].ptr == NULL) break;
    uint64_t home = bucket_of(r, r->buckets[i].ptr);
    /* Move entry i into the hole when the hole lies on its probe path. */
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      r->buckets[hole] = r->buckets[i];
      hole = i;
    }
  }
  memset(&r->buckets[hole], 0, sizeof r->buckets[hole]);
  r->len--;
}

int registry_remove(registry *r, const void *ptr, allocation *out) {
  pthread_mutex_lock(&r->lock);
  int64_t i = locate(r, ptr);
  if (i >= 0) {
    if (out != NULL) *out = r->buckets[i];
    r->bytes -= r->buckets[i].size;
    erase(r, (uint64_t)i);
  }
  pthread_mutex_unlock(&r->lock);
  return i >= 0 ? 0 : -1;
}

void registry_clear(registry *r, void (*fn)(const allocation *a, void *arg), void *arg) {
  pthread_mutex_lock(&r->lock);
  for (uint64_t i = 0; i < r->cap; i++) {
    if (r->buckets[i].ptr != NULL) fn(&r->buckets[i], arg);
  }
  if (r->cap > 0) memset(r->buckets, 0, r->cap * sizeof *r->buckets);
  r->len = 0;
  r->bytes = 0;
  pthread_mutex_unlock(&r->lock);
}

void registry_totals(registry *r, uint64_t *out_len, uint64_t *out_bytes) {
  pthread_mutex_lock(&r->lock);
  *out_len = r->len;
  *out_bytes = r->bytes;
  pthread_mutex_unlock(&r->lock);
}
