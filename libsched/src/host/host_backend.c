/* The host backend's table, lifecycle and device description. */
#include <stdio.h>
#include <string.h>

#include "host.h"

void host_stream_ops(backend_ops *ops);
void host_event_ops(backend_ops *ops);
void host_memory_ops(backend_ops *ops);
void host_partition_ops(backend_ops *ops);

/* Mirrors the range of H100/H200 so priorities mean the same on both backends. */
#define HOST_PRIORITY_LEAST 0
#define HOST_PRIORITY_GREATEST (-5)

static int32_t device_count(int32_t *out_count) {
  *out_count = 1;
  return SCHED_OK;
}

static int32_t init(int32_t device, int32_t host_devices, uint64_t host_capacity, int32_t *out_devices) {
  (void)device; /* checked against host_devices by the dispatch layer */
  host_memory_reset(host_devices, host_capacity);
  host_faults_reset();
  *out_devices = host_devices;
  return SCHED_OK;
}

static void shutdown_backend(void) {
  host_streams_wait_exit();
  host_memory_reset(0, 0);
}

static int32_t device_info(sched_device_info *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "Host CPU (simulated device)");
  int32_t device = sched_acting_device();
  out->total_memory = host_memory_capacity(device);
  out->free_memory = host_memory_capacity(device) - host_memory_used(device);
  /* A fixed, GPU-like SM count rather than the CPU count, so that partition
   * arithmetic (and every test of it) gives the same answers here as on an
   * H100 or H200. */
  out->sm_count = HOST_SM_COUNT;
  out->sm_granularity = HOST_SM_GRANULARITY;
  out->sm_groups = HOST_SM_COUNT / HOST_SM_GRANULARITY;
  out->priority_least = HOST_PRIORITY_LEAST;
  out->priority_greatest = HOST_PRIORITY_GREATEST;
  return SCHED_OK;
}

static int32_t mem_info(uint64_t *out_free, uint64_t *out_total) {
  int32_t device = sched_acting_device();
  *out_total = host_memory_capacity(device);
  *out_free = *out_total - host_memory_used(device);
  return SCHED_OK;
}

/* Simulated devices share one address space: every pair is "peer". */
static int32_t can_access_peer(int32_t device, int32_t peer, int32_t *out_can) {
  (void)device;
  (void)peer;
  *out_can = 1;
  return SCHED_OK;
}

static backend_ops table;

const backend_ops *host_backend_ops(void) {
  if (table.name == NULL) {
    table.device_count = device_count;
    table.init = init;
    table.shutdown = shutdown_backend;
    table.device_info = device_info;
    table.mem_info = mem_info;
    table.can_access_peer = can_access_peer;
    table.inject_fault = host_faults_arm;
    host_stream_ops(&table);
    host_event_ops(&table);
    host_memory_ops(&table);
    host_partition_ops(&table);
    table.name = "host";
  }
  return &table;
}
