/*
 * Host streams: one worker thread each, running its FIFO in order, exactly
 * as a CUDA stream runs its work. Destroying a stream lets queued work
 * finish (as cudaStreamDestroy does) and the worker frees the stream.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host.h"

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t worker_exited = PTHREAD_COND_INITIALIZER;
static host_stream *live_streams;
static int live_workers;
/* Set at process exit (see sched.c): workers park before their next op. */
static int quiescing;

/* Never returns: the process is exiting and this thread must not run
 * anything more (the op it would run may call code being torn down). */
static void park_forever(void) {
  for (;;) sleep(3600);
}

void host_streams_quiesce(void) { __atomic_store_n(&quiescing, 1, __ATOMIC_RELEASE); }

double host_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

host_op *host_op_new(host_op_run run) {
  host_op *op = calloc(1, sizeof *op);
  if (op != NULL) op->run = run;
  return op;
}

static void unlink_live(host_stream *s) {
  pthread_mutex_lock(&live_lock);
  for (host_stream **p = &live_streams; *p != NULL; p = &(*p)->next_live) {
    if (*p == s) {
      *p = s->next_live;
      break;
    }
  }
  pthread_mutex_unlock(&live_lock);
}

static void *worker_main(void *arg) {
  host_stream *s = arg;
  pthread_mutex_lock(&s->lock);
  for (;;) {
    while (s->head == NULL && !s->exiting) pthread_cond_wait(&s->has_work, &s->lock);
    if (s->head == NULL) break; /* exiting, and all queued work is done */
    if (__atomic_load_n(&quiescing, __ATOMIC_ACQUIRE)) {
      pthread_mutex_unlock(&s->lock);
      park_forever();
    }
    host_op *op = s->head;
    s->head = op->next;
    if (s->head == NULL) s->tail = NULL;
    pthread_mutex_unlock(&s->lock);
    if (op->run != NULL) op->run(op);
    pthread_mutex_lock(&s->lock);
    if (op->complete != NULL) op->complete(op);
    s->completed++;
    pthread_cond_broadcast(&s->progressed);
    if (op->after != NULL) {
      pthread_mutex_unlock(&s->lock);
      op->after(op);
      pthread_mutex_lock(&s->lock);
    }
    free(op);
  }
  pthread_mutex_unlock(&s->lock);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->has_work);
  pthread_cond_destroy(&s->progressed);
  free(s);
  pthread_mutex_lock(&live_lock);
  live_workers--;
  pthread_cond_broadcast(&worker_exited);
  pthread_mutex_unlock(&live_lock);
  return NULL;
}

static int32_t stream_create(int32_t priority, void *partition, void **out_stream) {
  (void)partition; /* partitions only count here: any worker runs on any CPU */
  host_stream *s = calloc(1, sizeof *s);
  if (s == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory creating a stream");
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->has_work, NULL);
  pthread_cond_init(&s->progressed, NULL);
  s->priority = priority;
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_mutex_lock(&live_lock);
  int rc = pthread_create(&thread, &attr, worker_main, s);
  if (rc == 0) {
    live_workers++;
    s->next_live = live_streams;
    live_streams = s;
  }
  pthread_mutex_unlock(&live_lock);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->has_work);
    pthread_cond_destroy(&s->progressed);
    free(s);
    return sched_fail(SCHED_ERR_BACKEND, "Cannot start a host stream worker: %s", strerror(rc));
  }
  *out_stream = s;
  return SCHED_OK;
}

/* The worker thread is the stream and no SM set confines it, so moving it
 * changes nothing that runs: its order is kept for free. */
static int32_t stream_rebind(void *stream, void *partition) {
  (void)stream;
  (void)partition;
  return SCHED_OK;
}

static int32_t stream_destroy(void *stream) {
  host_stream *s = stream;
  unlink_live(s);
  pthread_mutex_lock(&s->lock);
  s->exiting = 1;
  pthread_cond_signal(&s->has_work);
  pthread_mutex_unlock(&s->lock);
  return SCHED_OK;
}

int32_t host_stream_enqueue(host_stream *s, host_op *op) {
  pthread_mutex_lock(&s->lock);
  op->next = NULL;
  if (s->tail != NULL) {
    s->tail->next = op;
  } else {
    s->head = op;
  }
  s->tail = op;
  s->enqueued++;
  pthread_cond_signal(&s->has_work);
  pthread_mutex_unlock(&s->lock);
  return SCHED_OK;
}

static int32_t stream_query(void *stream) {
  host_stream *s = stream;
  pthread_mutex_lock(&s->lock);
  int idle = s->completed == s->enqueued;
  pthread_mutex_unlock(&s->lock);
  return idle ? SCHED_OK : SCHED_ERR_NOT_READY;
}

static int32_t stream_synchronize(void *stream) {
  host_stream *s = stream;
  pthread_mutex_lock(&s->lock);
  uint64_t target = s->enqueued;
  while (s->completed < target) pthread_cond_wait(&s->progressed, &s->lock);
  pthread_mutex_unlock(&s->lock);
  return SCHED_OK;
}

int32_t host_streams_synchronize_all(void) {
  /* Collect first: synchronizing under live_lock would block stream creation
   * and destruction for as long as the slowest stream runs. */
  pthread_mutex_lock(&live_lock);
  size_t n = 0;
  for (host_stream *s = live_streams; s != NULL; s = s->next_live) n++;
  host_stream **all = n ? malloc(n * sizeof *all) : NULL;
  uint64_t *targets = n ? malloc(n * sizeof *targets) : NULL;
  if (n > 0 && (all == NULL || targets == NULL)) {
    pthread_mutex_unlock(&live_lock);
    free(all);
    free(targets);
    return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory synchronizing the device");
  }
  size_t i = 0;
  for (host_stream *s = live_streams; s != NULL; s = s->next_live, i++) {
    all[i] = s;
    pthread_mutex_lock(&s->lock);
    targets[i] = s->enqueued;
    pthread_mutex_unlock(&s->lock);
  }
  /* Wait while still holding live_lock so none of them can be freed meanwhile;
   * workers take live_lock only when exiting, which these are not. */
  for (i = 0; i < n; i++) {
    pthread_mutex_lock(&all[i]->lock);
    while (all[i]->completed < targets[i]) pthread_cond_wait(&all[i]->progressed, &all[i]->lock);
    pthread_mutex_unlock(&all[i]->lock);
  }
  pthread_mutex_unlock(&live_lock);
  free(all);
  free(targets);
  return SCHED_OK;
}

void host_streams_wait_exit(void) {
  pthread_mutex_lock(&live_lock);
  while (live_workers > 0) pthread_cond_wait(&worker_exited, &live_lock);
  pthread_mutex_unlock(&live_lock);
}

static void *stream_native(void *stream) { return stream; }

static void run_host_func(host_op *op) { op->u.func.fn(op->u.func.user_data); }

static int32_t launch_host_func(void *stream, sched_host_fn fn, void *user_data) {
  host_op *op = host_op_new(run_host_func);
  if (op == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory queueing a host function");
  op->u.func.fn = fn;
  op->u.func.user_data = user_data;
  return host_stream_enqueue(stream, op);
}

static void push_token(host_op *op) {
  completions_push(op->u.notify.token, host_fault_hit(SCHED_FAULT_STREAM) ? SCHED_ERR_BACKEND : SCHED_OK);
}

static int32_t stream_notify(void *stream, uint32_t token) {
  host_op *op = host_op_new(NULL);
  if (op != NULL) op->after = push_token;
  if (op == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory queueing a notification");
  op->u.notify.token = token;
  return host_stream_enqueue(stream, op);
}

/* Exposed to host_backend.c through these accessors so the ops table stays in one place. */
void host_stream_ops(backend_ops *ops) {
  ops->stream_create = stream_create;
  ops->stream_rebind = stream_rebind;
  ops->stream_destroy = stream_destroy;
  ops->stream_query = stream_query;
  ops->stream_synchronize = stream_synchronize;
  ops->stream_native = stream_native;
  ops->launch_host_func = launch_host_func;
  ops->stream_notify = stream_notify;
}
