/*
 * The arithmetic of an SM layout, shared by both backends so that the same
 * request gives the same answer on the host as on a GPU: the device's SMs
 * come as `groups` groups of `unit` SMs (plus a remainder), and a partition
 * asking for c SMs gets ceil(c / unit) whole groups, in request order.
 */
#ifndef GPUSCHED_PARTITION_PLAN_H
#define GPUSCHED_PARTITION_PLAN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Writes into out_units[i] the number of groups partition i gets. Fails
 * with SCHED_ERR_INVALID_ARGUMENT (and a message naming the shortfall) when
 * they need more than `groups` groups in all.
 */
int32_t partition_plan(const uint32_t *sm_counts, uint32_t n, uint32_t unit, uint32_t groups,
                       uint32_t *out_units);

#ifdef __cplusplus
}
#endif

#endif /* GPUSCHED_PARTITION_PLAN_H */
