/*
 * The watcher: how `await` learns that CUDA work finished, without a
 * thread per waiter and without a host function per waiter.
 *
 * A wait records a marker event (from a recycled pool) where it must
 * complete: on the stream itself for a stream wait, or on the source
 * stream's shadow, after a cudaStreamWaitEvent, for an event wait. Markers
 * of one queue complete in order, so one thread polls only the oldest
 * marker of each non-empty queue and hands completed tokens to
 * completions_push.
 *
 * Polling answers within about a microsecond but burns a core, so the
 * watcher polls only for SPIN_NS after the last progress. Before it
 * sleeps, it "arms" each queue: a tiny host function, queued on a private
 * waker stream behind the oldest marker, posts the semaphore it sleeps on.
 * Long waits thus cost one host function each, short ones none.
 *
 * Locking: one mutex guards the queues and the shadow streams; it may be
 * held across CUDA calls. CUDA's callback thread never takes it (the wake
 * host function only posts a semaphore), so no lock order with CUDA's own
 * locks can deadlock.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>

#include "cuda_common.h"

/* Long enough to catch short kernels without a host-function round trip,
 * short enough that an idle process does not keep a core busy. */
#define SPIN_NS 250000
/* Used only when arming failed, so a missed wake-up costs at most this. */
#define FALLBACK_SLEEP_NS 1000000

struct watch_item {
  cudaEvent_t marker; /* of `device`: a marker is recorded on streams of its device only */
  int device;
  uint32_t token;
  watch_item *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t wake;
static pthread_t thread;
static bool running, stopping;
static watch_queue *active;     /* non-empty queues */
static watch_item *spare_items[SCHED_MAX_DEVICES]; /* completed items by device, markers kept for reuse */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void CUDART_CB wake_watcher(void *unused) {
  (void)unused;
  sem_post(&wake);
}

/* A marker of device (the bound device). Caller holds the lock. */
static int32_t take_item(int device, watch_item **out) {
  if (spare_items[device] != NULL) {
    *out = spare_items[device];
    spare_items[device] = (*out)->next;
    return SCHED_OK;
  }
  watch_item *it = (watch_item *)calloc(1, sizeof *it);
  if (it == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory for a completion marker");
  /* Timing off: a marker is only ever queried. */
  cudaError_t err = cudaEventCreateWithFlags(&it->marker, cudaEventDisableTiming);
  if (err != cudaSuccess) {
    free(it);
    return cuda_fail(err, "cudaEventCreateWithFlags for a completion marker");
  }
  it->device = device;
  *out = it;
  return SCHED_OK;
}

/* Caller holds the lock. */
static void give_back(watch_item *it) {
  it->next = spare_items[it->device];
  spare_items[it->device] = it;
}

/* Caller holds the lock. */
static void enqueue(watch_queue *q, cuda_stream *owner, watch_item *it, uint32_t token) {
  it->token = token;
  it->next = NULL;
  if (q->tail != NULL) {
    q->tail->next = it;
  } else {
    q->head = it;
    q->owner = owner;
    stream_retain(owner);
    q->next_active = active;
    active = q;
  }
  q->tail = it;
}

int32_t watcher_stream_notify(cuda_stream *st, uint32_t token) {
  BIND_DEVICE();
  pthread_mutex_lock(&lock);
  watch_item *it = NULL;
  int32_t status = take_item(st->device, &it);
  if (status == SCHED_OK) {
    /* Recorded under the lock so queue order is record order. */
    cudaError_t err = cudaEventRecord(it->marker, st->s);
    if (err == cudaSuccess) {
      enqueue(&st->direct, st, it, token);
    } else {
      give_back(it);
      status = cuda_fail(err, "cudaEventRecord of a completion marker");
    }
  }
  pthread_mutex_unlock(&lock);
  if (status == SCHED_OK) sem_post(&wake);
  return status;
}

int32_t watcher_event_notify(cuda_stream *source, cudaEvent_t ev, uint32_t token) {
  BIND_DEVICE();
  pthread_mutex_lock(&lock);
  int32_t status = SCHED_OK;
  if (source->shadow == NULL) {
    /* Highest priority: it only waits and records markers. */
    cudaError_t err =
        cudaStreamCreateWithPriority(&source->shadow, cudaStreamNonBlocking, g_cuda.priority_greatest[source->device]);
    if (err != cudaSuccess) {
      source->shadow = NULL;
      status = cuda_fail(err, "cudaStreamCreateWithPriority of a shadow stream");
    }
  }
  watch_item *it = NULL;
  if (status == SCHED_OK) status = take_item(source->device, &it);
  if (status == SCHED_OK) {
    /* The wait captures the event's latest record now: re-recording the
     * event later does not move this notification. */
    cudaError_t err = cudaStreamWaitEvent(source->shadow, ev, 0);
    if (err == cudaSuccess) err = cudaEventRecord(it->marker, source->shadow);
    if (err == cudaSuccess) {
      enqueue(&source->indirect, source, it, token);
    } else {
      give_back(it);
      status = cuda_fail(err, "Queueing a completion marker behind an event");
    }
  }
  pthread_mutex_unlock(&lock);
  if (status == SCHED_OK) sem_post(&wake);
  return status;
}

void watcher_replace_stream(cuda_stream *st, cudaStream_t fresh, cuda_partition *p, cudaStream_t *old_s,
                            cuda_partition **old_p) {
  pthread_mutex_lock(&lock);
  *old_s = st->s;
  *old_p = st->partition;
  st->s = fresh;
  st->partition = p;
  pthread_mutex_unlock(&lock);
}

/* Completes every finished head; returns whether anything completed.
 * Caller holds the lock. */
static bool sweep(void) {
  bool progressed = false;
  for (watch_queue **link = &active; *link != NULL;) {
    watch_queue *q = *link;
    while (q->head != NULL) {
      cudaError_t err = cudaEventQuery(q->head->marker);
      if (err == cudaErrorNotReady) break;
      watch_item *it = q->head;
      q->head = it->next;
      if (q->head == NULL) q->tail = NULL;
      /* Items are recycled: a completed armed item may come back as a later head of this queue,
       * and `armed == head` would then skip arming it, so the watcher slept past its completion
       * (a hang seen on the H200 about once in 40 runs of examples/model_swap.ts). */
      if (q->armed == it) q->armed = NULL;
      if (err == cudaSuccess) {
        completions_push(it->token, SCHED_OK);
        give_back(it);
      } else {
        /* A failed stream (a faulting kernel) fails its waiters with the
         * reason rather than leaving them pending forever. */
        (void)cudaGetLastError();
        completions_push(it->token, map_cuda_error(err));
        (void)cudaEventDestroy(it->marker);
        free(it);
      }
      progressed = true;
    }
    if (q->head == NULL) {
      *link = q->next_active;
      q->next_active = NULL;
      q->armed = NULL;
      /* May free the stream, and q with it: q is unlinked and not touched again. */
      stream_release(q->owner);
    } else {
      link = &q->next_active;
    }
  }
  return progressed;
}

/* Queues a wake-up behind each pending head. Returns false when some queue
 * could not be armed, so the caller sleeps with a timeout instead.
 * Caller holds the lock. */
static bool arm_all(void) {
  bool armed_all = true;
  for (watch_queue *q = active; q != NULL; q = q->next_active) {
    if (q->armed == q->head) continue;
    /* The waker waits on a marker of the owner's device, so it lives there,
     * and it is used with that device current. */
    if (cudaSetDevice(q->owner->device) != cudaSuccess) {
      (void)cudaGetLastError();
      armed_all = false;
      continue;
    }
    if (q->waker == NULL && cudaStreamCreateWithPriority(&q->waker, cudaStreamNonBlocking,
                                                         g_cuda.priority_greatest[q->owner->device]) != cudaSuccess) {
      q->waker = NULL;
      (void)cudaGetLastError();
      armed_all = false;
      continue;
    }
    if (cudaStreamWaitEvent(q->waker, q->head->marker, 0) != cudaSuccess ||
        cudaLaunchHostFunc(q->waker, wake_watcher, NULL) != cudaSuccess) {
      (void)cudaGetLastError();
      armed_all = false;
      continue;
    }
    q->armed = q->head;
  }
  return armed_all;
}

static void sleep_until_woken(bool armed) {
  if (armed) {
    while (sem_wait(&wake) != 0 && errno == EINTR) {
    }
    return;
  }
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_nsec += FALLBACK_SLEEP_NS;
  if (deadline.tv_nsec >= 1000000000) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000;
  }
  while (sem_timedwait(&wake, &deadline) != 0 && errno == EINTR) {
  }
}

static void *watcher_main(void *unused) {
  (void)unused;
  (void)cudaSetDevice(0); /* arm_all binds each queue's device as needed */
  int64_t last_progress = now_ns();
  pthread_mutex_lock(&lock);
  for (;;) {
    if (sweep()) last_progress = now_ns();
    if (active == NULL) {
      if (stopping) break;
      pthread_mutex_unlock(&lock);
      sleep_until_woken(true);
      pthread_mutex_lock(&lock);
      last_progress = now_ns();
      continue;
    }
    if (now_ns() - last_progress < SPIN_NS) {
      pthread_mutex_unlock(&lock);
      sched_yield();
      pthread_mutex_lock(&lock);
      continue;
    }
    /* Forget wake-ups posted while spinning (each registration posts one),
     * then look once more: anything registered before the drain is seen
     * by this sweep, anything after it posts again. */
    while (sem_trywait(&wake) == 0) {
    }
    if (sweep()) {
      last_progress = now_ns();
      continue;
    }
    if (active == NULL) continue;
    bool armed = arm_all();
    pthread_mutex_unlock(&lock);
    sleep_until_woken(armed && !stopping);
    pthread_mutex_lock(&lock);
    last_progress = now_ns();
  }
  pthread_mutex_unlock(&lock);
  return NULL;
}

int32_t watcher_start(void) {
  if (running) return SCHED_OK;
  if (sem_init(&wake, 0, 0) != 0)
    return sched_fail(SCHED_ERR_BACKEND, "Cannot create the watcher's semaphore: %s", strerror(errno));
  stopping = false;
  active = NULL;
  int rc = pthread_create(&thread, NULL, watcher_main, NULL);
  if (rc != 0) {
    sem_destroy(&wake);
    return sched_fail(SCHED_ERR_BACKEND, "Cannot start the watcher thread: %s", strerror(rc));
  }
  running = true;
  return SCHED_OK;
}

void watcher_stop(void) {
  if (!running) return;
  pthread_mutex_lock(&lock);
  stopping = true;
  pthread_mutex_unlock(&lock);
  sem_post(&wake);
  /* The watcher never waits for JavaScript or for the caller, so joining
   * cannot deadlock; the device is synchronized, so its last sweep
   * completes every pending token. */
  pthread_join(thread, NULL);
  running = false;
  for (int d = 0; d < SCHED_MAX_DEVICES; d++) {
    while (spare_items[d] != NULL) {
      watch_item *it = spare_items[d];
      spare_items[d] = it->next;
      (void)cudaSetDevice(d);
      (void)cudaEventDestroy(it->marker);
      free(it);
    }
  }
  sem_destroy(&wake);
}

void cuda_quiesce_at_exit(void) {
  if (!running) return;
  /* Taken and never given back: the watcher stops at its next step, before
   * cudart's exit handlers destroy what it would query. Bounded, in case
   * some thread is stuck inside CUDA with the lock held. */
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 1;
  (void)pthread_mutex_timedlock(&lock, &deadline);
}
