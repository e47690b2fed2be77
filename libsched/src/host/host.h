/*
 * The host backend: a CPU stand-in for a GPU with the same ordering and
 * error semantics, so every test and example runs without a device.
 *   - a stream is a worker thread draining a FIFO of operations;
 *   - an event is a generation counter: a record bumps the wanted
 *     generation at enqueue time and the worker marks it done when reached;
 *   - device memory is heap memory counted against a fixed capacity;
 *   - several devices are simulated as several capacities: streams, events
 *     and partitions of every device share the same workers and rules, so
 *     a copy or wait between devices is an ordinary one.
 * Priorities are recorded and reported, not enforced (the OS schedules the
 * workers). SM partitions are simulated: the device reports 132 SMs in
 * groups of 8, as an H100 or H200 does, and partitions get the same SM
 * counts as there, but they only count: every worker runs on any CPU.
 */
#ifndef GPUSCHED_HOST_H
#define GPUSCHED_HOST_H

#include <pthread.h>
#include <stdint.h>

#include "../backend.h"

typedef struct host_op host_op;
typedef void (*host_op_run)(host_op *op);

/* One queued operation; the worker runs it and frees it.
 * `run` does the work. `complete`, when set, runs while the stream's lock is
 * held, together with the stream's completed count, so that "this
 * operation is done" (an event fired) and "the stream got this far" are
 * observed at once, as on CUDA. `after`, when set, runs once the lock is
 * released (notifications, which may wake other threads). */
struct host_op {
  host_op *next;
  host_op_run run;
  host_op_run complete;
  host_op_run after;
  void *ready; /* what `complete` hands to `after` */
  union {
    struct { void *dst; const void *src; uint64_t bytes; } copy;
    struct { void *dst; uint8_t value; uint64_t bytes; } set;
    struct { sched_host_fn fn; void *user_data; } func;
    struct { struct host_event *event; uint64_t generation; } event;
    struct { uint32_t token; } notify;
    struct { void *ptr; } block;
  } u;
};

typedef struct host_stream {
  pthread_mutex_t lock;
  pthread_cond_t has_work;
  pthread_cond_t progressed;
  host_op *head, *tail;
  uint64_t enqueued, completed;
  int exiting;
  int32_t priority;
  struct host_stream *next_live; /* in the backend's list of live streams */
} host_stream;

typedef struct host_event {
  uint32_t flags;
  uint64_t recorded;     /* generation of the latest record enqueued */
  uint64_t done;         /* highest generation whose record ran */
  double done_at_ms;     /* monotonic time when `done` was reached */
  int refs;              /* owner + queued records/waits */
  struct event_waiter *waiters;
  /* Generations recorded and not yet run: records on different streams run
   * out of order, so a wait for one generation waits for that record, not
   * for `done` (a later record elsewhere) to pass it, as CUDA waits do. */
  uint64_t *pending;
  uint32_t pending_count, pending_cap;
} host_event;

/* host_stream.c */
host_op *host_op_new(host_op_run run);
/* Appends op to the stream's FIFO; the worker runs and frees it. */
int32_t host_stream_enqueue(host_stream *s, host_op *op);
int32_t host_streams_synchronize_all(void);
void host_streams_wait_exit(void);


/* The simulated SM layout (host_backend.c reports it, host_partition.c splits it). */
#define HOST_SM_COUNT 132
#define HOST_SM_GRANULARITY 8

/* host_memory.c: each simulated device has its own capacity and use. */
void host_memory_reset(int32_t devices, uint64_t capacity);
uint64_t host_memory_used(int32_t device);
uint64_t host_memory_capacity(int32_t device);
/* Charges bytes against the acting device's capacity (0 on success) or
 * gives them back: virtual memory commits (host_vmm.c). */
int host_memory_charge(uint64_t bytes);
void host_memory_uncharge(uint64_t bytes);

double host_now_ms(void);

/* host_faults.c */
void host_faults_reset(void);
void host_faults_arm(int32_t kind, uint32_t count);
/** True (and counts it) when an armed fault of this kind fires now. */
int host_fault_hit(int32_t kind);

#endif /* GPUSCHED_HOST_H */
