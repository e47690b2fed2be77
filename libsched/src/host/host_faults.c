/*
 * Fault injection for the host backend: the next `count` calls of a kind
 * fail as a real device would make them fail, so tests can prove that a
 * failing call reports a clear error and loses nothing else.
 */
#include <stdatomic.h>

#include "host.h"

static _Atomic uint32_t pending[SCHED_FAULT_STREAM + 1];

void host_faults_reset(void) {
  for (int kind = 0; kind <= SCHED_FAULT_STREAM; kind++) atomic_store(&pending[kind], 0);
}

void host_faults_arm(int32_t kind, uint32_t count) { atomic_store(&pending[kind], count); }

int host_fault_hit(int32_t kind) {
  uint32_t left = atomic_load(&pending[kind]);
  while (left > 0) {
    if (atomic_compare_exchange_weak(&pending[kind], &left, left - 1)) return 1;
  }
  return 0;
}
