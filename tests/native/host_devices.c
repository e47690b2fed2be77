/*
 * Several simulated devices under many threads, for AddressSanitizer and
 * ThreadSanitizer (.ci/sanitize): each thread makes its own device
 * current, creates streams, pools and allocations there, copies to a
 * buffer of the other device and waits on the other device's events, while
 * the per-device capacities must come back whole at the end.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../../libsched/include/sched.h"

#define THREADS 8
#define ROUNDS 200
#define CAPACITY (64u << 20)
#define BYTES 4096

static void *shared[2]; /* one buffer per device; each thread copies into its own slice */
static uint32_t shared_streams[2];
static int failures;
static pthread_mutex_t failures_lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *what, int32_t status) {
  char msg[256];
  sched_last_error(msg, sizeof msg);
  pthread_mutex_lock(&failures_lock);
  failures++;
  fprintf(stderr, "%s: status %d: %s\n", what, status, msg);
  pthread_mutex_unlock(&failures_lock);
}

#define CHECK(call)                      \
  do {                                   \
    int32_t st_ = (call);                \
    if (st_ != SCHED_OK) {               \
      fail(#call, st_);                  \
      return NULL;                       \
    }                                    \
  } while (0)

static void *worker(void *arg) {
  int slice = (int)(intptr_t)arg;
  int device = slice % 2;
  int other = 1 - device;
  CHECK(sched_set_device(device));
  uint32_t stream = 0, pool = 0, event = 0;
  CHECK(sched_stream_create(0, 0, &stream, NULL));
  CHECK(sched_pool_create(0, 0, &pool));
  CHECK(sched_event_create(0, &event));
  for (int i = 0; i < ROUNDS; i++) {
    void *mine = NULL;
    CHECK(sched_malloc_async(pool, stream, BYTES, &mine));
    CHECK(sched_memset_async(mine, 0, (uint8_t)i, BYTES, stream));
    /* To the other device's shared buffer, ordered after its stream's work. */
    int32_t d = -1;
    CHECK(sched_get_device(&d));
    if (d != device) {
      fail("the current device moved under a thread", d);
      return NULL;
    }
    /* An event lives on the device current at its creation, and records
     * only on that device's streams. */
    uint32_t theirs = 0;
    CHECK(sched_set_device(other));
    CHECK(sched_event_create(0, &theirs));
    CHECK(sched_event_record(theirs, shared_streams[other]));
    CHECK(sched_set_device(device));
    CHECK(sched_stream_wait_event(stream, theirs));
    CHECK(sched_event_destroy(theirs));
    CHECK(sched_memcpy_async(shared[other], (uint64_t)slice * BYTES, mine, 0, BYTES, SCHED_COPY_DEVICE_TO_DEVICE,
                             stream));
    CHECK(sched_event_record(event, stream));
    CHECK(sched_free_async(mine, stream));
  }
  CHECK(sched_stream_synchronize(stream));
  CHECK(sched_event_destroy(event));
  CHECK(sched_pool_destroy(pool));
  CHECK(sched_stream_destroy(stream));
  return NULL;
}

int main(void) {
  for (int cycle = 0; cycle < 3; cycle++) {
    if (sched_init_devices(SCHED_BACKEND_HOST, 0, 2, CAPACITY) != SCHED_OK) return 1;
    for (int d = 0; d < 2; d++) {
      if (sched_set_device(d) != SCHED_OK || sched_stream_create(0, 0, &shared_streams[d], NULL) != SCHED_OK ||
          sched_malloc((uint64_t)THREADS * BYTES, &shared[d]) != SCHED_OK) {
        fprintf(stderr, "setup of device %d failed\n", d);
        return 1;
      }
    }
    pthread_t threads[THREADS];
    for (intptr_t t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, worker, (void *)t);
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    for (int d = 0; d < 2; d++) {
      sched_set_device(d);
      sched_stream_synchronize(shared_streams[d]);
      sched_free(shared[d]);
      uint64_t free_bytes = 0, total = 0;
      sched_mem_info(&free_bytes, &total);
      if (free_bytes != CAPACITY || total != CAPACITY) {
        fprintf(stderr, "device %d: %llu of %llu bytes free after the run\n", d, (unsigned long long)free_bytes,
                (unsigned long long)total);
        failures++;
      }
    }
    sched_shutdown();
  }
  if (failures > 0) return 1;
  printf("host_devices: %d threads x %d rounds x 3 cycles on 2 devices, capacities whole\n", THREADS, ROUNDS);
  return 0;
}
