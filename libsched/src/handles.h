/*
 * Handle tables: 32-bit ids for backend objects, so that a stale or forged
 * handle coming from JavaScript is rejected instead of dereferenced.
 * A handle is (generation << 20 | slot + 1): 0 is never valid, and a slot
 * reused after a destroy gets a new generation (12 bits, so a handle kept
 * 4096 reuses too long could alias; the TypeScript layer never does that).
 */
#ifndef GPUSCHED_HANDLES_H
#define GPUSCHED_HANDLES_H

#include <pthread.h>
#include <stdint.h>

#define HANDLE_SLOT_BITS 20
#define HANDLE_MAX_SLOTS ((1u << HANDLE_SLOT_BITS) - 1)

typedef struct handle_slot {
  void *object;     /* NULL when free */
  uint32_t generation;
  uint32_t next_free; /* slot index + 1 of the next free slot, 0 = none */
  uint32_t users;     /* calls between handles_acquire and handles_release */
  int removing;       /* handles_remove is waiting for the users to leave */
} handle_slot;

typedef struct handle_table {
  pthread_mutex_t lock;
  pthread_cond_t released; /* a removing slot lost its last user */
  handle_slot *slots;
  uint32_t len, cap;
  uint32_t free_head; /* slot index + 1, 0 = none */
  uint32_t live;
} handle_table;

void handles_init(handle_table *t);
/** Frees the table's storage (objects are the caller's). */
void handles_destroy(handle_table *t);
/** Returns 0 when the table is full or out of memory. */
uint32_t handles_add(handle_table *t, void *object);
/** The object, or NULL for an unknown handle. */
void *handles_get(handle_table *t, uint32_t handle);
/**
 * The object, or NULL for an unknown handle, kept alive until the matching
 * handles_release: a concurrent handles_remove of this handle waits for it,
 * so a destroy on one thread never frees what another thread is using.
 */
void *handles_acquire(handle_table *t, uint32_t handle);
/** Like handles_acquire, for the first live object pred accepts; returns its handle (0: none). */
uint32_t handles_acquire_match(handle_table *t, int (*pred)(void *object, void *arg), void *arg, void **out_object);
/** Ends a use begun by handles_acquire or handles_acquire_match. */
void handles_release(handle_table *t, uint32_t handle);
/**
 * Removes and returns the object, or NULL for an unknown handle. The handle
 * is refused at once; the call waits until its current users have released it.
 */
void *handles_remove(handle_table *t, uint32_t handle);
/** Removes every live object, calling fn on each (for teardown, in creation order). */
void handles_clear(handle_table *t, void (*fn)(void *object, void *arg), void *arg);
/** Live handles now. */
uint32_t handles_live(handle_table *t);
/** Calls fn on every live object, under the table lock. */
void handles_each(handle_table *t, void (*fn)(void *object, void *arg), void *arg);

#endif /* GPUSCHED_HANDLES_H */
