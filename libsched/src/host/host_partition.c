/*
 * Host partitions: accounting only. The simulated device's SMs are split
 * exactly as cuDevSmResourceSplitByCount splits an H100/H200 (groups of 8,
 * 4 SMs left over), so a layout gets the same SM counts on both backends;
 * nothing confines a worker thread to "its" SMs.
 */
#include <stdlib.h>

#include "../partition_plan.h"
#include "host.h"

typedef struct host_partition {
  uint32_t sm_count;
} host_partition;

static host_partition *partition_new(uint32_t sm_count) {
  host_partition *p = malloc(sizeof *p);
  if (p != NULL) p->sm_count = sm_count;
  return p;
}

static int32_t partition_destroy(void *partition) {
  free(partition);
  return SCHED_OK;
}

static int32_t partition_create(const uint32_t *sm_counts, uint32_t n, void **out_partitions,
                                uint32_t *out_sm_given) {
  const uint32_t groups = HOST_SM_COUNT / HOST_SM_GRANULARITY;
  const uint32_t remainder = HOST_SM_COUNT % HOST_SM_GRANULARITY;
  uint32_t *units = malloc((size_t)n * sizeof *units);
  if (units == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory planning partitions");
  int32_t status = partition_plan(sm_counts, n, HOST_SM_GRANULARITY, groups, units);
  uint32_t used = 0;
  for (uint32_t i = 0; i <= n && status == SCHED_OK; i++) {
    uint32_t sms = i < n ? units[i] * HOST_SM_GRANULARITY : (groups - used) * HOST_SM_GRANULARITY + remainder;
    if (i < n) used += units[i];
    out_partitions[i] = NULL;
    out_sm_given[i] = sms;
    if (sms == 0) continue; /* only the rest can be empty */
    out_partitions[i] = partition_new(sms);
    if (out_partitions[i] == NULL) {
      for (uint32_t j = 0; j < i; j++) free(out_partitions[j]);
      status = sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory creating partitions");
    }
  }
  free(units);
  return status;
}

static int32_t partition_create_set(uint64_t mask, bool with_remainder, void **out_partition,
                                    uint32_t *out_sm_given) {
  uint32_t sms = (uint32_t)__builtin_popcountll(mask) * HOST_SM_GRANULARITY;
  if (with_remainder) sms += HOST_SM_COUNT % HOST_SM_GRANULARITY;
  host_partition *p = partition_new(sms);
  if (p == NULL) return sched_fail(SCHED_ERR_OUT_OF_MEMORY, "Out of host memory creating a partition");
  *out_partition = p;
  *out_sm_given = sms;
  return SCHED_OK;
}

void host_partition_ops(backend_ops *ops) {
  ops->partition_create_set = partition_create_set;
  ops->partition_create = partition_create;
  ops->partition_destroy = partition_destroy;
}
