#include "partition_plan.h"

#include <inttypes.h>

#include "backend.h"

int32_t partition_plan(const uint32_t *sm_counts, uint32_t n, uint32_t unit, uint32_t groups,
                       uint32_t *out_units) {
  if (unit == 0) return sched_fail(SCHED_ERR_UNSUPPORTED, "The device reports no SM groups to partition");
  uint64_t needed = 0;
  for (uint32_t i = 0; i < n; i++) {
    /* Rounding up, as cuDevSmResourceSplitByCount does with its minCount. */
    out_units[i] = (uint32_t)(((uint64_t)sm_counts[i] + unit - 1) / unit);
    needed += out_units[i];
  }
  if (needed > groups)
    return sched_fail(SCHED_ERR_INVALID_ARGUMENT,
                      "Cannot partition the SMs: %" PRIu32 " partition(s) need %" PRIu64 " groups of %" PRIu32
                      " SMs, the device has %" PRIu32,
                      n, needed, unit, groups);
  return SCHED_OK;
}
