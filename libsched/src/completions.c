/*
 * Completion notification: how thousands of `await`s wait on the GPU
 * without a thread each.
 *
 * JavaScript waits with sched_completions_wait, declared nonblocking: one
 * call per isolate at a time, parked on a Deno pool thread inside libsched
 * (which is never unmapped) until the queue is non-empty or
 * sched_completions_wake is called. Nothing ever calls into JavaScript
 * from a libsched thread, so an isolate that dies (an uncaught exception at
 * process exit, a terminated Worker) leaves at most a parked pool thread,
 * never a call into freed code. The notifier below is kept for C callers.
 *
 * Backends push (token, status) pairs when a stream or event a waiter asked
 * about completes (CUDA host functions, host-backend workers). One notifier
 * thread per process turns "the queue became non-empty" into one call of the
 * installed function, which the caller drains with sched_completions_drain.
 * The function is called again only after a drain emptied the queue, so a
 * burst of completions costs one wake-up of the consumer.
 *
 * The notifier never holds the queue lock while calling out: the installed
 * function may block until another thread (the JavaScript event loop) runs
 * it, and that thread must stay free to call sched_completions_drain or any
 * other function meanwhile. For the same reason the notifier outlives
 * sched_shutdown: stopping it would mean waiting for a thread that may be
 * waiting for the caller.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

typedef struct completion {
  uint32_t token;
  int32_t status;
} completion;

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_ready = PTHREAD_COND_INITIALIZER;
static completion *queue;
static size_t queue_len, queue_cap;
static sched_notify_fn notify_fn;
static int signaled; /* notify_fn was called and the queue not yet emptied */
/* Generation of the live notifier thread (0: none). A thread whose call into
 * notify_fn never returns (its JavaScript isolate went away while the call
 * was queued) is retired: the next install starts a fresh thread, and the
 * old one exits if its call ever returns. */
static uintptr_t live_generation;
static int in_call; /* the live thread is inside notify_fn */
/* Bumped by sched_completions_wake: every sched_completions_wait then returns. */
static uint64_t wakes;
/* Set at process exit: waits return at once and pushes are dropped. */
static int exiting;

static void *notifier_main(void *arg) {
  uintptr_t generation = (uintptr_t)arg;
  pthread_mutex_lock(&queue_lock);
  while (generation == live_generation) {
    if (notify_fn == NULL || queue_len == 0 || signaled) {
      pthread_cond_wait(&queue_ready, &queue_lock);
      continue;
    }
    sched_notify_fn fn = notify_fn;
    signaled = 1;
    in_call = 1;
    pthread_mutex_unlock(&queue_lock);
    fn();
    pthread_mutex_lock(&queue_lock);
    if (generation == live_generation) in_call = 0;
  }
  pthread_mutex_unlock(&queue_lock);
  return NULL;
}

void completions_push(uint32_t token, int32_t status) {
  pthread_mutex_lock(&queue_lock);
  if (exiting) {
    pthread_mutex_unlock(&queue_lock);
    return;
  }
  if (queue_len == queue_cap) {
    size_t cap = queue_cap ? queue_cap * 2 : 256;
    completion *grown = realloc(queue, cap * sizeof *grown);
    if (grown == NULL) {
      /* Nothing sensible is left to do: dropping a token would hang its
       * waiter forever, and this may run on a CUDA callback thread. */
      abort();
    }
    queue = grown;
    queue_cap = cap;
  }
  queue[queue_len++] = (completion){token, status};
  /* Broadcast: besides the notifier, any number of sched_completions_wait
   * callers (one per isolate that ever waited) may be parked here. */
  pthread_cond_broadcast(&queue_ready);
  pthread_mutex_unlock(&queue_lock);
}

SCHED_API int32_t sched_notifier_install(sched_notify_fn fn) {
  pthread_mutex_lock(&queue_lock);
  notify_fn = fn;
  signaled = 0;
  if (fn != NULL) {
    /* Tokens still queued belong to whoever installed the previous
     * function; the new one numbers its own from scratch. */
    queue_len = 0;
  }
  if (fn != NULL && (live_generation == 0 || in_call)) {
    static uintptr_t generations;
    uintptr_t generation = ++generations;
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, notifier_main, (void *)generation);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      notify_fn = NULL;
      pthread_mutex_unlock(&queue_lock);
      return sched_fail(SCHED_ERR_BACKEND, "Cannot start the notifier thread: %s", strerror(rc));
    }
    live_generation = generation;
    in_call = 0;
  }
  pthread_cond_broadcast(&queue_ready);
  pthread_mutex_unlock(&queue_lock);
  return SCHED_OK;
}

SCHED_API uint32_t sched_completions_drain(uint32_t *tokens, int32_t *statuses, uint32_t capacity) {
  if (tokens == NULL || statuses == NULL || capacity == 0) return 0;
  pthread_mutex_lock(&queue_lock);
  uint32_t n = queue_len < capacity ? (uint32_t)queue_len : capacity;
  for (uint32_t i = 0; i < n; i++) {
    tokens[i] = queue[i].token;
    statuses[i] = queue[i].status;
  }
  memmove(queue, queue + n, (queue_len - n) * sizeof *queue);
  queue_len -= n;
  if (queue_len == 0) signaled = 0;
  pthread_mutex_unlock(&queue_lock);
  return n;
}

SCHED_API uint32_t sched_completions_wait(void) {
  pthread_mutex_lock(&queue_lock);
  uint64_t seen = wakes;
  while (queue_len == 0 && wakes == seen && !exiting) pthread_cond_wait(&queue_ready, &queue_lock);
  uint32_t n = (uint32_t)queue_len;
  pthread_mutex_unlock(&queue_lock);
  return n;
}

SCHED_API void sched_completions_wake(void) {
  pthread_mutex_lock(&queue_lock);
  wakes++;
  pthread_cond_broadcast(&queue_ready);
  pthread_mutex_unlock(&queue_lock);
}

void completions_reset(void) {
  pthread_mutex_lock(&queue_lock);
  queue_len = 0;
  signaled = 0;
  wakes++;
  pthread_cond_broadcast(&queue_ready);
  pthread_mutex_unlock(&queue_lock);
}

void completions_exit(void) {
  /* Bounded: whoever holds the lock holds it for a few instructions. */
  pthread_mutex_lock(&queue_lock);
  exiting = 1;
  notify_fn = NULL;
  pthread_cond_broadcast(&queue_ready);
  pthread_mutex_unlock(&queue_lock);
}
