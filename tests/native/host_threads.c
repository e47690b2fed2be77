/*
 * Drives libsched's host backend from several threads at once, for
 * ThreadSanitizer (TSan cannot run inside Deno, which is not instrumented:
 * it reports races in V8 and Tokio and stalls). Each thread owns streams,
 * events, a pool and buffers; threads also wait on each other's events and
 * query, notify and drain completions concurrently, and the whole cycle
 * runs under repeated sched_init/sched_shutdown. A second phase destroys
 * and recreates events and streams on one thread while others record,
 * wait, query and launch on those handles: every call must either work or
 * fail with SCHED_ERR_INVALID_HANDLE, never reach freed memory. Built and
 * run by .ci/sanitize; exits non-zero on any unexpected status.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libsched/include/sched.h"

#define THREADS 4
#define ROUNDS 200
#define CYCLES 5

static uint32_t shared_events[THREADS];
static atomic_int failures;
static atomic_uint fn_runs;

#define CHECK(call)                                                             \
  do {                                                                          \
    int32_t s_ = (call);                                                        \
    if (s_ != SCHED_OK) {                                                       \
      char msg_[256];                                                           \
      sched_last_error(msg_, sizeof msg_);                                      \
      fprintf(stderr, "%s:%d: %s -> %d: %s\n", __FILE__, __LINE__, #call, s_, msg_); \
      atomic_fetch_add(&failures, 1);                                           \
      return NULL;                                                              \
    }                                                                           \
  } while (0)

static void count_run(void *user_data) {
  (void)user_data;
  atomic_fetch_add(&fn_runs, 1);
}

static void notified(void) {}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint32_t stream, other, pool, timing;
  CHECK(sched_stream_create(0, 0, &stream, NULL));
  CHECK(sched_stream_create(-1, 0, &other, NULL));
  CHECK(sched_pool_create(0, 64 * 1024, &pool));
  CHECK(sched_event_create(SCHED_EVENT_TIMING, &timing));
  uint8_t host_in[4096], host_out[4096];
  for (int round = 0; round < ROUNDS; round++) {
    size_t bytes = 64 + (size_t)((round * 131 + id * 17) % 4000);
    memset(host_in, (int)(round + id), bytes);
    void *buf, *sync_buf;
    CHECK(sched_malloc_async(pool, stream, bytes, &buf));
    CHECK(sched_memset_async(buf, 0, 0xab, bytes, stream));
    CHECK(sched_memcpy_async(buf, 0, host_in, 0, bytes, SCHED_COPY_HOST_TO_DEVICE, stream));
    CHECK(sched_launch_host_func(stream, count_run, NULL));
    CHECK(sched_event_record(shared_events[id], stream));
    CHECK(sched_event_record(timing, stream));
    /* Another thread's event: cross-thread record/wait/query. */
    uint32_t peer = shared_events[(id + 1) % THREADS];
    CHECK(sched_stream_wait_event(other, peer));
    CHECK(sched_stream_wait_event(other, shared_events[id]));
    CHECK(sched_memcpy_async(host_out, 0, buf, 0, bytes, SCHED_COPY_DEVICE_TO_HOST, other));
    CHECK(sched_stream_notify(other, (uint32_t)(id * ROUNDS + round + 1)));
    CHECK(sched_event_notify(peer, (uint32_t)(id * ROUNDS + round + 1)));
    int32_t q = sched_event_query(peer);
    if (q != SCHED_OK && q != SCHED_ERR_NOT_READY) CHECK(q);
    CHECK(sched_stream_synchronize(other));
    if (memcmp(host_in, host_out, bytes) != 0) {
      fprintf(stderr, "thread %d round %d: read back differs\n", id, round);
      atomic_fetch_add(&failures, 1);
      return NULL;
    }
    CHECK(sched_free_async(buf, other));
    CHECK(sched_malloc(bytes, &sync_buf));
    CHECK(sched_free(sync_buf));
    uint32_t tokens[64];
    int32_t statuses[64];
    sched_completions_drain(tokens, statuses, 64);
    if (round % 50 == 0) {
      uint64_t used, reserved, free_bytes, total;
      CHECK(sched_pool_usage(pool, &used, &reserved));
      CHECK(sched_pool_trim(pool, 0));
      CHECK(sched_mem_info(&free_bytes, &total));
    }
  }
  CHECK(sched_stream_synchronize(stream));
  float ms;
  CHECK(sched_event_elapsed_ms(timing, timing, &ms));
  CHECK(sched_event_destroy(timing));
  CHECK(sched_stream_synchronize(other));
  CHECK(sched_pool_destroy(pool));
  CHECK(sched_stream_destroy(other));
  /* `stream` is left for sched_shutdown to reclaim, with a buffer in it. */
  void *leaked;
  CHECK(sched_malloc(1024, &leaked));
  CHECK(sched_launch_host_func(stream, count_run, NULL));
  return NULL;
}

/* Phase 2: handles destroyed on one thread while other threads use them. */
#define CHURN_SLOTS 8
#define CHURN_USERS 3
#define CHURN_REPLACEMENTS 20000
static _Atomic uint32_t churn_events[CHURN_SLOTS], churn_streams[CHURN_SLOTS];
static atomic_int churn_stop;
static atomic_long churn_ok, churn_refused;

static void churn_count(int32_t status, const char *what) {
  if (status == SCHED_OK || status == SCHED_ERR_NOT_READY) {
    atomic_fetch_add(&churn_ok, 1);
  } else if (status == SCHED_ERR_INVALID_HANDLE) {
    atomic_fetch_add(&churn_refused, 1);
  } else {
    fprintf(stderr, "churn: %s -> %d\n", what, status);
    atomic_fetch_add(&failures, 1);
  }
}

static void *churn_user(void *arg) {
  uint32_t own;
  CHECK(sched_stream_create(0, 0, &own, NULL));
  for (unsigned i = (unsigned)(intptr_t)arg; !atomic_load(&churn_stop); i++) {
    uint32_t e = atomic_load(&churn_events[i % CHURN_SLOTS]);
    uint32_t s = atomic_load(&churn_streams[(i / 3) % CHURN_SLOTS]);
    churn_count(sched_event_record(e, own), "sched_event_record");
    churn_count(sched_event_query(e), "sched_event_query");
    churn_count(sched_stream_wait_event(s, e), "sched_stream_wait_event");
    churn_count(sched_launch_host_func(s, count_run, NULL), "sched_launch_host_func");
    void *native;
    if (sched_stream_native(s, &native) == SCHED_OK) {
      churn_count(sched_launch_host_func_native(native, count_run, NULL), "sched_launch_host_func_native");
    }
    churn_count(sched_stream_query(s), "sched_stream_query");
  }
  CHECK(sched_stream_synchronize(own));
  return NULL;
}

static int churn(void) {
  if (sched_init(SCHED_BACKEND_HOST, 0, 1u << 20) != SCHED_OK) return 1;
  for (int i = 0; i < CHURN_SLOTS; i++) {
    uint32_t e, s;
    if (sched_event_create(0, &e) != SCHED_OK || sched_stream_create(0, 0, &s, NULL) != SCHED_OK) return 1;
    churn_events[i] = e;
    churn_streams[i] = s;
  }
  pthread_t users[CHURN_USERS];
  for (int i = 0; i < CHURN_USERS; i++) pthread_create(&users[i], NULL, churn_user, (void *)(intptr_t)i);
  for (int i = 0; i < CHURN_REPLACEMENTS; i++) {
    uint32_t fresh;
    if (i % 2 == 0) {
      if (sched_event_create(0, &fresh) != SCHED_OK) return 1;
      if (sched_event_destroy(atomic_exchange(&churn_events[i / 2 % CHURN_SLOTS], fresh)) != SCHED_OK) return 1;
    } else {
      if (sched_stream_create(0, 0, &fresh, NULL) != SCHED_OK) return 1;
      if (sched_stream_destroy(atomic_exchange(&churn_streams[i / 2 % CHURN_SLOTS], fresh)) != SCHED_OK) return 1;
    }
  }
  atomic_store(&churn_stop, 1);
  for (int i = 0; i < CHURN_USERS; i++) pthread_join(users[i], NULL);
  if (sched_shutdown() != SCHED_OK) return 1;
  printf("host_threads churn: %d replacements, %ld calls worked, %ld refused a destroyed handle\n",
         CHURN_REPLACEMENTS, atomic_load(&churn_ok), atomic_load(&churn_refused));
  return 0;
}

int main(void) {
  for (int cycle = 0; cycle < CYCLES; cycle++) {
    if (sched_init(SCHED_BACKEND_HOST, 0, 256u << 20) != SCHED_OK) {
      fprintf(stderr, "sched_init failed\n");
      return 1;
    }
    if (sched_notifier_install(notified) != SCHED_OK) return 1;
    for (int i = 0; i < THREADS; i++) {
      if (sched_event_create(0, &shared_events[i]) != SCHED_OK) return 1;
    }
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    if (sched_shutdown() != SCHED_OK) return 1;
  }
  sched_notifier_install(NULL);
  if (churn() != 0) {
    fprintf(stderr, "churn: setup failed\n");
    return 1;
  }
  int failed = atomic_load(&failures);
  printf("host_threads: %d threads x %d rounds x %d cycles, %u host functions ran, %d failures\n",
         THREADS, ROUNDS, CYCLES, atomic_load(&fn_runs), failed);
  return failed == 0 ? 0 : 1;
}
