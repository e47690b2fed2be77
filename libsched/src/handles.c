#include "handles.h"

#include <stdlib.h>

#define GEN_MASK ((1u << (32 - HANDLE_SLOT_BITS)) - 1)

void handles_init(handle_table *t) {
  pthread_mutex_init(&t->lock, NULL);
  pthread_cond_init(&t->released, NULL);
  t->slots = NULL;
  t->len = t->cap = t->free_head = t->live = 0;
}

void handles_destroy(handle_table *t) {
  free(t->slots);
  t->slots = NULL;
  t->len = t->cap = t->free_head = t->live = 0;
  pthread_mutex_destroy(&t->lock);
  pthread_cond_destroy(&t->released);
}

static uint32_t make_handle(uint32_t index, uint32_t generation) {
  return (generation << HANDLE_SLOT_BITS) | (index + 1);
}

uint32_t handles_add(handle_table *t, void *object) {
  pthread_mutex_lock(&t->lock);
  uint32_t index;
  if (t->free_head != 0) {
    index = t->free_head - 1;
    t->free_head = t->slots[index].next_free;
  } else {
    if (t->len == HANDLE_MAX_SLOTS) {
      pthread_mutex_unlock(&t->lock);
      return 0;
    }
    if (t->len == t->cap) {
      uint32_t cap = t->cap ? t->cap * 2 : 64;
      if (cap > HANDLE_MAX_SLOTS) cap = HANDLE_MAX_SLOTS;
      handle_slot *grown = realloc(t->slots, cap * sizeof *grown);
      if (grown == NULL) {
        pthread_mutex_unlock(&t->lock);
        return 0;
      }
      t->slots = grown;
      t->cap = cap;
    }
    index = t->len++;
    t->slots[index].generation = 0;
  }
  handle_slot *slot = &t->slots[index];
  slot->object = object;
  slot->next_free = 0;
  slot->users = 0;
  slot->removing = 0;
  t->live++;
  uint32_t handle = make_handle(index, slot->generation);
  pthread_mutex_unlock(&t->lock);
  return handle;
}

/* Caller holds the lock. */
static handle_slot *find(handle_table *t, uint32_t handle) {
  uint32_t index = (handle & HANDLE_MAX_SLOTS);
  if (index == 0 || index > t->len) return NULL;
  handle_slot *slot = &t->slots[index - 1];
  if (slot->object == NULL || slot->removing || slot->generation != (handle >> HANDLE_SLOT_BITS)) return NULL;
  return slot;
}

void *handles_get(handle_table *t, uint32_t handle) {
  pthread_mutex_lock(&t->lock);
  handle_slot *slot = find(t, handle);
  void *object = slot ? slot->object : NULL;
  pthread_mutex_unlock(&t->lock);
  return object;
}

void *handles_acquire(handle_table *t, uint32_t handle) {
  pthread_mutex_lock(&t->lock);
  handle_slot *slot = find(t, handle);
  void *object = NULL;
  if (slot != NULL) {
    slot->users++;
    object = slot->object;
  }
  pthread_mutex_unlock(&t->lock);
  return object;
}

uint32_t handles_acquire_match(handle_table *t, int (*pred)(void *object, void *arg), void *arg, void **out_object) {
  pthread_mutex_lock(&t->lock);
  uint32_t handle = 0;
  for (uint32_t i = 0; i < t->len && handle == 0; i++) {
    handle_slot *slot = &t->slots[i];
    if (slot->object != NULL && !slot->removing && pred(slot->object, arg)) {
      slot->users++;
      *out_object = slot->object;
      handle = make_handle(i, slot->generation);
    }
  }
  pthread_mutex_unlock(&t->lock);
  return handle;
}

void handles_release(handle_table *t, uint32_t handle) {
  pthread_mutex_lock(&t->lock);
  /* Not find(): a removing slot still has its users. */
  handle_slot *slot = &t->slots[(handle & HANDLE_MAX_SLOTS) - 1];
  if (--slot->users == 0 && slot->removing) pthread_cond_broadcast(&t->released);
  pthread_mutex_unlock(&t->lock);
}

static void release_slot(handle_table *t, uint32_t index) {
  handle_slot *slot = &t->slots[index];
  slot->object = NULL;
  slot->removing = 0;
  slot->generation = (slot->generation + 1) & GEN_MASK;
  slot->next_free = t->free_head;
  t->free_head = index + 1;
  t->live--;
}

void *handles_remove(handle_table *t, uint32_t handle) {
  pthread_mutex_lock(&t->lock);
  handle_slot *slot = find(t, handle);
  void *object = NULL;
  if (slot != NULL) {
    /* By index: handles_add may move the slots while this waits. */
    uint32_t index = (uint32_t)(slot - t->slots);
    slot->removing = 1;
    while (t->slots[index].users > 0) pthread_cond_wait(&t->released, &t->lock);
    object = t->slots[index].object;
    release_slot(t, index);
  }
  pthread_mutex_unlock(&t->lock);
  return object;
}

void handles_clear(handle_table *t, void (*fn)(void *object, void *arg), void *arg) {
  pthread_mutex_lock(&t->lock);
  for (uint32_t i = 0; i < t->len; i++) {
    if (t->slots[i].object != NULL) {
      void *object = t->slots[i].object;
      release_slot(t, i);
      fn(object, arg);
    }
  }
  pthread_mutex_unlock(&t->lock);
}

void handles_each(handle_table *t, void (*fn)(void *object, void *arg), void *arg) {
  pthread_mutex_lock(&t->lock);
  for (uint32_t i = 0; i < t->len; i++) {
    if (t->slots[i].object != NULL) fn(t->slots[i].object, arg);
  }
  pthread_mutex_unlock(&t->lock);
}

uint32_t handles_live(handle_table *t) {
  pthread_mutex_lock(&t->lock);
  uint32_t live = t->live;
  pthread_mutex_unlock(&t->lock);
  return live;
}
