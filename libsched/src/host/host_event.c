/*
 * Host events. A record bumps `recorded` when enqueued (and lists its
 * generation as pending) and the stream's worker takes it off the list when
 * it reaches it, so "the latest record completed" is `recorded` not pending,
 * as cudaEventQuery defines it, and a wait waits for the record current when
 * it was queued, even when a later record on another stream runs first.
 * Events are refcounted: queued records and waits keep a destroyed event
 * alive until they ran, as CUDA allows destroying an event in use.
 */
#include <stdlib.h>

#include "host.h"

typedef struct event_waiter {
  struct event_waiter *next;
  uint64_t generation;
  uint32_t token;
} event_waiter;

static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t events_progressed = PTHREAD_COND_INITIALIZER;


/* Caller holds events_lock. */
static void unref(host_event *e) {
  if (--e->refs == 0) {
    free(e->pending);
    free(e);
  }
}

/* Caller holds events_lock. Whether the record of `generation` has run. */
static int generation_done(const host_event *e, uint64_t generation) {
  if (generation > e->recorded) return 0;
  for (uint32_t i = 0; i < e->pending_count; i++) {
    if (e->pending[i] == generation) return 0;
  }
  return 1;
}

/* Caller holds events_lock. */
static void pending_remove(host_event *e, uint64_t generation) {
  for (uint32_t i = 0; i < e->pending_count; i++) {
    if (e->pending[i] == generation) {
      e->pending[i] = e->pending[--e->pending_count];
      return;
    }
  }
}

static int32_t event_create(uint32_t flags, void **out_event) {
  host_event *e = calloc(1, sizeof *e);
  if (e == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory creating an event");
  e->flags = flags;
  e->refs = 1;
  *out_event = e;
  return SCHED_OK;
}

static int32_t event_destroy(void *event) {
  pthread_mutex_lock(&events_lock);
  unref(event);
  pthread_mutex_unlock(&events_lock);
  return SCHED_OK;
}

/* Under the stream's lock (see host_op): the event fires in the same
 * instant the stream counts the record as done. */
static void complete_record(host_op *op) {
  host_event *e = op->u.event.event;
  event_waiter *ready = NULL;
  pthread_mutex_lock(&events_lock);
  pending_remove(e, op->u.event.generation);
  if (op->u.event.generation > e->done) {
    e->done = op->u.event.generation;
    e->done_at_ms = host_now_ms();
  }
  for (event_waiter **p = &e->waiters; *p != NULL;) {
    event_waiter *w = *p;
    if (generation_done(e, w->generation)) {
      *p = w->next;
      w->next = ready;
      ready = w;
    } else {
      p = &w->next;
    }
  }
  pthread_cond_broadcast(&events_progressed);
  unref(e);
  pthread_mutex_unlock(&events_lock);
  op->ready = ready;
}

static void notify_waiters(host_op *op) {
  for (event_waiter *w = op->ready; w != NULL;) {
    event_waiter *next = w->next;
    completions_push(w->token, SCHED_OK);
    free(w);
    w = next;
  }
}

static int32_t event_record(void *event, void *stream) {
  host_event *e = event;
  host_op *op = host_op_new(NULL);
  if (op == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory recording an event");
  op->complete = complete_record;
  op->after = notify_waiters;
  op->u.event.event = e;
  pthread_mutex_lock(&events_lock);
  if (e->pending_count == e->pending_cap) {
    uint32_t cap = e->pending_cap ? e->pending_cap * 2 : 4;
    uint64_t *grown = realloc(e->pending, cap * sizeof *grown);
    if (grown == NULL) {
      pthread_mutex_unlock(&events_lock);
      free(op);
      return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory recording an event");
    }
    e->pending = grown;
    e->pending_cap = cap;
  }
  op->u.event.generation = ++e->recorded;
  e->pending[e->pending_count++] = op->u.event.generation;
  e->refs++;
  pthread_mutex_unlock(&events_lock);
  return host_stream_enqueue(stream, op);
}

static void run_wait(host_op *op) {
  host_event *e = op->u.event.event;
  pthread_mutex_lock(&events_lock);
  while (!generation_done(e, op->u.event.generation)) {
    pthread_cond_wait(&events_progressed, &events_lock);
  }
  unref(e);
  pthread_mutex_unlock(&events_lock);
}

static int32_t stream_wait_event(void *stream, void *event) {
  host_event *e = event;
  pthread_mutex_lock(&events_lock);
  uint64_t generation = e->recorded;
  /* Nothing recorded, or already complete: CUDA makes this a no-op too. */
  if (generation == 0 || generation_done(e, generation)) {
    pthread_mutex_unlock(&events_lock);
    return SCHED_OK;
  }
  host_op *op = host_op_new(run_wait);
  if (op == NULL) {
    pthread_mutex_unlock(&events_lock);
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory queueing an event wait");
  }
  op->u.event.event = e;
  op->u.event.generation = generation;
  e->refs++;
  pthread_mutex_unlock(&events_lock);
  return host_stream_enqueue(stream, op);
}

static int32_t event_query(void *event) {
  host_event *e = event;
  pthread_mutex_lock(&events_lock);
  int complete = generation_done(e, e->recorded);
  pthread_mutex_unlock(&events_lock);
  return complete ? SCHED_OK : SCHED_ERR_NOT_READY;
}

static int32_t event_synchronize(void *event) {
  host_event *e = event;
  pthread_mutex_lock(&events_lock);
  uint64_t target = e->recorded;
  while (!generation_done(e, target)) pthread_cond_wait(&events_progressed, &events_lock);
  pthread_mutex_unlock(&events_lock);
  return SCHED_OK;
}

static int32_t event_elapsed_ms(void *start, void *end, float *out_ms) {
  host_event *a = start, *b = end;
  int32_t status = SCHED_OK;
  pthread_mutex_lock(&events_lock);
  if (!(a->flags & SCHED_EVENT_TIMING) || !(b->flags & SCHED_EVENT_TIMING)) {
    status = sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Elapsed time needs events created with SCHED_EVENT_TIMING");
  } else if (a->recorded == 0 || b->recorded == 0) {
    status = sched_fail(SCHED_ERR_INVALID_ARGUMENT, "Elapsed time needs both events recorded");
  } else if (!generation_done(a, a->recorded) || !generation_done(b, b->recorded)) {
    status = SCHED_ERR_NOT_READY;
  } else {
    *out_ms = (float)(b->done_at_ms - a->done_at_ms);
  }
  pthread_mutex_unlock(&events_lock);
  return status;
}

static int32_t event_notify(void *event, uint32_t token) {
  host_event *e = event;
  pthread_mutex_lock(&events_lock);
  if (generation_done(e, e->recorded)) {
    pthread_mutex_unlock(&events_lock);
    completions_push(token, SCHED_OK);
    return SCHED_OK;
  }
  event_waiter *w = malloc(sizeof *w);
  if (w == NULL) {
    pthread_mutex_unlock(&events_lock);
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory registering an event waiter");
  }
  w->generation = e->recorded;
  w->token = token;
  w->next = e->waiters;
  e->waiters = w;
  pthread_mutex_unlock(&events_lock);
  return SCHED_OK;
}

void host_event_ops(backend_ops *ops) {
  ops->event_create = event_create;
  ops->event_destroy = event_destroy;
  ops->event_record = event_record;
  ops->event_query = event_query;
  ops->event_synchronize = event_synchronize;
  ops->event_elapsed_ms = event_elapsed_ms;
  ops->event_notify = event_notify;
  ops->stream_wait_event = stream_wait_event;
}
